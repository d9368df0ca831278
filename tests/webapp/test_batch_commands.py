"""Following a batch from the terminal: launch_batch --wait, batch_status, the one polling loop."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from tests.narrow import present
from tests.services.helpers import make_tiny_checkpoint, study_on_one_checkpoint
from webapp.generation import follow, parts, services
from webapp.generation.models import Batch, Part

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def study(tiny_checkpoint):
    return study_on_one_checkpoint(tiny_checkpoint)


def test_a_second_launch_names_the_running_batch_and_how_to_follow_it(study):
    batch = services.batch_launch(study=study, steps=2)
    with pytest.raises(CommandError) as refused:
        call_command("launch_batch", study.slug)
    message = str(refused.value)
    assert f"Batch {batch.pk} of gen is already queued" in message
    assert "python manage.py batch_status gen --follow" in message and "launch_batch gen --cancel" in message


def test_wait_says_soon_when_no_worker_takes_the_batch_and_what_to_start(study, capsys, monkeypatch):
    """Nothing consumes the queue here: --wait must say so, then keep following (cancelled
    from outside on the third look, as an operator would)."""
    seen = []

    def progress_then_cancel(*, batch):
        seen.append(batch.pk)
        if len(seen) == 3:
            services.batch_cancel(batch=batch)
        return real_progress(batch=batch)

    real_progress = follow.batch_progress
    monkeypatch.setattr(follow, "batch_progress", progress_then_cancel)
    monkeypatch.setattr(follow, "NO_WORKER_SECONDS", 0.0)
    with pytest.raises(CommandError, match=r"Batch \d+ ended cancelled"):
        call_command("launch_batch", study.slug, "--steps", "2", "--wait")
    out, err = capsys.readouterr()
    assert "No worker has taken batch" in err and follow.WORKER_COMMAND in err
    assert err.count("No worker has taken") == 1  # said once, not on every poll
    assert "queued: 0/24 images" in out


def _no_worker_notices(batch) -> list[float]:
    """Follow the batch on a simulated clock for 30 s (then cancel it): the no-worker notices given."""
    now, notices = [0.0], []

    def sleep(seconds):
        now[0] += seconds
        if now[0] > 30:
            services.batch_cancel(batch=batch)

    follow.batch_follow(batch=batch, on_progress=lambda p: None, clock=lambda: now[0], sleep=sleep,
                        on_no_worker=lambda p, waited: notices.append(waited))
    return notices


def test_the_no_worker_notice_comes_after_a_few_seconds_of_a_queued_batch(study):
    batch = services.batch_launch(study=study, steps=2)
    notices = _no_worker_notices(batch)
    assert notices == [follow.NO_WORKER_SECONDS] and 2 <= follow.NO_WORKER_SECONDS <= 10


def test_no_notice_once_a_worker_has_claimed_a_part(study):
    batch = services.batch_launch(study=study, steps=2)
    parts.part_claim(part_id=present(Part.objects.filter(batch=batch).first()).pk, claim="c1", worker="w1",
                     stale_after=timedelta(minutes=10))
    assert _no_worker_notices(batch) == []


def test_batch_status_shows_progress_per_variant_and_errors(study, capsys):
    with pytest.raises(CommandError, match="has no batch yet: python manage.py launch_batch gen"):
        call_command("batch_status", study.slug)
    batch = services.batch_launch(study=study, steps=2, part_size=3)
    call_command("batch_status", study.slug)
    out = capsys.readouterr().out
    assert out.startswith(f"batch {batch.pk} queued: 0/24 images, ")
    assert all(f"{v.name} 0/" in out for v in study.variants.all())
    assert follow.WORKER_COMMAND in out
    part = present(Part.objects.filter(batch=batch).order_by("number").first())
    Part.objects.filter(pk=part.pk).update(status=Part.Status.FAILED, error="weights missing on the worker")
    call_command("batch_status", study.slug, "--batch", str(batch.pk))
    assert f"part {part.number} (" in (out := capsys.readouterr().out) and "weights missing on the worker" in out
    with pytest.raises(CommandError, match="has no batch 999"):
        call_command("batch_status", study.slug, "--batch", "999")


def test_batch_status_follow_ends_with_the_batch(study, capsys):
    batch = services.batch_launch(study=study, steps=2)
    services.batch_cancel(batch=batch)
    with pytest.raises(CommandError, match=f"Batch {batch.pk} ended cancelled"):
        call_command("batch_status", study.slug, "--follow")
    assert Batch.objects.get().status == "cancelled"


def test_counted_says_one_without_an_s():
    assert [follow.counted(n, "part") for n in (0, 1, 2)] == ["0 parts", "1 part", "2 parts"]


def test_a_retry_of_one_failed_part_says_part(study, capsys):
    batch = services.batch_launch(study=study, steps=2)
    part = present(Part.objects.filter(batch=batch).order_by("number").first())
    Part.objects.filter(pk=part.pk).update(status=Part.Status.FAILED, error="out of memory")
    Part.objects.filter(batch=batch).exclude(pk=part.pk).update(status=Part.Status.DONE)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.FAILED)
    call_command("launch_batch", study.slug, "--retry-failed")
    assert capsys.readouterr().out == f"Batch {batch.pk}: 1 failed part queued again.\n"


def test_launch_open_wait_says_when_it_opened_the_study(study, capsys, monkeypatch):
    """No worker here: the parts are run in this process when the following starts."""
    from webapp.generation import part_runner

    real_follow = follow.batch_follow

    def run_parts_then_follow(*, batch, **kwargs):
        for p in batch.parts.order_by("number"):
            assert part_runner.part_run(part_id=p.pk, claim=f"c{p.pk}", worker="test") == "done"
        return real_follow(batch=batch, **kwargs)

    monkeypatch.setattr(follow, "batch_follow", run_parts_then_follow)
    call_command("launch_batch", study.slug, "--steps", "2", "--part-size", "50", "--open", "--wait")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("images in 4 parts queued; study gen opens when every image exists.")
    assert "complete: 24/24 images" in lines[-2]
    assert lines[-1] == "Study gen is open."
    study.refresh_from_db()
    assert study.status == "open"
