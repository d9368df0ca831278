"""The report's pay and ethics come from the protocol's consent section until the researcher
fills in the report details."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.webapp.research_support import researcher_of
from webapp.research import reports, services
from webapp.studies import lifecycle as study_lifecycle

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


@pytest.fixture
def study():
    return study_lifecycle.study_create(protocol=json.loads(DEMO.read_text()), slug="demo", base_dir=str(DEMO.parent))


def _rows(study) -> dict[str, str]:
    return dict(reports.report_context(study=study, result=None)["pay_rows"])


def test_pay_and_ethics_come_from_the_consent_section_by_default(study):
    consent = json.loads(DEMO.read_text())["consent"]
    rows = _rows(study)
    assert rows["pay"] == consent["pay"] + " (as the consent page stated it)"
    assert rows["ethics"] == consent["ethics_ref"] + " (as the consent page stated it)"
    assert "not given" not in (rows["pay"], rows["ethics"])


def test_the_researchers_own_details_win(study):
    services.report_details_update(study=study, recruitment="", expertise="", pay_per_evaluator="2.50",
                                   pay_currency="GBP", ethics="IRB 2026-17", training="", notes="")
    rows = _rows(study)
    assert rows["pay"].startswith("2.50 GBP per evaluator") and rows["ethics"] == "IRB 2026-17"


def test_the_dashboard_form_starts_with_the_consent_sections_ethics(client, study):
    client.force_login(researcher_of(study))
    page = client.get(f"/research/{study.slug}/").content.decode()
    assert json.loads(DEMO.read_text())["consent"]["ethics_ref"][:60] in page


def test_a_protocol_without_consent_says_not_given():
    doc = json.loads(DEMO.read_text())
    doc.pop("consent")
    study = study_lifecycle.study_create(protocol=doc, slug="plain", base_dir=str(DEMO.parent))
    rows = _rows(study)
    assert rows["pay"] == "not given" and rows["ethics"] == "not given"
