"""webapp/studies/sqlreads.py reads what the ORM read: the same rows, the same values.

The hand-written statements replace ORM querysets on the evaluator path; each test reads
the same thing both ways, at every step of an evaluator's way, and compares every field of
every instance (JSON, datetimes and booleans pass through the backend's converters).
"""
import pytest
from django.db.models import Count, Q
from django.test import Client

from tests.narrow import present
from webapp.studies import selectors, sqlreads
from webapp.studies.models import Entry, Evaluator, Study

from .conftest import answer_data, current_task, join

pytestmark = pytest.mark.django_db


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _orm_next(evaluator: Evaluator) -> Entry | None:
    return (Entry.objects.filter(evaluator=evaluator, count_response__isnull=True, rank_response__isnull=True)
            .select_related("item__prompt", "item__image").order_by("index").first())


def _orm_progress(evaluator: Evaluator) -> tuple[int, int]:
    counts = Entry.objects.filter(evaluator=evaluator).aggregate(
        total=Count("id"),
        answered=Count("id", filter=Q(count_response__isnull=False) | Q(rank_response__isnull=False)),
    )
    return counts["answered"], counts["total"]


def _same(raw: Entry | None, orm: Entry | None) -> None:
    assert (raw is None) == (orm is None)
    if raw is None or orm is None:
        return
    assert _values(raw) == _values(orm)
    assert _values(raw.item) == _values(orm.item)
    assert _values(raw.item.prompt) == _values(orm.item.prompt)
    assert (raw.item.image is None) == (orm.item.image is None)
    if orm.item.image is not None:
        assert _values(raw.item.image) == _values(orm.item.image)


def test_the_next_entry_and_progress_match_the_orm_at_every_step(study, django_assert_num_queries):
    client = join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    steps = 0
    while True:
        found = sqlreads.next_entry(evaluator_id=evaluator.pk)
        orm = _orm_next(evaluator)
        _same(found.entry if found else None, orm)
        if found is None:
            break
        assert (found.answered, found.total) == _orm_progress(evaluator)
        # one statement, the item, prompt and image already there (no lazy query after it)
        with django_assert_num_queries(1):
            entry = selectors.evaluator_next_entry(evaluator=evaluator)
            assert entry is not None
            _ = (entry.item.prompt.text, entry.item.image, entry.positions, entry.shown_at)
        task = current_task(client, study)["task"]  # marks it shown: shown_at is a datetime now
        assert client.post(f"/e/{study.slug}/task/", answer_data(task)).status_code == 302
        steps += 1
    assert steps == Entry.objects.filter(evaluator=evaluator).count() > 4
    # done: the progress comes from the aggregate, all answered
    assert selectors.evaluator_next_and_progress(evaluator=evaluator)[1] == selectors.Progress(steps, steps)


def test_an_item_without_an_image_reads_as_none(study):
    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    entry = present(Entry.objects.filter(evaluator=evaluator, item__task="rank").order_by("index").first())
    Entry.objects.filter(evaluator=evaluator, index__lt=entry.index).delete()  # the ranking comes first
    found = sqlreads.next_entry(evaluator_id=evaluator.pk)
    assert found is not None and found.entry.pk == entry.pk and found.entry.item.image is None
    _same(found.entry, _orm_next(evaluator))


def test_the_evaluator_with_its_study_matches_the_orm(study):
    join(Client(), study)
    other = Study.objects.create(slug="other", title="Other", status=Study.Status.OPEN, protocol={})
    evaluator = Evaluator.objects.get(study=study)
    ids = [evaluator.pk, evaluator.pk + 1000]
    raw = sqlreads.evaluator_with_study(evaluator_ids=ids, slug=study.slug)
    orm = Evaluator.objects.select_related("study").get(pk=evaluator.pk)
    assert raw is not None and _values(raw) == _values(orm) and _values(raw.study) == _values(orm.study)
    assert sqlreads.evaluator_with_study(evaluator_ids=ids, slug=other.slug) is None  # not in that study
    assert sqlreads.evaluator_with_study(evaluator_ids=[], slug=study.slug) is None


def test_an_entry_with_its_item_matches_the_orm_and_only_for_its_evaluator(study):
    join(Client(), study)
    join(Client(), study)
    first, second = Evaluator.objects.filter(study=study).order_by("pk")
    for entry in Entry.objects.filter(evaluator=first):
        raw = sqlreads.entry_with_item(entry_id=entry.pk, evaluator_id=first.pk)
        orm = Entry.objects.select_related("item").get(pk=entry.pk)
        assert raw is not None and _values(raw) == _values(orm) and _values(raw.item) == _values(orm.item)
        assert sqlreads.entry_with_item(entry_id=entry.pk, evaluator_id=second.pk) is None  # not theirs


def test_set_times_writes_a_timestamp_once_and_it_reads_back_as_the_orm_wrote_it(study):
    from datetime import timedelta

    from django.utils import timezone

    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    entry = present(Entry.objects.filter(evaluator=evaluator, shown_at__isnull=True).first())
    first = timezone.now().replace(microsecond=123456)
    assert sqlreads.set_times(Entry, entry.pk, {"shown_at": first}, unless_set="shown_at") == 1
    assert sqlreads.set_times(Entry, entry.pk, {"shown_at": first + timedelta(minutes=5)}, unless_set="shown_at") == 0
    entry.refresh_from_db()
    assert entry.shown_at == first  # the first showing stays: time on task is not restarted
    assert Entry.objects.filter(pk=entry.pk, shown_at=first).exists()  # the ORM compares it as equal
    later = first + timedelta(hours=1)
    assert sqlreads.set_times(Evaluator, evaluator.pk, {"last_seen_at": later, "finished_at": later}) == 1
    evaluator.refresh_from_db()
    assert evaluator.last_seen_at == later and evaluator.finished_at == later


def _orm_slots_held(study: Study, active_since) -> tuple[int, int]:
    from webapp.studies.models import Slot

    held = (Evaluator.objects.filter(study=study, abandoned_at__isnull=True, slot__isnull=False)
            .exclude(finished_at__isnull=True, last_seen_at__lt=active_since)
            .values("slot_id").distinct().count())
    return held, Slot.objects.filter(study=study).count()


def test_slots_held_counts_as_the_orm_did_in_every_state_of_an_evaluator(study):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.studies.models import Slot

    now = timezone.now()
    since = now - timedelta(minutes=30)
    slots = list(Slot.objects.filter(study=study).order_by("number"))
    assert sqlreads.slots_held_and_total(study_id=study.pk, active_since=since) == (0, len(slots)) == (0, 3)
    # active; silent but finished; never seen (NULL: not silent); then one silent and unfinished
    states: list[dict[str, object]] = [
        {"last_seen_at": now}, {"last_seen_at": now - timedelta(hours=2), "finished_at": now}, {"last_seen_at": None}]
    for k, (slot, fields) in enumerate(zip(slots, states, strict=True)):
        Evaluator.objects.create(study=study, slot=slot, external_id=f"w{k}", browser=f"b{k}", **fields)
        got = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
        assert got == _orm_slots_held(study, since) == (k + 1, 3), (k, got)
    Evaluator.objects.filter(external_id="w0").update(last_seen_at=now - timedelta(hours=1))  # silent: gone
    held = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
    assert held == _orm_slots_held(study, since) == (2, 3)
    Evaluator.objects.filter(external_id="w1").update(abandoned_at=now)  # abandoned: the slot is free
    held = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
    assert held == _orm_slots_held(study, since) == (1, 3)
