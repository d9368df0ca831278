"""Releasing a participant's place (places.evaluator_release), from the participants page
and the admin: the answers stay, the slot is free again, the panel id may start afresh
with a new session; only the study's researchers (page) and admins (admin) may."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests.factories import build_open_study
from tests.webapp.research_support import researcher_of
from webapp.studies import places
from webapp.studies.models import CountResponse, Evaluator, RankResponse
from webapp.studies.selectors import EvaluatorStatus, evaluators_with_status

from .conftest import answer_data, current_task, demo_protocol, join

pytestmark = pytest.mark.django_db

PID, OTHER = "0123456789abcdef01234567", "f" * 24
STUDY, S1, S2 = "57" * 12, "5e" * 12, "ab" * 12


@pytest.fixture
def panel_study():
    return build_open_study(n_slots=1, protocol=demo_protocol())


def _stuck(study) -> tuple[Client, Evaluator]:
    """A participant who answered one task in session S1 (and then, say, returned it)."""
    client = join(Client(), study, PROLIFIC_PID=PID, STUDY_ID=STUDY, SESSION_ID=S1)
    assert client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"])).status_code == 302
    return client, Evaluator.objects.get(external_id=PID)


def _answers() -> list[tuple[int, int]]:
    rows = list(CountResponse.objects.values_list("evaluator_id", "entry_id"))
    return sorted(rows + list(RankResponse.objects.values_list("evaluator_id", "entry_id")))


def _release(client: Client, study, pseudonym: str):
    return client.post(f"/run/{study.slug}/participants/release/", {"pseudonym": pseudonym})


def test_a_released_place_keeps_its_answers_and_frees_the_slot_and_the_id(panel_study):
    first, ev = _stuck(panel_study)
    answers = _answers()
    # Stuck: the new session is refused, and the study's one place is taken.
    assert Client().get(f"/join/{panel_study.invite_token}/",
                        {"PROLIFIC_PID": PID, "STUDY_ID": STUDY, "SESSION_ID": S2}).status_code == 403
    researcher = Client()
    researcher.force_login(researcher_of(panel_study))
    r = _release(researcher, panel_study, ev.pseudonym)
    assert r.status_code == 302 and r["Location"].endswith("/participants/")
    ev.refresh_from_db()
    assert ev.released_at is not None and ev.abandoned_at is not None and ev.slot_id is not None
    assert _answers() == answers  # nothing lost
    assert first.get(f"/e/{panel_study.slug}/task/").status_code == 403  # signed out
    # The participant starts afresh from their new submission, in the slot that was freed.
    again = join(Client(), panel_study, PROLIFIC_PID=PID, STUDY_ID=STUDY, SESSION_ID=S2)
    new = Evaluator.objects.get(external_id=PID, released_at__isnull=True)
    assert new.pk != ev.pk and new.slot_id == ev.slot_id and new.external_session_id == S2
    assert current_task(again, panel_study)["progress"]["answered"] == 0
    page = researcher.get(f"/run/{panel_study.slug}/participants/").content.decode()
    assert "is released; their answers are kept" in page and page.count(PID) >= 2


def test_releasing_twice_or_a_finished_place_changes_nothing(panel_study):
    _, ev = _stuck(panel_study)
    researcher = Client()
    researcher.force_login(researcher_of(panel_study))
    Evaluator.objects.filter(pk=ev.pk).update(finished_at=timezone.now())
    before = list(Evaluator.objects.values())
    r = _release(researcher, panel_study, ev.pseudonym)
    assert r.status_code == 302 and list(Evaluator.objects.values()) == before
    assert "has finished the study" in researcher.get(f"/run/{panel_study.slug}/participants/").content.decode()
    Evaluator.objects.filter(pk=ev.pk).update(finished_at=None)
    places.evaluator_release(evaluator=ev)
    with pytest.raises(places.PlaceError, match="released already"):
        places.evaluator_release(evaluator=ev)


def test_only_the_studys_researchers_release_and_only_by_post(panel_study):
    _, ev = _stuck(panel_study)
    before = list(Evaluator.objects.values())
    stranger = Client()
    stranger.force_login(get_user_model().objects.create_user(username="bob", password="pw-for-tests"))
    assert _release(stranger, panel_study, ev.pseudonym).status_code == 404
    anonymous = _release(Client(), panel_study, ev.pseudonym)
    assert anonymous.status_code == 302 and "/research/login/" in anonymous["Location"]
    researcher = Client()
    researcher.force_login(researcher_of(panel_study))
    assert researcher.get(f"/run/{panel_study.slug}/participants/release/", {"pseudonym": ev.pseudonym}
                          ).status_code == 405
    # Another study's researcher cannot name this study's participant through their own study.
    other_study = build_open_study(n_slots=1, protocol=demo_protocol())
    other = Client()
    other.force_login(researcher_of(other_study, username="carol"))
    assert _release(other, other_study, ev.pseudonym).status_code == 302
    assert list(Evaluator.objects.values()) == before


def test_a_release_without_the_csrf_token_is_refused(panel_study):
    _, ev = _stuck(panel_study)
    researcher = Client(enforce_csrf_checks=True)
    researcher.force_login(researcher_of(panel_study))
    assert _release(researcher, panel_study, ev.pseudonym).status_code == 403
    assert Evaluator.objects.get(pk=ev.pk).released_at is None
    # The page's own form carries it.
    page = researcher.get(f"/run/{panel_study.slug}/participants/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page and f'value="{ev.pseudonym}"' in page


def test_admins_release_from_the_admin(panel_study):
    _, ev = _stuck(panel_study)
    admin = Client()
    admin.force_login(get_user_model().objects.create_user(username="root", password="pw-for-tests", is_staff=True,
                                                           is_superuser=True))
    r = admin.post("/admin/studies/evaluator/", {"action": "release_places", "_selected_action": [ev.pk]}, follow=True)
    assert r.status_code == 200 and "their answers are kept" in r.content.decode()
    assert Evaluator.objects.get(pk=ev.pk).released_at is not None
    assert CountResponse.objects.filter(evaluator=ev).count() + RankResponse.objects.filter(evaluator=ev).count() == 1


def test_a_released_place_is_abandoned_even_after_its_participant_came_back_once(panel_study):
    # Timed out once (a newcomer could have taken the place), back at work since (seen after
    # that), then released: no longer at work, whatever the old abandonment's time says.
    _, ev = _stuck(panel_study)
    earlier = timezone.now() - timedelta(minutes=5)
    Evaluator.objects.filter(pk=ev.pk).update(abandoned_at=earlier, last_seen_at=timezone.now())
    assert evaluators_with_status().get(pk=ev.pk).status == EvaluatorStatus.ACTIVE.value
    ev.refresh_from_db()
    places.evaluator_release(evaluator=ev)
    assert evaluators_with_status().get(pk=ev.pk).status == EvaluatorStatus.ABANDONED.value
