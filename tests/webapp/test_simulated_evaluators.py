"""Simulated evaluators (simulate_responses) are never mistaken for people: they take no
participant's place, results and exports leave them out unless asked for (then labelled),
and one command removes them."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command

from tests.factories import build_open_study
from tests.narrow import present
from tests.webapp.research_support import fill_study, researcher_of
from webapp.research import exports, participants, services
from webapp.research.models import StudyResult
from webapp.studies import joining
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Slot

pytestmark = pytest.mark.django_db


def _simulate(study, n: int) -> str:
    out = io.StringIO()
    call_command("simulate_responses", study.slug, "--evaluators", str(n), stdout=out)
    return out.getvalue()


def _csv_evaluators(study, **kwargs) -> set[str]:
    rows = csv.DictReader(io.StringIO("".join(exports.csv_chunks(study=study, **kwargs))))
    return {r["evaluator_id"] for r in rows}


def test_simulated_evaluators_take_no_place_and_follow_the_slots_plans():
    study = build_open_study(n_slots=3)
    message = _simulate(study, 5)  # more than the study has places
    simulated = Evaluator.objects.filter(study=study, is_simulated=True)
    assert simulated.count() == 5 and not simulated.filter(slot__isnull=False).exists()
    assert all(e.finished_at for e in simulated)
    # each followed a slot's plan, the slots in turn
    plans = [list(Entry.objects.filter(evaluator=e).order_by("index").values_list("item_id", flat=True))
             for e in simulated.order_by("pk")]
    slots = [s.items for s in Slot.objects.filter(study=study).order_by("number")]
    assert plans == [slots[0], slots[1], slots[2], slots[0], slots[1]]
    # every place is still free for people, who join and consent as before
    assert participants.study_places(study=study).free == 3
    people = [joining.evaluator_consent(evaluator=joining.evaluator_join(study=study))
              for _ in range(3)]
    assert all(p.slot_id for p in people)
    assert "take no participant's place" in message and f"remove_simulated {study.slug}" in message


def test_results_and_exports_leave_them_out_unless_asked_then_label_them(settings):
    settings.FUSION_RESULTS_N_BOOT = 50
    study = build_open_study(n_slots=3)
    people = {e.pseudonym for e in fill_study(study, 2)}
    _simulate(study, 3)
    simulated = set(Evaluator.objects.filter(study=study, is_simulated=True).values_list("pseudonym", flat=True))

    assert _csv_evaluators(study) == people
    labelled = _csv_evaluators(study, include_simulated=True)
    assert labelled == people | {exports.SIMULATED_PREFIX + p for p in simulated}
    jsonl = [json.loads(line) for line in "".join(
        exports.jsonl_chunks(study=study, salt="s")).splitlines()]
    assert {r["evaluator_id"] for r in jsonl} == people and not any(r["simulated"] for r in jsonl)
    jsonl = [json.loads(line) for line in "".join(
        exports.jsonl_chunks(study=study, salt="s", include_simulated=True)).splitlines()]
    assert {r["evaluator_id"] for r in jsonl if r["simulated"]} == simulated

    real = present(services.study_result_get_or_compute(study=study))
    assert not real.includes_simulated
    assert real.n_responses == (CountResponse.objects.filter(evaluator__is_simulated=False).count()
                                + RankResponse.objects.filter(evaluator__is_simulated=False).count())
    assert real.result["unfiltered"]["data"]["n_evaluators"] == 2
    dry = present(services.study_result_get_or_compute(study=study, include_simulated=True))
    assert dry.pk != real.pk and dry.includes_simulated
    assert dry.result["unfiltered"]["data"]["n_evaluators"] == 5


def test_the_web_exports_and_dashboard_ask_and_label(client, settings):
    settings.FUSION_RESULTS_N_BOOT = 50
    study = build_open_study(n_slots=3)
    fill_study(study, 1)
    _simulate(study, 2)
    client.force_login(researcher_of(study))
    base = f"/research/{study.slug}"
    plain = b"".join(client.get(f"{base}/export/responses.csv").streaming_content).decode()
    asked = b"".join(client.get(f"{base}/export/responses.csv?simulated=1").streaming_content).decode()
    assert exports.SIMULATED_PREFIX not in plain and exports.SIMULATED_PREFIX in asked

    page = client.get(f"{base}/").content.decode()
    assert 'id="include-simulated"' in page and "include the 2 simulated evaluators" in page
    services.study_result_get_or_compute(study=study, include_simulated=True)
    page = client.get(f"{base}/").content.decode()
    assert 'id="results-simulated"' in page and "Dry run" in page
    update, _ = services.results_update_request(study=study, include_simulated=False)
    services.results_update_run(update_id=update.pk)
    assert 'id="results-simulated"' not in client.get(f"{base}/").content.decode()


def test_remove_simulated_deletes_them_and_their_results_and_keeps_people(settings):
    settings.FUSION_RESULTS_N_BOOT = 50
    study = build_open_study(n_slots=3)
    fill_study(study, 2)
    _simulate(study, 3)
    services.study_result_get_or_compute(study=study, include_simulated=True)
    kept = services.study_result_get_or_compute(study=study)
    people_answers = CountResponse.objects.filter(evaluator__study=study, evaluator__is_simulated=False).count()
    out = io.StringIO()
    call_command("remove_simulated", study.slug, stdout=out)
    assert out.getvalue().strip() == f"Removed 3 simulated evaluators from {study.slug}."
    assert not Evaluator.objects.filter(study=study, is_simulated=True).exists()
    assert Evaluator.objects.filter(study=study).count() == 2
    assert CountResponse.objects.filter(evaluator__study=study).count() == people_answers
    assert list(StudyResult.objects.filter(study=study)) == [kept]


def test_simulate_responses_ends_with_an_operators_note_when_the_study_changes(monkeypatch):
    """The study closing or pausing under a run is no failure of the command: exit 0, say so."""
    study = build_open_study(n_slots=3)
    real_join = joining.evaluator_join
    calls = []

    def join_then_pause(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise joining.StudyUnavailable("This study is paused and takes no new participants at the moment.")
        return real_join(**kwargs)

    monkeypatch.setattr(joining, "evaluator_join", join_then_pause)
    message = _simulate(study, 5)  # no CommandError: exit status 0
    assert "2 simulated evaluators answered" in message
    assert "Stopped after 2 of 5: This study is paused" in message
    assert "Thank you for your interest" not in message
    assert Evaluator.objects.filter(study=study, is_simulated=True).count() == 2


def test_the_participants_page_of_a_dry_run_lists_people_only_and_does_not_fail(client):
    # Probe 7: after simulate_responses on a study no person had answered yet (the dry run
    # docs/running-a-study.md shows), /run/<slug>/participants/ and its CSV answered 500:
    # the exclusion rules were read from an export that leaves the simulated out, empty.
    study = build_open_study(n_slots=3)
    _simulate(study, 2)
    person = joining.evaluator_consent(evaluator=joining.evaluator_join(study=study, external_id="person-1"))
    client.force_login(researcher_of(study))
    page = client.get(f"/run/{study.slug}/participants/")
    assert page.status_code == 200 and person.pseudonym in page.content.decode()
    r = client.get(f"/run/{study.slug}/participants.csv")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [(row["participant_id"], row["suggestion"]) for row in rows] == [("person-1", participants.Suggestion.WAIT)]
