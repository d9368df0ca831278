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


def test_a_studys_plan_comes_from_a_secret_seed_not_from_its_protocol():
    """The protocol is often public (pre-registered, in this repository); with its seed it
    gave every slot's items, order and screen positions, and so every image's model, to an
    evaluator after a few tasks. Each study draws its own seed."""
    from evalstudy.design import REPEAT_SUFFIX
    from tests.factories import fill_study_images
    from webapp.studies.models import Item, Slot

    protocol = small_protocol()
    a = lifecycle.study_create(protocol=protocol, slug="secret-a", base_dir=str(DEMO_PROTOCOL.parent))
    b = lifecycle.study_create(protocol=protocol, slug="secret-b", base_dir=str(DEMO_PROTOCOL.parent))
    proto = a.parsed_protocol
    assert proto is not None
    public_seed = proto.analysis.seed
    assert len({a.plan_seed, b.plan_seed, public_seed}) == 3 and a.plan_seed > 0
    for study in (a, b):
        fill_study_images(study)
        lifecycle.study_open(study=study)
    by_key = {it.key: it for it in Item.objects.filter(study=a, repeat_of__isnull=True)}
    # The plan anyone with the protocol computes: the study's own planner, on the protocol's seed
    # (an unsaved copy of the study's row).
    public = lifecycle.study_assignment_plans(study=Study(protocol=a.protocol, plan_seed=public_seed), by_key=by_key)

    def stored(study):  # each slot's items in order (a repeat under its original's key), its screen orders
        keys = dict(Item.objects.filter(study=study).values_list("pk", "key"))
        return [([keys[pk].removesuffix(REPEAT_SUFFIX) for pk in s.items],
                 {keys[int(pk)]: order for pk, order in s.positions.items() if REPEAT_SUFFIX not in keys[int(pk)]})
                for s in Slot.objects.filter(study=study).order_by("number")]

    computable = [([k for _, k in p.items], p.positions) for p in public]
    assert stored(a) != computable and stored(b) != computable and stored(a) != stored(b)
