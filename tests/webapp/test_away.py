"""Time away from a task (webapp/studies/away.py): the task script's reports, stamped by the
server, taken out of time on task where time on task means working time.

Time passes here as it does in the other time-on-task tests: the stored times are moved
back (``_wait``), so that the server's own clock, read at the request, sees them as past."""
import csv
import io
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory, build_open_study
from tests.narrow import present
from webapp.studies import flow, joining, lifecycle, recruitment
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Study

from .conftest import answer_data, current_task, demo_protocol, join

pytestmark = pytest.mark.django_db


def _beacon(client: Client, study: Study, token: str, state: str):
    return client.post(f"/e/{study.slug}/away/", {"token": token, "state": state})


def _shown(study: Study) -> Entry:
    """The one task shown and unanswered (the tests have one evaluator at work)."""
    return Entry.objects.get(evaluator__study=study, shown_at__isnull=False, count_response__isnull=True,
                             rank_response__isnull=True)


def _wait(seconds: float) -> None:
    """``seconds`` pass for every stored time of the tasks shown: their showing and an open
    away interval lie that much further in the past."""
    d = timedelta(seconds=seconds)
    Entry.objects.filter(shown_at__isnull=False).update(shown_at=F("shown_at") - d)
    Entry.objects.filter(away_since__isnull=False).update(away_since=F("away_since") - d)


def _response():
    return CountResponse.objects.order_by("pk").last() or RankResponse.objects.order_by("pk").last()


def _answer(client: Client, study: Study) -> None:
    r = client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"]))
    assert r.status_code == 302, r.content


# --------------------------------------------------------------------------- the reports


def test_away_then_back_adds_the_time_between_as_the_server_saw_it(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    r = _beacon(evaluator_client, study, token, "away")
    assert r.status_code == 204 and r.content == b""
    assert _shown(study).away_since is not None
    _wait(30)
    assert _beacon(evaluator_client, study, token, "back").status_code == 204
    entry = _shown(study)
    assert entry.away_since is None
    assert 30 <= entry.away_seconds < 32


def test_a_repeated_away_keeps_the_first_and_intervals_add_up(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    _beacon(evaluator_client, study, token, "away")
    _wait(10)
    first = _shown(study).away_since
    _beacon(evaluator_client, study, token, "away")  # hidden, then pagehide: one absence
    assert _shown(study).away_since == first
    _beacon(evaluator_client, study, token, "back")
    _wait(100)  # at work: not away
    _beacon(evaluator_client, study, token, "away")
    _wait(20)
    _beacon(evaluator_client, study, token, "back")
    assert 30 <= _shown(study).away_seconds < 33


def test_back_without_away_changes_nothing(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    assert _beacon(evaluator_client, study, token, "back").status_code == 204
    entry = _shown(study)
    assert entry.away_seconds == 0 and entry.away_since is None


def test_bad_forged_or_foreign_reports_are_refused_and_change_nothing(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    other = join(Client(), study)
    other_token = current_task(other, study)["task"]["token"]
    before = list(Entry.objects.values_list("pk", "away_seconds", "away_since").order_by("pk"))
    r = _beacon(evaluator_client, study, token, "lunch")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"
    r = _beacon(evaluator_client, study, token[:-3] + "AAA", "away")
    assert r.status_code == 400 and r.json()["error"]["code"] == "forged"
    assert _beacon(evaluator_client, study, "x" * 5000, "away").status_code == 400
    r = _beacon(evaluator_client, study, other_token, "away")  # the other evaluator's task
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_yours"
    assert Client().post(f"/e/{study.slug}/away/", {"token": token, "state": "away"}).status_code == 404
    assert evaluator_client.get(f"/e/{study.slug}/away/").status_code == 405
    assert list(Entry.objects.values_list("pk", "away_seconds", "away_since").order_by("pk")) == before
    # The replies name no image, variant or file: a code and a sentence.
    assert set(r.json()["error"]) == {"code", "message"}


def test_the_report_needs_the_pages_csrf_token(study):
    client = join(Client(), study)
    client.handler.enforce_csrf_checks = True  # from here on, as a browser's requests are checked
    token = current_task(client, study)["task"]["token"]
    assert _beacon(client, study, token, "away").status_code == 403
    assert _shown(study).away_since is None
    page = client.get(f"/e/{study.slug}/task/").content.decode()
    csrf = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    r = client.post(f"/e/{study.slug}/away/", {"csrfmiddlewaretoken": csrf, "token": token, "state": "away"})
    assert r.status_code == 204 and _shown(study).away_since is not None


def test_a_report_on_an_answered_or_unshown_task_or_a_closed_study_is_harmless(study, evaluator_client):
    first = current_task(evaluator_client, study)["task"]["token"]
    _answer(evaluator_client, study)
    answered = _response()
    assert _beacon(evaluator_client, study, first, "away").status_code == 204  # sent as the page unloaded
    assert Entry.objects.get(pk=answered.entry_id).away_since is None
    # A task not shown yet: the evaluator's next-but-one, its token made by the server.
    unshown = Entry.objects.filter(evaluator=answered.evaluator, shown_at__isnull=True).order_by("index").first()
    token = flow.entry_token_make(entry=present(unshown))
    assert _beacon(evaluator_client, study, token, "away").status_code == 204
    assert Entry.objects.get(pk=present(unshown).pk).away_since is None
    current = current_task(evaluator_client, study)["task"]["token"]
    lifecycle.study_close(study=study)
    assert _beacon(evaluator_client, study, current, "away").status_code == 204
    assert Entry.objects.filter(away_since__isnull=False).count() == 0


def test_the_report_is_rate_limited_per_evaluator(study, evaluator_client, settings):
    settings.FUSION_RATE_AWAY = "2/m"
    token = current_task(evaluator_client, study)["task"]["token"]
    assert _beacon(evaluator_client, study, token, "away").status_code == 204
    assert _beacon(evaluator_client, study, token, "back").status_code == 204
    assert _beacon(evaluator_client, study, token, "away").status_code == 429
    assert _shown(study).away_since is None


# --------------------------------------------------------------------------- closing an absence


def test_the_answer_closes_an_open_absence_at_its_arrival_and_stores_it(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    _wait(40)  # at work
    _beacon(evaluator_client, study, token, "away")
    _wait(60)  # away, and answers without a "back" (it was lost, or never sent)
    _answer(evaluator_client, study)
    response = _response()
    assert 100 <= response.seconds < 103
    assert 60 <= response.away_seconds < 62
    assert response.seconds - response.away_seconds == pytest.approx(40, abs=1)


def test_the_task_page_shown_again_closes_an_open_absence(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    _beacon(evaluator_client, study, token, "away")  # the tab closed
    _wait(3600)  # the link reopened an hour later
    assert evaluator_client.get(f"/e/{study.slug}/task/").status_code == 200
    entry = _shown(study)
    assert entry.away_since is None and 3600 <= entry.away_seconds < 3602
    _wait(20)
    _answer(evaluator_client, study)
    response = _response()
    assert response.seconds - response.away_seconds == pytest.approx(20, abs=1)


def test_an_undo_resets_the_time_away_with_the_time_on_task(study, evaluator_client):
    token = current_task(evaluator_client, study)["task"]["token"]
    _beacon(evaluator_client, study, token, "away")
    _wait(50)
    _answer(evaluator_client, study)
    next_token = current_task(evaluator_client, study)["task"]["token"]
    _beacon(evaluator_client, study, next_token, "away")
    _wait(50)
    undone_entry = _response().entry_id
    assert evaluator_client.post(f"/e/{study.slug}/undo/").status_code == 302
    reopened = Entry.objects.get(pk=undone_entry)
    assert reopened.away_seconds == 0 and reopened.away_since is None
    # The task that was next is no longer shown: its absence went with its showing.
    assert not Entry.objects.filter(away_since__isnull=False).exists()
    assert not Entry.objects.filter(away_seconds__gt=0).exists()
    _answer(evaluator_client, study)
    assert _response().away_seconds == 0


def test_the_database_refuses_more_away_than_time_on_task(study, evaluator_client):
    current_task(evaluator_client, study)
    entry = _shown(study)
    for away in (10.5, -1.0):
        with pytest.raises(IntegrityError), transaction.atomic():
            CountResponse.objects.create(entry=entry, evaluator=entry.evaluator, item=entry.item, answer=1,
                                         seconds=10.0, away_seconds=away)
    stored = CountResponse.objects.create(entry=entry, evaluator=entry.evaluator, item=entry.item, answer=1,
                                          seconds=10.0, away_seconds=10.0)
    assert stored.away_seconds == 10.0


def test_the_task_form_says_where_to_report_and_a_preview_does_not(study, evaluator_client, settings):
    settings.FUSION_IDLE_AFTER_SECONDS = 7
    page = evaluator_client.get(f"/e/{study.slug}/task/").content.decode()
    assert f'data-away="/e/{study.slug}/away/" data-idle="7"' in page
    lifecycle.study_close(study=study)
    assert "data-away" not in evaluator_client.get(f"/e/{study.slug}/task/").content.decode()


def test_simulated_evaluators_store_no_time_away(study):
    from webapp.research.services import study_simulate_responses

    study_simulate_responses(study=study, n_evaluators=1, seed=3)
    assert CountResponse.objects.exists()
    assert not CountResponse.objects.filter(away_seconds__gt=0).exists()
    assert not RankResponse.objects.filter(away_seconds__gt=0).exists()


# --------------------------------------------------------------------------- readers


def test_the_participants_page_and_csv_show_active_and_away_minutes(study, evaluator_client):
    while (state := current_task(evaluator_client, study))["done"] is False:
        token = state["task"]["token"]
        _wait(60)  # a minute's work
        _beacon(evaluator_client, study, token, "away")
        _wait(240)  # four minutes away
        _beacon(evaluator_client, study, token, "back")
        r = evaluator_client.post(f"/e/{study.slug}/task/", answer_data(state["task"]))
        assert r.status_code == 302
    n = Evaluator.objects.get(study=study).entries.count()
    user = UserFactory(username="alice")
    study.researchers.add(user)
    researcher = Client()
    researcher.force_login(user)
    r = researcher.get(f"/run/{study.slug}/participants.csv")
    (row,) = csv.DictReader(io.StringIO(r.content.decode()))
    assert float(row["task_minutes"]) == pytest.approx(n * 1.0, abs=0.1 * n)
    assert float(row["away_minutes"]) == pytest.approx(n * 4.0, abs=0.1 * n)
    header = r.content.decode().splitlines()[0].split(",")
    assert header[-1] == "away_minutes" and header[6] == "task_minutes"  # the old columns keep their places
    page = researcher.get(f"/run/{study.slug}/participants/").content.decode()
    assert "Away (min)" in page and f"<td>{float(row['away_minutes']):.1f}</td>" in page


def test_the_report_minutes_on_task_leave_time_away_out(study, evaluator_client):
    from webapp.research.selectors import _finished_time_on_task

    while (state := current_task(evaluator_client, study))["done"] is False:
        token = state["task"]["token"]
        _wait(30)
        _beacon(evaluator_client, study, token, "away")
        _wait(600)
        evaluator_client.post(f"/e/{study.slug}/task/", answer_data(state["task"]))
    n = Evaluator.objects.get(study=study).entries.count()
    times = _finished_time_on_task(study)
    assert times["max_minutes_finished"] == pytest.approx(n * 0.5, abs=0.05 * n)


def test_the_time_estimate_reads_active_time_and_the_speed_rule_the_whole(db):
    study = build_open_study(n_slots=1, protocol=demo_protocol())
    for k in range(1, 6):
        study.slots.create(number=k, seed=k, items=study.slots.get(number=0).items)

    def finished(seconds: float, away: float) -> None:
        ev = joining.evaluator_join(study=study, external_id=f"{Evaluator.objects.count():024x}")
        joining.evaluator_consent(evaluator=ev)
        for entry in ev.entries.filter(item__task="count"):
            CountResponse.objects.create(entry=entry, evaluator=ev, item=entry.item, answer=1, seconds=seconds,
                                         away_seconds=away)
        Evaluator.objects.filter(pk=ev.pk).update(finished_at=timezone.now())

    for _ in range(3):  # 30 s a task at work, and an hour away on each
        finished(3630.0, 3600.0)
    estimate = present(recruitment.time_estimate(study=study, n_tasks=20))
    assert estimate.minutes == 10 and estimate.source == "running median of 3 participants"
    # The speed rule (demo: 1 s median) reads the whole time: 0.5 s of work after a long
    # pause is no script; three of them are counted, and pull the median down.
    assert demo_protocol()["analysis"]["exclusions"]["min_median_seconds"] > 0.5
    for _ in range(3):
        finished(600.5, 600.0)
    lower = present(recruitment.time_estimate(study=study, n_tasks=20))
    assert lower.source == "running median of 6 participants"
    assert lower.minutes == 6  # median of 30, 30, 30, .5, .5, .5 s: 15.25 s a task
