"""Panel round trip from the protocol's recruitment section: ids in, codes and URLs out."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies import joining, lifecycle, recruitment
from webapp.studies.models import CountResponse, Evaluator, Study

from .conftest import PID, current_task, demo_protocol, join

pytestmark = pytest.mark.django_db

@pytest.fixture
def panel_study():
    return build_open_study(n_slots=1, protocol=demo_protocol())


def _link(outcome: str) -> str:
    link = demo_protocol()["recruitment"][outcome]
    return link["url"].replace("{code}", link["code"])


def test_prolific_ids_are_stored_with_the_evaluator(panel_study):
    study_id, session_id = "5" * 24, "0f" * 12  # Prolific's are 24 hexadecimal characters, as its PIDs
    Client().get(f"/join/{panel_study.invite_token}/",
                 {"PROLIFIC_PID": PID, "STUDY_ID": study_id, "SESSION_ID": session_id})
    ev = Evaluator.objects.get(study=panel_study)
    assert (ev.external_id, ev.external_study_id, ev.external_session_id) == (PID, study_id, session_id)


def test_a_full_study_gives_the_full_code_and_url(panel_study):
    join(Client(), panel_study, PROLIFIC_PID=PID)  # the one place, taken on consent
    r = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": "f" * 24})
    page = r.content.decode()
    assert r.status_code == 403 and "taken" in page
    assert demo_protocol()["recruitment"]["full"]["code"] in page and _link("full") in page


@pytest.mark.parametrize("change", [lifecycle.study_close, lifecycle.study_pause])
def test_a_closed_or_paused_study_gives_the_closed_code_and_url(panel_study, change):
    change(study=panel_study)
    r = Client().get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    page = r.content.decode()
    assert r.status_code == 403
    assert demo_protocol()["recruitment"]["closed"]["code"] in page and _link("closed") in page
    assert not Evaluator.objects.filter(study=panel_study).exists()


def test_a_pause_stops_newcomers_but_not_those_at_work(panel_study):
    client = join(Client(), panel_study, PROLIFIC_PID=PID)
    lifecycle.study_pause(study=panel_study)
    task = current_task(client, panel_study)["task"]
    data = {"kind": "count", "token": task["token"], "answer": "2"} if task["kind"] == "count" else {
        "kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}}
    assert client.post(f"/e/{panel_study.slug}/task/", data).status_code == 302
    lifecycle.study_resume(study=panel_study)
    assert Study.objects.get(pk=panel_study.pk).status == "open"
    with pytest.raises(lifecycle.StudySetupError, match="Only a paused study"):
        lifecycle.study_resume(study=panel_study)


def test_declining_takes_no_place_and_gives_the_declined_code(panel_study):
    client = Client()
    client.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    r = client.post(f"/e/{panel_study.slug}/consent/", {"agree": "no"})
    assert _link("declined") in r.content.decode()
    assert _link("declined") in client.get(f"/e/{panel_study.slug}/consent/").content.decode()
    ev = Evaluator.objects.get(study=panel_study)
    assert ev.declined_at is not None and ev.slot_id is None
    # The one place is still free: someone else takes it.
    other = join(Client(), panel_study, PROLIFIC_PID="e" * 24)
    assert other and Evaluator.objects.get(external_id="e" * 24).slot_id is not None


def test_agreeing_after_declining_starts_the_study(panel_study):
    client = Client()
    client.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    client.post(f"/e/{panel_study.slug}/consent/", {"agree": "no"})
    assert client.post(f"/e/{panel_study.slug}/consent/", {"agree": "yes"}).status_code == 302
    ev = Evaluator.objects.get(study=panel_study)
    assert ev.consented_at is not None and ev.declined_at is None and ev.slot_id is not None


def test_the_done_page_links_back_with_the_completion_code(panel_study):
    client = join(Client(), panel_study, PROLIFIC_PID=PID)
    ev = Evaluator.objects.get(study=panel_study)
    while (state := current_task(client, panel_study))["done"] is False:
        task = state["task"]
        data = {"kind": "count", "token": task["token"], "answer": "1"} if task["kind"] == "count" else {
            "kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}}
        client.post(f"/e/{panel_study.slug}/task/", data)
    page = client.get(f"/e/{panel_study.slug}/done/").content.decode()
    assert f"https://app.prolific.com/submissions/complete?cc={panel_study.completion_code}" in page
    assert CountResponse.objects.filter(evaluator=ev).exists()


def test_a_study_without_the_section_reads_the_usual_parameters_and_links_nowhere(study):
    Client().get(f"/join/{study.invite_token}/", {"worker_id": "w-1"})
    assert Evaluator.objects.get(study=study).external_id == "w-1"
    assert recruitment.return_link(study, "declined") is None
    assert present(recruitment.return_link(study, "completion")).url is None


def test_the_time_estimate_uses_the_pilot_then_the_running_median(panel_study):
    pilot = demo_protocol()["consent"]["pilot_seconds_per_task"]
    assert present(recruitment.time_estimate(study=panel_study, n_tasks=20)).minutes == -(-pilot * 20 // 60)
    assert present(recruitment.time_estimate(study=panel_study, n_tasks=20)).source == "pilot"
    # Three finished participants at 30 s a task: the estimate follows them.
    panel_study.slots.create(number=1, seed=1, items=panel_study.slots.get(number=0).items)
    panel_study.slots.create(number=2, seed=2, items=panel_study.slots.get(number=0).items)
    for k in range(3):
        ev = joining.evaluator_join(study=panel_study, external_id=f"{k:024x}")
        joining.evaluator_consent(evaluator=ev)
        for entry in ev.entries.all():
            if entry.item.task == "count":
                CountResponse.objects.create(entry=entry, evaluator=ev, item=entry.item, answer=1, seconds=30.0)
        Evaluator.objects.filter(pk=ev.pk).update(finished_at="2026-01-01T00:00:00Z")
    estimate = present(recruitment.time_estimate(study=panel_study, n_tasks=20))
    assert estimate.minutes == 10 and estimate.source == "running median of 3 participants"
    # Every consent page shows it: the median is computed once per number of finished
    # participants, then a page costs one COUNT, whatever the number of answers.
    with CaptureQueriesContext(connection) as ctx:
        assert recruitment.time_estimate(study=panel_study, n_tasks=20) == estimate
    assert len(ctx.captured_queries) == 1
    panel_study.slots.create(number=3, seed=3, items=panel_study.slots.get(number=0).items)
    ev = joining.evaluator_join(study=panel_study, external_id=f"{9:024x}")
    joining.evaluator_consent(evaluator=ev)
    for entry in ev.entries.filter(item__task="count"):
        CountResponse.objects.create(entry=entry, evaluator=ev, item=entry.item, answer=1, seconds=90.0)
    Evaluator.objects.filter(pk=ev.pk).update(finished_at="2026-01-01T00:00:00Z")
    fourth = present(recruitment.time_estimate(study=panel_study, n_tasks=20))  # median of 30, 30, 30, 90 s
    assert fourth.minutes == 10 and fourth.source == "running median of 4 participants"
    # Three scripts answering in a fifth of a second, under the demo's speed rule (1 s): they
    # finish, but do not tell newcomers the study takes a minute.
    assert demo_protocol()["analysis"]["exclusions"]["min_median_seconds"] > 0.2
    for k in range(3):
        panel_study.slots.create(number=4 + k, seed=4 + k, items=panel_study.slots.get(number=0).items)
        ev = joining.evaluator_join(study=panel_study, external_id=f"{20 + k:024x}")
        joining.evaluator_consent(evaluator=ev)
        for entry in ev.entries.filter(item__task="count"):
            CountResponse.objects.create(entry=entry, evaluator=ev, item=entry.item, answer=1, seconds=0.2)
        Evaluator.objects.filter(pk=ev.pk).update(finished_at="2026-01-01T00:00:00Z")
    assert present(recruitment.time_estimate(study=panel_study, n_tasks=20)) == fourth


def test_a_place_gone_by_the_time_of_consent_gives_the_full_code(panel_study):
    late, early = Client(), Client()
    late.get(f"/join/{panel_study.invite_token}/", {"PROLIFIC_PID": PID})
    join(early, panel_study, PROLIFIC_PID="d" * 24)  # consents first: the one place is theirs
    r = late.post(f"/e/{panel_study.slug}/consent/", {"agree": "yes"})
    assert r.status_code == 403 and _link("full") in r.content.decode()
