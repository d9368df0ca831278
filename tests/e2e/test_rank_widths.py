"""Studies of 2, 3 and 5 variants in Chromium, from the protocol upload to the results.

A researcher uploads a ranking protocol and opens the study; evaluators answer with the
keyboard alone (the pairwise A/B page, or the ranking page with ties); more evaluators
answer through the services; the dashboard and the report show every variant.
"""
import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.conftest import next_task, settled
from tests.factories import UserFactory, fill_study_images
from tests.webapp.research_support import researcher_of
from webapp.research import services as research_services
from webapp.studies import flow, joining
from webapp.studies.models import Entry, Evaluator, RankResponse, Study

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
CAPTIONS = ("a red circle", "two blue squares", "a green triangle", "three yellow circles")
N_EVALUATORS = 6  # each answers every caption (overlap = n)


@pytest.fixture
def admin(transactional_db, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    user = UserFactory(username="boss", is_staff=True)
    return user


def _protocol(n: int, *, allow_ties: bool) -> dict:
    task: dict = {"captions": list(CAPTIONS)}
    if allow_ties:
        task["allow_ties"] = True
    return {"name": f"{n}-way e2e", "variants": list(NAMES[:n]),
            "sampling": {"cfg_scale": 1.0, "steps": 2, "sampler": "dpm_solver", "seed": 0},
            "preference_task": task, "evaluators": {"n": N_EVALUATORS, "overlap": N_EVALUATORS}}


def _upload_and_open(page, live_server, tmp_path, n: int, *, allow_ties: bool, slug: str) -> Study:
    page.goto(f"{live_server.url}/research/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.click("#new-study-link")
    path = tmp_path / f"{slug}.json"
    path.write_text(json.dumps(_protocol(n, allow_ties=allow_ties)))
    page.set_input_files("#id_protocol", str(path))
    page.fill("#id_slug", slug)
    page.click("#create")
    page.wait_for_url(f"{live_server.url}/run/{slug}/")
    study = Study.objects.get(slug=slug)
    fill_study_images(study)  # what the generation batch does (tests/webapp cover it)
    page.click("#action-open")
    page.click("#confirm-yes")
    page.wait_for_selector("#action-pause")
    return study


def _await_focus(page, selector):
    page.wait_for_function("s => document.activeElement && document.activeElement.matches(s)", arg=selector)


def _join_by_keyboard(browser, live_server, study, *, phone: bool = False):
    """A new evaluator's page, past consent and instructions with Enter, on the first task."""
    if phone:
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                      device_scale_factor=2)
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{live_server.url}/join/{study.invite_token}/")
    _await_focus(page, "button[name=agree]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _await_focus(page, "#start")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    return page


def _next(page, form: str) -> bool:
    """Whether another task is shown (False on the page that thanks the evaluator)."""
    page.wait_for_function("f => document.querySelector(f) || location.pathname.endsWith('/done/')", arg=form)
    settled(page)
    return page.query_selector(form) is not None


def _answer_the_rest(study: Study, *, allow_ties: bool, seed: int) -> None:
    """The study's other evaluators, through the services: random rankings, ties now and then."""
    rng = random.Random(seed)
    for k in range(N_EVALUATORS - Evaluator.objects.filter(study=study).count()):
        ev = joining.evaluator_join(study=study, external_id=f"w{k}")
        joining.evaluator_consent(evaluator=ev)
        for entry in Entry.objects.filter(evaluator=ev).order_by("index"):
            n = len(entry.positions)
            scores = [rng.randint(0, n - 1 if allow_ties else 10 ** 6) for _ in range(n)]
            ranks = [1 + sum(t > s for t in scores) for s in scores]  # competition ranks, ties shared
            if not allow_ties and len(set(ranks)) < n:
                ranks = list(range(1, n + 1))
                rng.shuffle(ranks)
            flow.entry_mark_shown(entry=entry, at=timezone.now() - timedelta(seconds=rng.uniform(2.0, 9.0)))
            token = flow.entry_token_make(entry=entry)
            flow.rank_response_submit(evaluator=ev, token=token, ranks=ranks)


def _results_show_every_variant(page, live_server, study: Study, n: int) -> None:
    research_services.study_result_get_or_compute(study=study)
    researcher_of(study)
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/research/{study.slug}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/research/{study.slug}/")
    for url in (f"/research/{study.slug}/", f"/research/{study.slug}/report/"):
        page.goto(live_server.url + url)
        table = page.locator("table[data-table=figure6]").first
        text = table.inner_text()
        for name in NAMES[:n]:
            assert name in text, (url, name, text)
        assert table.locator("tbody tr").count() == n
        # every pair of variants: better / about the same / worse
        pairs = page.locator("table[data-table=pairs]").first
        assert pairs.locator("tbody tr").count() == n * (n - 1) // 2
        assert f"{NAMES[0]} vs {NAMES[1]}" in pairs.inner_text()


def test_pairwise_study_with_ties_by_keyboard_from_upload_to_results(page, browser, live_server, admin, tmp_path):
    study = _upload_and_open(page, live_server, tmp_path, 2, allow_ties=True, slug="ab")
    ev_page = _join_by_keyboard(browser, live_server, study, phone=True)
    # The keys are documented on the page, and the page fits a 390 px phone.
    assert "left is better" in ev_page.inner_text(".keys") and "about the same" in ev_page.inner_text(".keys")
    assert ev_page.evaluate("document.documentElement.scrollWidth") <= 390
    keys, expected = ["ArrowLeft", "ArrowRight", "0", "2"], [[1, 2], [2, 1], [1, 1], [2, 1]]
    answered = 0
    while _next(ev_page, "#pair-form"):
        with next_task(ev_page):
            ev_page.keyboard.press(keys[answered])
        answered += 1
    assert answered == len(CAPTIONS)
    ev = Evaluator.objects.get(study=study)
    ranks = [r.ranks for r in RankResponse.objects.filter(evaluator=ev).order_by("entry__index")]
    assert ranks == expected[:answered]
    ev_page.context.close()
    _answer_the_rest(study, allow_ties=True, seed=2)
    _results_show_every_variant(page, live_server, study, 2)


def test_three_variant_ranking_study_by_keyboard_from_upload_to_results(page, browser, live_server, admin, tmp_path):
    study = _upload_and_open(page, live_server, tmp_path, 3, allow_ties=False, slug="three")
    ev_page = _join_by_keyboard(browser, live_server, study)
    assert ev_page.locator("#rank-form .tile").count() == 3
    assert ev_page.locator("#all-good").count() == 0 and ev_page.locator("#tie").count() == 0
    answered = 0
    while _next(ev_page, "#rank-form"):
        for key in "312":  # screen positions from best to worst
            ev_page.keyboard.press(key)
        with next_task(ev_page):
            ev_page.keyboard.press("Enter")
        answered += 1
    ev = Evaluator.objects.get(study=study)
    ranks = [r.ranks for r in RankResponse.objects.filter(evaluator=ev)]
    assert answered == len(CAPTIONS) and ranks == [[2, 3, 1]] * answered
    ev_page.context.close()
    _answer_the_rest(study, allow_ties=False, seed=3)
    _results_show_every_variant(page, live_server, study, 3)


def test_five_variant_ranking_study_with_ties_by_keyboard_from_upload_to_results(page, browser, live_server, admin,
                                                                                   tmp_path):
    study = _upload_and_open(page, live_server, tmp_path, 5, allow_ties=True, slug="five")
    ev_page = _join_by_keyboard(browser, live_server, study)
    assert ev_page.locator("#rank-form .tile").count() == 5
    assert "all equally good" in ev_page.inner_text(".keys")
    # Task 1: image 2 best; images 4 and 1 tied second ("=" before 1); then 5; then 3.
    # Task 2: "all equally good" (g). Task 3: "all equally bad" (b), a skip. Task 4: no ties.
    answered = 0
    while _next(ev_page, "#rank-form"):
        with next_task(ev_page):
            if answered == 0:
                for key in ("2", "4", "=", "1", "5", "3", "Enter"):
                    ev_page.keyboard.press(key)
            elif answered == 1:
                ev_page.keyboard.press("g")
            elif answered == 2:
                ev_page.keyboard.press("b")
            else:
                for key in ("5", "4", "3", "2", "1", "Enter"):
                    ev_page.keyboard.press(key)
        answered += 1
    ev = Evaluator.objects.get(study=study)
    got = [(r.ranks, r.skipped, r.skip_reason) for r in RankResponse.objects.filter(evaluator=ev)
           .order_by("entry__index")]
    assert got == [
        ([2, 1, 5, 2, 4], False, ""),
        ([1, 1, 1, 1, 1], False, ""),
        ([None] * 5, True, "all_bad"),
        ([5, 4, 3, 2, 1], False, ""),
    ]
    ev_page.context.close()
    _answer_the_rest(study, allow_ties=True, seed=5)
    _results_show_every_variant(page, live_server, study, 5)
