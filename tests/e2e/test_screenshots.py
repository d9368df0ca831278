"""What evaluators see: consent, instructions, practice, count, rank and done pages, at
desktop and phone sizes, on a small study of real demo-model images.

Run with FUSION_SCREENSHOTS_DIR=docs/screenshots to (re)write the committed screenshots;
without it they go to a temporary folder. Either way each page is checked for what the
screenshot is meant to show.
"""
import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

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


def test_screenshots_of_every_evaluator_page(browser, live_server, study, out_dir):
    for size in SIZES:  # one study for both (its images take a while to generate)
        _walk(browser, live_server, study, out_dir, size)


def _walk(browser, live_server, study, out_dir, size):
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1,
                                  is_mobile=size == "phone", has_touch=size == "phone")
    page = context.new_page()
    page.set_default_timeout(15000)
    pid = f"{list(SIZES).index(size) + 1:024x}"  # a Prolific id (24 hex digits) per size
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={pid}")
    page.wait_for_selector("#n-tasks")
    _shot(page, out_dir, "1-consent", size)
    page.click("text=I agree, continue")
    page.wait_for_selector("#rank-example")
    _shot(page, out_dir, "2-instructions", size)
    page.click("#start")
    page.wait_for_selector("#answer")
    _shot(page, out_dir, "3-practice", size)
    page.fill("#answer", "3")
    page.click("#submit")
    page.wait_for_selector("#feedback")
    _shot(page, out_dir, "4-practice-feedback", size)
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
                _shot(page, out_dir, "5-count", size)
                shot["count"] = True
            page.fill("#answer", "2")
            with next_task(page):
                page.click("#submit")
        else:
            page.locator(".tile").nth(2).click()
            page.locator(".tile").nth(0).click()
            if not shot["rank"]:
                _shot(page, out_dir, "6-rank", size)  # two of four ranked
                shot["rank"] = True
            page.locator(".tile").nth(1).click()
            page.locator(".tile").nth(3).click()
            with next_task(page):
                page.click("#submit")
    _shot(page, out_dir, "7-done", size)
    assert shot == {"count": True, "rank": True}
    context.close()
