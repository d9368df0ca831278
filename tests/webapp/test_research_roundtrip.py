"""The numbers on the dashboard are the numbers evalstudy's command line gets from the export."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.webapp.research_support import researcher_of, update_results
from tests.webapp.test_research_exports import open_demo_study
from webapp.research.models import StudyResult

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
N_BOOT = 200


def test_export_then_evalstudy_analyze_gives_the_dashboards_numbers(client, tmp_path, settings):
    settings.FUSION_RESULTS_N_BOOT = N_BOOT
    study = open_demo_study()
    call_command("simulate_responses", study.slug, "--evaluators", "12", "--quality",
                 "concat-early=0.5,concat-intermediate=0.8,cross-early=0.6,cross-intermediate=0.9",
                 stdout=io.StringIO())
    client.force_login(researcher_of(study))
    # a dry run: the simulated evaluators are asked for, else left out (and then labelled)
    update_results(client, study, data={"include_simulated": "1"})

    dashboard = client.get(f"/research/{study.slug}/results.json")
    assert dashboard.status_code == 200
    shown = dashboard.json()

    csv_path, protocol_path = tmp_path / "responses.csv", tmp_path / "protocol.json"
    csv_path.write_bytes(b"".join(client.get(f"/research/{study.slug}/export/responses.csv?simulated=1").streaming_content))
    protocol_path.write_bytes(client.get(f"/research/{study.slug}/export/protocol.json").content)
    run = subprocess.run(
        [sys.executable, "-m", "evalstudy", "analyze", str(csv_path), "--protocol", str(protocol_path), "--json",
         "--n-boot", str(N_BOOT), "--seed", str(shown["settings"]["seed"])],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == shown
    assert shown["protocol"]["hash"] == study.protocol_hash
    assert shown["data"]["n_evaluators"] + shown["exclusions"]["n_excluded"] == 12
    assert shown["unfiltered"]["data"]["n_evaluators"] == 12
    # the update computed it once; the export of the aggregates is the same stored result
    aggregates = client.get(f"/research/{study.slug}/export/aggregates.json")
    assert json.loads(aggregates.content) == shown
    assert StudyResult.objects.filter(study=study).count() == 1
