"""A researcher watches the stopping rule in Chromium: the sequential panel moves from
"continue" to "stop" as simulated evaluators of a study with a real effect arrive."""
import pytest

from tests.e2e.test_dashboard import _log_in, thread_worker  # noqa: F401  (an autouse fixture)
from tests.factories import build_open_study
from tests.webapp.research_support import researcher_of
from tests.webapp.test_research_sequential import primary_protocol, simulate
from webapp.research import services


@pytest.fixture
def study(transactional_db, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    study = build_open_study(n_slots=40)
    study.protocol = primary_protocol()
    study.save(update_fields=["protocol"])
    simulate(study, 2, seed=1)
    services.study_result_get_or_compute(study=study, include_simulated=True)  # a dry run
    researcher_of(study)
    return study


def test_the_sequential_panel_moves_from_continue_to_stop(page, live_server, study):
    _log_in(page, live_server, study)
    panel = page.locator("table[data-table=sequential]")
    assert "continue" in panel.inner_text()
    simulate(study, 10, seed=2)  # ten more evaluators arrive
    page.wait_for_function("() => !document.getElementById('results-stale').hidden")
    page.check("#include-simulated")
    page.click("#update-results")
    # the worker stores the new result; the dashboard reloads itself and shows the stop
    page.wait_for_function(
        "() => { const t = document.querySelector('table[data-table=sequential]');"
        " return t && t.innerText.includes('stop: difference shown'); }", timeout=90000)
    assert "continue" not in page.locator("table[data-table=sequential]").inner_text()
