"""A study's status moves only as lifecycle.STUDY_TRANSITIONS says, whoever asks: the
researcher's page, the admin, or `manage.py study_status`."""
import io

import pytest
from django.core.management import CommandError, call_command

from tests.services.helpers import DEMO_PROTOCOL, small_protocol
from webapp.studies import lifecycle
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db

STATUSES = [s.value for s in Study.Status]
EXPECTED = {  # status -> the actions it allows
    "draft": ["open"], "open": ["pause", "close"], "paused": ["resume", "close"], "closed": [],
}


def a_study(status: str) -> Study:
    study = lifecycle.study_create(protocol=small_protocol(), slug=f"s-{status}", base_dir=str(DEMO_PROTOCOL.parent))
    Study.objects.filter(pk=study.pk).update(status=status)
    study.refresh_from_db()
    return study


@pytest.mark.parametrize("status", STATUSES)
def test_each_status_allows_exactly_its_actions(status):
    assert lifecycle.study_actions_allowed(status=status) == EXPECTED[status]


@pytest.mark.parametrize("status", ["draft", "closed"])
def test_only_an_open_or_paused_study_can_be_closed_and_a_refusal_changes_nothing(status):
    study = a_study(status)
    with pytest.raises(lifecycle.StudySetupError, match="Only an open or paused study can be closed"):
        lifecycle.study_close(study=study)
    study.refresh_from_db()
    assert study.status == status and study.closed_at is None


@pytest.mark.parametrize("status", ["open", "paused"])
def test_an_open_or_paused_study_closes(status):
    study = lifecycle.study_close(study=a_study(status))
    assert study.status == "closed" and study.closed_at is not None


@pytest.mark.parametrize(("action", "status"), [("pause", "paused"), ("pause", "draft"), ("resume", "open"),
                                                ("resume", "closed")])
def test_pause_and_resume_refuse_the_wrong_status(action, status):
    study = a_study(status)
    with pytest.raises(lifecycle.StudySetupError, match="Only an? .* study can be"):
        getattr(lifecycle, f"study_{action}")(study=study)
    study.refresh_from_db()
    assert study.status == status


def test_the_command_refuses_to_close_a_draft():
    a_study("draft")
    with pytest.raises(CommandError, match="Only an open or paused study can be closed; this one is draft"):
        call_command("study_status", "s-draft", "--close", stdout=io.StringIO())
    assert Study.objects.get(slug="s-draft").status == "draft"


def test_the_admin_closes_a_paused_study_and_leaves_a_draft(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw-not-used-12345"))
    paused, draft = a_study("paused"), a_study("draft")
    client.post("/admin/studies/study/", {"action": "close_studies", "_selected_action": [paused.pk, draft.pk]})
    assert Study.objects.get(pk=paused.pk).status == "closed"
    assert Study.objects.get(pk=draft.pk).status == "draft"
