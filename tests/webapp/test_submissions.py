"""Bad input gets a clear error and stores nothing; the database refuses impossible rows."""

import base64
import json
import re
import threading
import zlib

import pytest
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.test import Client

from tests.narrow import present
from webapp.studies import flow
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Study

from .conftest import answer_data, current_task, join

pytestmark = pytest.mark.django_db


def _advance_to(client, study, kind):
    while (task := current_task(client, study)["task"])["kind"] != kind:
        data = {"kind": task["kind"], "token": task["token"]}
        data.update({"answer": "1"} if task["kind"] == "count" else {f"rank_{i}": str(i + 1) for i in range(4)})
        client.post(f"/e/{study.slug}/task/", data)
    return task


def _nothing_new(before):
    return CountResponse.objects.count() + RankResponse.objects.count() == before


def _post_json(client, study, data):
    return client.post(f"/e/{study.slug}/task/", data, HTTP_ACCEPT="application/json")


@pytest.mark.parametrize(
    "answer, code",
    [("three", "not_integer"), ("2.5", "not_integer"), ("", "missing"), ("99999", "too_large"),
     # a sign, even on zero, is refused like any other character that is not a digit
     ("-1", "not_integer"), ("-0", "not_integer"), ("+0", "not_integer"), ("+3", "not_integer")],
)
def test_bad_counts_are_refused(study, evaluator_client, answer, code):
    task = _advance_to(evaluator_client, study, "count")
    before = CountResponse.objects.count() + RankResponse.objects.count()
    r = _post_json(evaluator_client, study, {"kind": "count", "token": task["token"], "answer": answer})
    assert r.status_code == 400 and r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert _nothing_new(before)


def test_bad_count_shows_the_error_on_the_page(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "count")
    r = evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "count", "token": task["token"], "answer": "-3"})
    assert r.status_code == 400 and b"digits 0 to 9 only" in r.content


@pytest.mark.parametrize(
    "ranks, code",
    [
        (["1", "1", "2", "3"], "tie_not_allowed"),
        (["1", "2", "3", ""], "incomplete"),
        (["0", "1", "2", "3"], "invalid_choice"),
        (["1", "2", "3", "5"], "out_of_range"),
        (["1", "2", "3", "4", "5"], "wrong_width"),
    ],
)
def test_rankings_that_are_not_a_permutation_are_refused(study, evaluator_client, ranks, code):
    task = _advance_to(evaluator_client, study, "rank")
    before = CountResponse.objects.count() + RankResponse.objects.count()
    data = {"kind": "rank", "token": task["token"], **{f"rank_{i}": r for i, r in enumerate(ranks)}}
    r = _post_json(evaluator_client, study, data)
    assert r.status_code == 400 and r.json()["error"]["code"] == code
    assert _nothing_new(before)


def test_skip_needs_a_known_reason(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "rank")
    r = _post_json(evaluator_client, study, {"kind": "rank", "token": task["token"], "skip_reason": "bored"})
    assert r.status_code == 400 and RankResponse.objects.count() == 0


def test_another_evaluators_item_is_refused(study):
    alice, bob = join(Client(), study), join(Client(), study)
    bobs_task = current_task(bob, study)["task"]
    before = CountResponse.objects.count() + RankResponse.objects.count()
    data = {"kind": bobs_task["kind"], "token": bobs_task["token"]}
    data.update({"answer": "2"} if bobs_task["kind"] == "count" else {f"rank_{i}": str(i + 1) for i in range(4)})
    r = _post_json(alice, study, data)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_yours"
    assert _nothing_new(before)


def test_item_of_a_closed_study_is_refused(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "count")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    r = _post_json(evaluator_client, study, {"kind": "count", "token": task["token"], "answer": "2"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "study_closed"
    assert CountResponse.objects.count() == 0


def test_replayed_form_is_refused(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "count")
    data = {"kind": "count", "token": task["token"], "answer": "2"}
    assert _post_json(evaluator_client, study, data).status_code == 200
    r = _post_json(evaluator_client, study, {**data, "answer": "5"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_answered"
    assert list(CountResponse.objects.values_list("answer", flat=True)) == [2]


def test_forged_form_is_refused(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "count")
    ev = Evaluator.objects.get()
    other_entry = present(Entry.objects.filter(evaluator=ev).exclude(index=task["number"] - 1).first())
    mine = signing.loads(task["token"], salt=flow.TOKEN_SALT)
    forged = signing.dumps({**mine, "i": other_entry.index}, salt="not-the-salt", compress=True)
    # signed by the site, but in a shape it never issues (the row ids of an earlier version)
    shapeless = signing.dumps({"e": ev.pk, "n": other_entry.pk, "t": 0}, salt=flow.TOKEN_SALT, compress=True)
    tampered = task["token"][:-3] + ("AAA" if not task["token"].endswith("AAA") else "BBB")
    for token in (forged, shapeless, tampered, "garbage"):
        r = _post_json(evaluator_client, study, {"kind": "count", "token": token, "answer": "2"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "forged"
    assert CountResponse.objects.count() == 0


def test_answer_of_the_wrong_kind_is_refused(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "rank")
    before = CountResponse.objects.count() + RankResponse.objects.count()
    r = _post_json(evaluator_client, study, {"kind": "count", "token": task["token"], "answer": "2"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_task"
    assert _nothing_new(before)


def test_evaluator_without_session_gets_404(study):
    assert Client().get(f"/e/{study.slug}/task/").status_code == 404
    assert Client().post(f"/e/{study.slug}/task/", {"kind": "count"}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_submissions_store_exactly_one(study):
    client = join(Client(), study)
    task = _advance_to(client, study, "count")
    evaluator = Evaluator.objects.get()
    barrier = threading.Barrier(2)
    outcomes = []

    def submit(answer):
        try:
            barrier.wait(timeout=5)
            flow.count_response_submit(evaluator=evaluator, token=task["token"], answer=answer, cant_tell=False)
            outcomes.append("stored")
        except flow.SubmissionError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(a,)) for a in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_answered", "stored"]
    assert CountResponse.objects.count() == 1


def _undo_while_answer_holds(monkeypatch, answer, undo) -> None:
    """Runs ``answer`` in a thread that stops inside its transaction (after
    ``flow._after_answer``, its locks held), then ``undo`` in another, which must wait for
    it; lets the answer commit and both finish. Each callable closes its thread's connection."""
    inside, release = threading.Event(), threading.Event()
    real_after = flow._after_answer

    def after_answer_then_wait(ev):
        out = real_after(ev)
        inside.set()
        release.wait(timeout=10)  # the answer's transaction (and its locks) stay open
        return out

    monkeypatch.setattr(flow, "_after_answer", after_answer_then_wait)

    def closing(fn):
        def run():
            try:
                fn()
            finally:
                connection.close()
        return run

    answering = threading.Thread(target=closing(answer))
    answering.start()
    assert inside.wait(timeout=10)
    undoing = threading.Thread(target=closing(undo))
    undoing.start()
    undoing.join(timeout=1.0)
    assert undoing.is_alive()  # waiting for the answer (its row locks; SQLite: its write transaction)
    release.set()
    answering.join(timeout=10)
    undoing.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_an_undo_sent_with_an_answer_waits_for_it_and_undoes_that_answer(study, monkeypatch):
    """An answer holds its entry's row until it commits; an undo sent meanwhile waits, then
    undoes that answer: the answered tasks stay a prefix of the sequence, each with the time
    it was shown (both used to succeed: the next task answered before the one reopened)."""
    if not connection.features.has_select_for_update_of:
        pytest.skip("row locks: SQLite runs one write transaction at a time")
    client = join(Client(), study)
    client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"]))
    task = _advance_to(client, study, "count")
    evaluator = Evaluator.objects.get()
    stored: list[bool] = []
    undone: list[int] = []

    def answer():
        flow.count_response_submit(evaluator=evaluator, token=task["token"], answer=2, cant_tell=False)
        stored.append(True)

    def undo():
        undone.append(present(flow.response_undo_last(evaluator=Evaluator.objects.get())).index)

    _undo_while_answer_holds(monkeypatch, answer, undo)
    assert stored == [True] and len(undone) == 1
    answered_index = undone[0]
    entries = list(Entry.objects.filter(evaluator=evaluator).order_by("index").values_list(
        "index", "shown_at", "count_response__id", "rank_response__id"))
    answered = [i for i, _, c, r in entries if c is not None or r is not None]
    assert answered == list(range(len(answered)))  # a prefix: nothing answered past a gap
    assert answered_index == len(answered)  # the in-flight answer is the one undone
    assert all(shown is not None for i, shown, _, _ in entries if i <= answered_index)


@pytest.mark.django_db(transaction=True)
def test_an_undo_sent_with_the_last_answer_does_not_undo_a_finished_study(study, monkeypatch):
    """The last task's answer finishes the study (the completion code comes back with it);
    an undo sent with it, from a request that read the evaluator before that answer
    committed, is refused once the answer is in, and the answer stays. Probe 4 sent the two
    at once to the served demo: in 2 of 4 tries both succeeded, and the participant held
    the code with their last answer removed (the evaluator finished, 23 answers of 24)."""
    client = join(Client(), study)
    while (state := current_task(client, study))["progress"]["answered"] < state["progress"]["total"] - 1:
        client.post(f"/e/{study.slug}/task/", answer_data(state["task"]))
    last_task = state["task"]
    stale = Evaluator.objects.get()  # as the undo's request reads it, before the answer commits
    assert stale.finished_at is None
    outcomes: dict[str, object] = {}

    def answer():
        submit = flow.count_response_submit if last_task["kind"] == "count" else flow.rank_response_submit
        kwargs = ({"answer": 2, "cant_tell": False} if last_task["kind"] == "count"
                  else {"ranks": list(range(1, len(last_task["images"]) + 1))})
        submit(evaluator=Evaluator.objects.get(), token=last_task["token"], **kwargs)
        outcomes["answer"] = "stored"

    def undo():
        try:
            outcomes["undo"] = flow.response_undo_last(evaluator=stale)
        except flow.SubmissionError as exc:
            outcomes["undo"] = exc.code

    _undo_while_answer_holds(monkeypatch, answer, undo)
    assert outcomes == {"answer": "stored", "undo": "completed"}
    evaluator = Evaluator.objects.get()
    assert evaluator.finished_at is not None
    n_answers = CountResponse.objects.count() + RankResponse.objects.count()
    assert n_answers == Entry.objects.filter(evaluator=evaluator).count()


def test_database_refuses_negative_count_and_duplicates(study, evaluator_client):
    task = _advance_to(evaluator_client, study, "count")
    _post_json(evaluator_client, study, {"kind": "count", "token": task["token"], "answer": "2"})
    resp = CountResponse.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        CountResponse.objects.filter(pk=resp.pk).update(answer=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CountResponse.objects.filter(pk=resp.pk).update(cant_tell=True)
    entry2 = Entry.objects.exclude(pk=resp.entry_id).filter(item__task="count").first()
    assert entry2 is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        CountResponse.objects.create(entry=entry2, evaluator=resp.evaluator, item=resp.item, answer=1, seconds=1)


@pytest.mark.parametrize("ranks", [(1, 1, 2, 3), (1, 2, 3, 5), (0, 1, 2, 3), (2, 2, 3, 3), (1, 2, 3, None)])
def test_database_refuses_ranks_that_are_not_a_permutation(study, evaluator_client, ranks):
    task = _advance_to(evaluator_client, study, "rank")
    _post_json(
        evaluator_client, study, {"kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}}
    )
    resp = RankResponse.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        RankResponse.objects.filter(pk=resp.pk).update(**{f"rank_{i}": r for i, r in enumerate(ranks)})
    with pytest.raises(IntegrityError), transaction.atomic():
        RankResponse.objects.filter(pk=resp.pk).update(skipped=True, skip_reason="")


def test_the_task_form_carries_no_row_id(study):
    """The form's token is signed, not encrypted: anyone holding it reads it without the key.
    It names its entry by the place in the evaluator's sequence (shown on the page) and its
    evaluator by a keyed tag, so it tells nobody how many have joined, or in what order."""
    first, second = join(Client(), study), join(Client(), study)
    tags = set()
    for client in (first, second):
        task = current_task(client, study)["task"]
        payload = task["token"].split(":")[0]  # what anyone decodes, no key needed
        raw = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
        data = json.loads(zlib.decompress(raw) if payload.startswith(".") else raw)  # "." marks zlib
        assert set(data) == {"v", "i"}
        assert data["i"] == task["number"] - 1
        assert re.fullmatch(r"[0-9a-f]{16}", data["v"])
        tags.add(data["v"])
    assert len(tags) == 2  # the two evaluators' tags differ
