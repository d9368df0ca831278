"""The Django admin writes only through the services: frozen fields, actions, view-only rows."""

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.services.helpers import DEMO_PROTOCOL, small_protocol
from webapp.studies import joining
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Checkpoint, CountResponse, Study, Variant

from .conftest import answer_data, current_task, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def draft():
    return study_lifecycle.study_create(protocol=small_protocol(), slug="draft", base_dir=str(DEMO_PROTOCOL.parent))


def change_form_data(response) -> dict:
    """What the browser would send back from an admin change page, untouched."""
    data = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = [v.pk if hasattr(v, "pk") else v for v in value] if isinstance(value, list) else value or ""
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({f"{formset.prefix}-{k}": v for k, v in management.initial.items()})
        for i, f in enumerate(formset.forms):
            data[f"{formset.prefix}-{i}-id"] = f.instance.pk
            data[f"{formset.prefix}-{i}-study"] = f.instance.study_id
    return data


def test_the_frozen_fields_of_an_open_study_are_read_only(admin_client, study):
    url = f"/admin/studies/study/{study.pk}/change/"
    r = admin_client.get(url)
    assert r.status_code == 200
    editable = set(r.context["adminform"].form.fields)
    assert editable == {"researchers"}
    before = Study.objects.values().get(pk=study.pk)
    data = change_form_data(r)
    data.update(
        protocol='{"variants": ["x"]}',
        status="draft",
        plan_seed="99",
        completion_code="FREE",
        title="renamed",
        slug="other",
        invite_token="guessable",
    )
    assert admin_client.post(url, data).status_code == 302
    assert Study.objects.values().get(pk=study.pk) == before


def test_a_draft_keeps_its_protocol_and_status_frozen_too(admin_client, draft):
    r = admin_client.get(f"/admin/studies/study/{draft.pk}/change/")
    assert set(r.context["adminform"].form.fields) == {"title", "description", "completion_code", "researchers"}
    assert admin_client.get("/admin/studies/study/add/").status_code == 403


def test_status_changes_go_through_the_actions(admin_client, study, draft):
    r = admin_client.post(
        "/admin/studies/study/", {"action": "close_studies", "_selected_action": [study.pk, draft.pk]}, follow=True
    )
    study.refresh_from_db()
    draft.refresh_from_db()
    assert study.status == "closed" and study.closed_at is not None
    assert draft.status == "draft"
    assert "Only an open or paused study can be closed; this one is draft." in r.content.decode()
    # Opening checks what study_open checks: this draft has no images yet.
    r = admin_client.post(
        "/admin/studies/study/", {"action": "open_studies", "_selected_action": [draft.pk]}, follow=True
    )
    draft.refresh_from_db()
    assert draft.status == "draft" and "images are still missing" in r.content.decode()
    # An open study cannot be deleted with its answers.
    admin_client.post(
        "/admin/studies/study/", {"action": "delete_selected", "_selected_action": [study.pk], "post": "yes"}
    )
    assert admin_client.get(f"/admin/studies/study/{study.pk}/delete/").status_code == 403
    assert Study.objects.filter(pk=study.pk).exists()


def test_responses_are_read_only(admin_client, study):
    client = join(Client(), study)
    task = current_task(client, study)["task"]
    while task["kind"] != "count":
        client.post(f"/e/{study.slug}/task/", answer_data(task))
        task = current_task(client, study)["task"]
    client.post(f"/e/{study.slug}/task/", answer_data(task, count="3"))
    response = CountResponse.objects.get()
    base = "/admin/studies/countresponse/"
    assert admin_client.get(f"{base}{response.pk}/change/").status_code == 200  # shown
    assert (
        admin_client.post(f"{base}{response.pk}/change/", {"answer": "7", "cant_tell": "", "seconds": "1"}).status_code
        == 403
    )
    assert admin_client.post(f"{base}{response.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{base}add/").status_code == 403
    assert CountResponse.objects.get().answer == 3


def test_assigning_a_checkpoint_goes_through_the_service(admin_client, draft):
    concat_early = Checkpoint.objects.create(
        name="ce", path="/ckpt/ce", sha256="a" * 64, config={"model": {"conditioning": "concat", "fusion": "early"}}
    )
    target = draft.variants.get(name="cross-intermediate")
    page = admin_client.post(
        "/admin/studies/variant/", {"action": "assign_checkpoint", "_selected_action": [target.pk]}
    )
    assert page.status_code == 200 and b'name="checkpoint"' in page.content  # the question first
    r = admin_client.post(
        "/admin/studies/variant/",
        {"action": "assign_checkpoint", "_selected_action": [target.pk], "apply": "1", "checkpoint": concat_early.pk},
        follow=True,
    )
    html = r.content.decode()
    assert "conditioning=&#x27;concat&#x27;, fusion=&#x27;early&#x27;" in html
    assert "conditioning=&#x27;cross&#x27;, fusion=&#x27;intermediate&#x27;" in html
    assert Variant.objects.get(pk=target.pk).checkpoint_id is None
    fits = draft.variants.get(name="concat-early")
    admin_client.post(
        "/admin/studies/variant/",
        {"action": "assign_checkpoint", "_selected_action": [fits.pk], "apply": "1", "checkpoint": concat_early.pk},
    )
    assert Variant.objects.get(pk=fits.pk).checkpoint_id == concat_early.pk
    # The change form offers nothing to edit.
    assert not admin_client.get(f"/admin/studies/variant/{fits.pk}/change/").context["adminform"].form.fields


def test_batches_and_parts_are_cancelled_through_the_service_never_deleted(admin_client, draft):
    from webapp.generation.models import Batch, Part

    batch = Batch.objects.create(study=draft, cfg_scale=1.0, steps=2, sampler="dpm", total_images=2)
    part = Part.objects.create(batch=batch, variant=draft.variants.first(), number=0, work=[[1, 0], [1, 1]], size=2)
    for url in (f"/admin/generation/batch/{batch.pk}/delete/", f"/admin/generation/part/{part.pk}/delete/"):
        assert admin_client.post(url, {"post": "yes"}).status_code == 403
    r = admin_client.get("/admin/generation/batch/")
    assert "delete_selected" not in [name for name, _ in r.context["action_form"].fields["action"].choices]
    r = admin_client.post("/admin/generation/batch/", {"action": "cancel", "_selected_action": [batch.pk]})
    assert r.status_code == 302
    batch.refresh_from_db()
    part.refresh_from_db()
    assert (batch.status, part.status) == ("cancelled", "cancelled") and batch.finished_at is not None
    # Cancelling again is refused by the service, with its message, and changes nothing.
    r = admin_client.post("/admin/generation/batch/", {"action": "cancel", "_selected_action": [batch.pk]}, follow=True)
    assert "Only a queued or running batch can be cancelled" in r.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists()


def test_report_details_are_saved_through_the_service(admin_client, draft, monkeypatch):
    from webapp.research import services as research_services
    from webapp.research.models import ReportDetails

    details = research_services.report_details_update(study=draft, recruitment="Prolific")
    calls = []
    update = research_services.report_details_update

    def spy(**kw):
        calls.append(kw)
        return update(**kw)

    monkeypatch.setattr(research_services, "report_details_update", spy)
    url = f"/admin/research/reportdetails/{details.pk}/change/"
    r = admin_client.get(url)
    assert "study" not in r.context["adminform"].form.fields  # read-only once made
    data = change_form_data(r)
    data.update(ethics="IRB 2026-17", pay_per_evaluator="3.50", pay_currency="GBP")
    assert admin_client.post(url, data).status_code == 302
    assert len(calls) == 1 and calls[0]["study"] == draft
    details = ReportDetails.objects.get(study=draft)
    assert (details.recruitment, details.ethics, str(details.pay_per_evaluator)) == ("Prolific", "IRB 2026-17", "3.50")


# Three ids a Prolific link carries (24 hexadecimal characters each), none of which the
# admin pages may show to an admin who is not one of the study's researchers.
PANEL_IDS = {"external_id": "5f1e" * 6, "external_study_id": "a0b1" * 6, "external_session_id": "c2d3" * 6}


def test_panel_ids_are_shown_in_the_admin_to_the_studys_researchers_only(admin_client, study):
    # Probe 4: every admin read each participant's Prolific ID and SESSION_ID (which lets
    # whoever holds it continue the place and collect the code) on the evaluator's admin
    # page, and could search the admin by a Prolific ID, though the participants page, the
    # one place meant to show them, is the study's own researchers' only.
    evaluator = joining.evaluator_join(study=study, external_id=PANEL_IDS["external_id"],
                                    external_study_id=PANEL_IDS["external_study_id"],
                                    external_session_id=PANEL_IDS["external_session_id"])
    page = f"/admin/studies/evaluator/{evaluator.pk}/change/"
    r = admin_client.get(page)
    assert r.status_code == 200 and evaluator.pseudonym in r.content.decode()
    assert not [name for name, value in PANEL_IDS.items() if value in r.content.decode()]
    r = admin_client.get("/admin/studies/evaluator/", {"q": PANEL_IDS["external_id"]})
    assert r.status_code == 200 and r.context["cl"].result_count == 0
    # A researcher of the study who is also staff sees them, as on the participants page.
    researcher = UserFactory(is_staff=True, is_superuser=True)
    study.researchers.add(researcher)
    client = Client()
    client.force_login(researcher)
    r = client.get(page)
    assert all(value in r.content.decode() for value in PANEL_IDS.values())


@pytest.mark.parametrize("lookup", ["external_id", "external_id__startswith", "external_study_id__startswith",
                                    "external_session_id__startswith", "external_session_id__gt",
                                    "browser__startswith"])
def test_an_admin_cannot_filter_evaluators_by_a_panel_id_or_browser_token(admin_client, study, lookup):
    # Probe 7: the changelist took any field of the evaluator as a URL filter, so an admin
    # who is not the study's researcher learnt whether a Prolific ID took part and where,
    # and read a SESSION_ID (or browser token) a character at a time with __startswith.
    # The filter is refused as a bad request, whoever asks.
    evaluator = joining.evaluator_join(study=study, external_id=PANEL_IDS["external_id"],
                                       external_study_id=PANEL_IDS["external_study_id"],
                                       external_session_id=PANEL_IDS["external_session_id"])
    study.researchers.add(UserFactory(is_staff=True))
    field = lookup.split("__")[0]
    value = (PANEL_IDS.get(field) or evaluator.browser)[:1]
    r = admin_client.get("/admin/studies/evaluator/", {lookup: value if "__" in lookup else PANEL_IDS[field]})
    assert r.status_code == 400
    assert PANEL_IDS["external_id"] not in r.content.decode()
    # The filters the list offers still work.
    r = admin_client.get("/admin/studies/evaluator/", {"study__id__exact": study.pk, "is_simulated__exact": 0})
    assert r.status_code == 200 and r.context["cl"].result_count == 1


@pytest.mark.parametrize("model", ["countresponse", "rankresponse"])
def test_an_admin_cannot_filter_responses_by_browser_token(admin_client, study, model):
    r = admin_client.get(f"/admin/studies/{model}/", {"browser__startswith": "a"})
    assert r.status_code == 400
