"""What evaluators see: consent, instructions, practice, count, rank and done pages, at
desktop and phone sizes, on a small study of real demo-model images.

Run with FUSION_SCREENSHOTS_DIR=docs/screenshots to (re)write the committed screenshots;
without it they go to a temporary folder. Either way each page is checked for what the
screenshot is meant to show, and audited with axe-core (tests/e2e/audit.py: WCAG 2.1 A/AA,
a serious or critical finding fails the test); test_accessibility.py audits the other pages.
"""
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.audit import Audit, assert_accessible
from tests.e2e.conftest import next_task, settled
from tests.factories import generate_study_images
from webapp.studies import lifecycle

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "protocols" / "demo.json"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def study(transactional_db):
    doc = json.loads(DEMO.read_text())
    # The demo's study, smaller: 3 objects x 2 counts x 4 variants to count, 2 captions to rank.
    doc["count_task"]["counts"] = [2, 3]
    doc["count_task"]["images_per_prompt"] = 1
    doc["preference_task"]["captions"]["n"] = 2
    doc["evaluators"].update(n=2, overlap=1)
    study = lifecycle.study_create(protocol=doc, slug="screens", base_dir=str(DEMO.parent))
    generate_study_images(study)
    return lifecycle.study_open(study=study)


@pytest.fixture
def out_dir(tmp_path):
    target = os.environ.get("FUSION_SCREENSHOTS_DIR")
    path = Path(target) if target else tmp_path / "screens"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shot(page, out_dir, name, size):
    page.wait_for_load_state("load")
    page.evaluate("document.activeElement && document.activeElement.blur && null")
    path = out_dir / f"{name}-{size}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


def test_screenshots_and_accessibility_of_every_evaluator_page(browser, live_server, study, out_dir):
    audits = [Audit(size) for size in SIZES]
    for audit in audits:  # one study for both sizes (its images take a while to generate)

        def look(page, name, audit=audit):
            _shot(page, out_dir, name, audit.size)
            audit.look(page, name)

        _walk(browser, live_server, study, audit.size, look)
    assert_accessible(audits)


def new_page(browser, size: str):
    """A page in a browser of ``size`` (a key of SIZES): a phone is a touch screen."""
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1,
                                  is_mobile=size == "phone", has_touch=size == "phone")
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


def _walk(browser, live_server, study, size: str, look: Callable[[Page, str], object]) -> None:
    """One evaluator of ``study`` through every page, in a browser of ``size``:
    consent, instructions, the practice item and its feedback, the count and rank tasks, the
    completion page. ``look(page, name)`` is called on each page as it first shows (the rank
    page with two of its images ranked), named as the screenshot of it is."""
    page = new_page(browser, size)
    context = page.context
    pid = f"{list(SIZES).index(size) + 1:024x}"  # a Prolific id (24 hex digits) per size
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={pid}")
    page.wait_for_selector("#n-tasks")
    look(page, "1-consent")
    page.click("text=I agree, continue")
    page.wait_for_selector("#rank-example")
    look(page, "2-instructions")
    page.click("#start")
    page.wait_for_selector("#answer")
    look(page, "3-practice")
    page.fill("#answer", "3")
    page.click("#submit")
    page.wait_for_selector("#feedback")
    look(page, "4-practice-feedback")
    page.click("#start")
    shot = {"count": False, "rank": False}
    while True:
        page.wait_for_selector("#answer-form, #rank-form, #completion-code")
        settled(page)  # the first task comes by a click on "Start": its script may not have run
        if page.query_selector("#completion-code"):
            break
        if page.query_selector("#answer-form"):
            if not shot["count"]:
                expect(page.locator("#count-image")).to_have_js_property("complete", True)
                look(page, "5-count")
                shot["count"] = True
            page.fill("#answer", "2")
            with next_task(page):
                page.click("#submit")
        else:
            page.locator(".tile").nth(2).click()
            page.locator(".tile").nth(0).click()
            if not shot["rank"]:
                look(page, "6-rank")  # two of four ranked
                shot["rank"] = True
            page.locator(".tile").nth(1).click()
            page.locator(".tile").nth(3).click()
            with next_task(page):
                page.click("#submit")
    look(page, "7-done")
    assert shot == {"count": True, "rank": True}
    context.close()
