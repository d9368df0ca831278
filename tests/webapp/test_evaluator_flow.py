"""The evaluator's way through a study: join, consent, count, rank, undo, resume, finish."""

import pytest
from django.test import Client

from tests.narrow import present
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Slot, Study

from .conftest import answer_data, current_task, join, shown_image

pytestmark = pytest.mark.django_db


def answer_current(client, study, *, count=2, ranks="1,2,3,4"):
    task = current_task(client, study)["task"]
    if task["kind"] == "count":
        data = {"kind": "count", "token": task["token"], "answer": str(count)}
    else:
        data = {"kind": "rank", "token": task["token"], **{f"rank_{i}": r for i, r in enumerate(ranks.split(","))}}
    return client.post(f"/e/{study.slug}/task/", data), task


def test_join_stores_external_worker_id_and_resumes(study):
    client = Client()
    r = client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "PID-123"})
    assert r.status_code == 302 and r["Location"].endswith("/consent/")
    ev = Evaluator.objects.get(study=study)
    assert ev.external_id == "PID-123"
    # The same browser resumes; another device is asked first (tests/webapp/test_takeover.py).
    assert client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "PID-123"})["Location"].endswith("/consent/")
    assert Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "PID-123"}).status_code == 409
    assert Evaluator.objects.filter(study=study).count() == 1


def test_joining_takes_no_slot_until_consent(study):
    client = Client()
    client.get(f"/join/{study.invite_token}/")
    ev = Evaluator.objects.get(study=study)
    assert ev.slot_id is None and not Entry.objects.filter(evaluator=ev).exists()
    client.post(f"/e/{study.slug}/consent/", {"agree": "no"})
    assert Evaluator.objects.get(pk=ev.pk).slot_id is None
    client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    ev.refresh_from_db()
    assert ev.slot_id is not None and Entry.objects.filter(evaluator=ev).count() == len(ev.slot.items)


def test_consent_is_required_before_tasks(study):
    client = Client()
    client.get(f"/join/{study.invite_token}/")
    r = client.get(f"/e/{study.slug}/task/")
    assert r.status_code == 302 and r["Location"].endswith("/consent/")
    r = client.post(f"/e/{study.slug}/consent/", {"agree": "no"})
    assert r.status_code == 200 and b"did not agree" in r.content
    assert Evaluator.objects.get(study=study).consented_at is None


def test_entries_follow_the_slot_order_and_positions(study, evaluator_client):
    ev = Evaluator.objects.get(study=study)
    assert ev.slot_id is not None
    slot = Slot.objects.get(pk=ev.slot_id)
    entries = list(Entry.objects.filter(evaluator=ev).order_by("index"))
    assert [e.item_id for e in entries] == slot.items
    for e in entries:
        if e.item.task == "rank":
            assert e.positions == slot.positions[str(e.item_id)]


def test_each_evaluator_gets_a_different_slot_until_full(study):
    for _ in range(3):
        join(Client(), study)
    assert sorted(Evaluator.objects.values_list("slot__number", flat=True)) == [0, 1, 2]
    r = Client().get(f"/join/{study.invite_token}/")
    assert r.status_code == 403 and b"taken" in r.content


def test_the_last_slot_goes_to_whoever_consents_first(study):
    for _ in range(2):
        join(Client(), study)
    early, late = Client(), Client()
    early.get(f"/join/{study.invite_token}/")
    late.get(f"/join/{study.invite_token}/")  # both see the consent page while one slot is free
    assert early.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    r = late.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    assert r.status_code == 403 and b"taken" in r.content
    assert Evaluator.objects.filter(slot__isnull=False).count() == 3
    assert Evaluator.objects.filter(consented_at__isnull=True, slot__isnull=True).count() == 1


def test_abandoned_slot_goes_to_a_newcomer(study, settings):
    from datetime import timedelta

    from django.utils import timezone

    for _ in range(3):
        join(Client(), study)
    first = present(Evaluator.objects.order_by("pk").first())
    Evaluator.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS + 5)
    )
    join(Client(), study)
    newcomer = present(Evaluator.objects.order_by("pk").last())
    first.refresh_from_db()
    assert first.abandoned_at is not None
    assert newcomer.slot_id == first.slot_id


def test_one_who_answers_after_their_place_went_to_a_newcomer_is_at_work_again(study, settings):
    """Probe 4: an evaluator released as silent who came back and answered (their answers
    are stored, and they are paid when they finish) was still listed as timed out, with
    "return" among the ids to ask to return their submission, while they worked."""
    from datetime import timedelta

    from django.utils import timezone

    from webapp.research.participants import participant_rows

    first_client = join(Client(), study)
    for _ in range(2):
        join(Client(), study)
    first = present(Evaluator.objects.order_by("pk").first())
    Evaluator.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS + 5))
    join(Client(), study)  # the newcomer takes the silent evaluator's place

    def row():
        return next(r for r in participant_rows(study=study) if r.pseudonym == first.pseudonym)

    assert (row().status, row().suggestion) == ("abandoned", "return")  # silent: gone, for now
    r = first_client.post(f"/e/{study.slug}/task/", answer_data(current_task(first_client, study)["task"]))
    assert r.status_code == 302
    first.refresh_from_db()
    assert first.abandoned_at is not None  # the place stays the newcomer's
    assert (row().status, row().suggestion) == ("active", "wait")


def test_full_walk_stores_every_answer_and_shows_completion_code(study, evaluator_client):
    n = Entry.objects.filter(evaluator__study=study).count()
    for _ in range(n):
        r, _task = answer_current(evaluator_client, study)
        assert r.status_code == 302, r.content
    assert CountResponse.objects.count() + RankResponse.objects.count() == n
    r = evaluator_client.get(f"/e/{study.slug}/task/")
    assert r.status_code == 302 and r["Location"].endswith("/done/")
    r = evaluator_client.get(f"/e/{study.slug}/done/")
    assert study.completion_code.encode() in r.content
    assert Evaluator.objects.get(study=study).finished_at is not None


def test_rank_response_stores_shown_order_and_ranks(study, evaluator_client, settings):
    while current_task(evaluator_client, study)["task"]["kind"] != "rank":
        answer_current(evaluator_client, study)
    r, task = answer_current(evaluator_client, study, ranks="3,1,4,2")
    assert r.status_code == 302
    resp = RankResponse.objects.get()
    assert resp.ranks == [3, 1, 4, 2]
    shown = [resp.image_0, resp.image_1, resp.image_2, resp.image_3]
    assert [shown_image(url, resp.evaluator) for url in task["images"]] == shown
    assert [evaluator_client.get(url).content for url in task["images"]] == [
        (settings.MEDIA_ROOT / present(img).file).read_bytes() for img in shown]
    assert [present(present(img).variant).index for img in shown] == resp.entry.positions


def test_skip_with_reason(study, evaluator_client):
    while current_task(evaluator_client, study)["task"]["kind"] != "rank":
        answer_current(evaluator_client, study)
    token = current_task(evaluator_client, study)["task"]["token"]
    r = evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "rank", "token": token, "skip_reason": "all_bad"})
    assert r.status_code == 302
    resp = RankResponse.objects.get()
    assert resp.skipped and resp.skip_reason == "all_bad" and resp.ranks == [None] * 4


def test_cant_tell_is_stored_without_a_number(study, evaluator_client):
    while current_task(evaluator_client, study)["task"]["kind"] != "count":
        answer_current(evaluator_client, study)
    token = current_task(evaluator_client, study)["task"]["token"]
    r = evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "count", "token": token, "cant_tell": "on"})
    assert r.status_code == 302
    resp = CountResponse.objects.get()
    assert resp.cant_tell and resp.answer is None


def test_undo_removes_the_last_answer_and_shows_that_task_again(study, evaluator_client):
    answer_current(evaluator_client, study)
    r, second = answer_current(evaluator_client, study)
    before = CountResponse.objects.count() + RankResponse.objects.count()
    r = evaluator_client.post(f"/e/{study.slug}/undo/")
    assert r.status_code == 302
    assert CountResponse.objects.count() + RankResponse.objects.count() == before - 1
    again = current_task(evaluator_client, study)["task"]
    assert again["number"] == second["number"] and again["images"] == second["images"]


def test_progress_counts_answers(study, evaluator_client):
    state = current_task(evaluator_client, study)
    total = state["progress"]["total"]
    answer_current(evaluator_client, study)
    state = current_task(evaluator_client, study)
    assert state["progress"] == {"answered": 1, "total": total, "percent": round(100 / total)}


def test_json_submission_returns_the_next_task(study, evaluator_client):
    task = current_task(evaluator_client, study)["task"]
    data = {"kind": task["kind"], "token": task["token"]}
    data.update({"answer": "1"} if task["kind"] == "count" else {f"rank_{i}": str(i + 1) for i in range(4)})
    r = evaluator_client.post(f"/e/{study.slug}/task/", data, HTTP_ACCEPT="application/json")
    assert r.status_code == 200 and r.json()["ok"] and r.json()["task"]["number"] == 2


def test_item_order_is_randomized_per_evaluator(study):
    join(Client(), study)
    join(Client(), study)
    orders = [
        list(Entry.objects.filter(evaluator=ev).order_by("index").values_list("item_id", flat=True))
        for ev in Evaluator.objects.all()
    ]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])


def test_closed_study_rejects_new_evaluators(study):
    Study.objects.filter(pk=study.pk).update(status="closed")
    r = Client().get(f"/join/{study.invite_token}/")
    assert r.status_code == 403


def test_undo_says_which_answer_it_removed_and_puts_it_back_in_the_form(study, evaluator_client):
    client = evaluator_client
    while current_task(client, study)["task"]["kind"] != "count":
        answer_current(client, study)
    answer_current(client, study, count=7)
    client.post(f"/e/{study.slug}/undo/")
    page = client.get(f"/e/{study.slug}/task/").content.decode()
    assert "Undone: your answer to task" in page and "(7)" in page
    assert 'value="7"' in page
    # Shown once: a reload is a plain task page again.
    assert "Undone" not in client.get(f"/e/{study.slug}/task/").content.decode()


def test_an_incomplete_ranking_comes_back_with_the_ranks_given(study, evaluator_client):
    client = evaluator_client
    while current_task(client, study)["task"]["kind"] != "rank":
        answer_current(client, study)
    task = current_task(client, study)["task"]
    r = client.post(f"/e/{study.slug}/task/", {"kind": "rank", "token": task["token"], "rank_0": "2", "rank_2": "1"})
    page = r.content.decode()
    assert r.status_code == 400 and 'data-code="incomplete"' in page
    menus = page.split('name="rank_')[1:]
    assert ["<option selected>2</option>" in m.split("</select>")[0] for m in menus] == [True, False, False, False]
    assert ["<option selected>1</option>" in m.split("</select>")[0] for m in menus] == [False, False, True, False]
