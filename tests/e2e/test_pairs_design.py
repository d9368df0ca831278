"""A pairs study (preference_task.design "pairs") of 8 variants in Chromium: an evaluator
answers its A/B pair tasks with the keyboard; each answer is stored at width 2 for the two
variants the plan showed; the report shows every variant's strength and the pairs shown."""
import pytest

from tests.e2e.conftest import next_task
from tests.e2e.test_rank_widths import _join_by_keyboard, _next
from tests.factories import UserFactory, fill_study_images
from tests.webapp.research_support import fill_study, researcher_of
from webapp.research import services as research_services
from webapp.studies import lifecycle
from webapp.studies.models import Entry, Evaluator, RankResponse

NAMES = tuple(f"model-{k}" for k in "abcdefgh")
CAPTIONS = ("a red circle", "two blue squares", "a green triangle", "three yellow circles", "a cat")


@pytest.fixture
def pairs_study(transactional_db, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    UserFactory(username="boss", is_staff=True)
    protocol = {"name": "eight models e2e", "variants": list(NAMES),
                "sampling": {"cfg_scale": 1.0, "steps": 2, "sampler": "dpm_solver", "seed": 0},
                "preference_task": {"captions": list(CAPTIONS), "design": "pairs", "allow_ties": True},
                "evaluators": {"n": 4, "overlap": 4}}
    study = lifecycle.study_create(protocol=protocol, slug="pairs8")
    fill_study_images(study)
    return lifecycle.study_open(study=study)


def test_an_evaluator_answers_a_pairs_studys_ab_tasks_by_keyboard(page, browser, live_server, pairs_study):
    study = pairs_study
    ev_page = _join_by_keyboard(browser, live_server, study)
    assert "left is better" in ev_page.inner_text(".keys") and "about the same" in ev_page.inner_text(".keys")
    keys, expected = ["ArrowLeft", "ArrowRight", "0", "1", "2"], [[1, 2], [2, 1], [1, 1], [1, 2], [2, 1]]
    answered = 0
    while _next(ev_page, "#pair-form"):
        assert ev_page.locator("#pair-form .tile").count() == 2
        text = ev_page.content()
        assert not any(name in text for name in NAMES)  # blind: no model named anywhere on the page
        with next_task(ev_page):
            ev_page.keyboard.press(keys[answered])
        answered += 1
    assert answered == len(CAPTIONS)
    ev = Evaluator.objects.get(study=study)
    responses = list(RankResponse.objects.filter(evaluator=ev).select_related("entry").order_by("entry__index"))
    assert [r.ranks for r in responses] == expected
    variants = sorted(study.variants.all(), key=lambda v: v.index)
    for r in responses:
        assert r.width == 2
        assert [r.image_0.variant, r.image_1.variant] == [variants[v] for v in r.entry.positions]
    assert len({frozenset(e.positions) for e in Entry.objects.filter(evaluator=ev)}) == len(CAPTIONS)
    ev_page.context.close()
    fill_study(study, 3, seed=1)
    research_services.study_result_get_or_compute(study=study)
    researcher_of(study)
    page.goto(f"{live_server.url}/research/{study.slug}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/research/{study.slug}/")
    page.goto(f"{live_server.url}/research/{study.slug}/report/")
    table = page.locator("table[data-table=figure6]").first
    assert all(name in table.inner_text() for name in NAMES) and table.locator("tbody tr").count() == 8
    assert page.locator("table[data-table=pairs] tbody tr").count() >= 8
