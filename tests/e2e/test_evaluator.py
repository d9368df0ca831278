"""An evaluator plays a small study in Chromium, once by keyboard only and once by mouse."""

import pytest

from tests.e2e.conftest import next_task, settled
from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse


@pytest.fixture
def study(transactional_db):
    return build_open_study(n_slots=2)


def _start(page, live_server, study):
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID=e2e-worker")
    page.wait_for_selector("text=Before you start")


def _await_focus(page, selector):
    """Wait until autofocus has put the focus on `selector`; key presses before that go nowhere."""
    page.wait_for_function("s => document.activeElement && document.activeElement.matches(s)", arg=selector)


def _consent_by_keyboard(page, live_server, study):
    """Join, agree with Enter on the autofocused button; end on the instructions, "Start" focused."""
    _start(page, live_server, study)
    _await_focus(page, "button[name=agree]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("text=How it works")
    _await_focus(page, "#start")


def _kind(page):
    page.wait_for_selector("#answer-form, #rank-form, #completion-code")
    settled(page)
    if page.query_selector("#answer-form"):
        _await_focus(page, "#answer")
        return "count"
    if page.query_selector("#rank-form"):
        return "rank"
    return "done"


def test_keyboard_only(page, live_server, study):
    _consent_by_keyboard(page, live_server, study)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expected_counts: list = []
    expected_ranks: list = []
    while (kind := _kind(page)) != "done":
        if kind == "count":
            n = len(expected_counts) % 5 + 1
            page.keyboard.type(str(n))
            with next_task(page):
                page.keyboard.press("Enter")
            expected_counts.append(n)
        else:
            for key in "3142":  # screen positions from best to worst
                page.keyboard.press(key)
            with next_task(page):
                page.keyboard.press("Enter")
            expected_ranks.append([2, 4, 1, 3])  # rank of each screen position
    assert page.inner_text("#completion-code") == study.completion_code

    ev = Evaluator.objects.get(study=study)
    assert ev.external_id == "e2e-worker" and ev.finished_at is not None
    answers = list(CountResponse.objects.filter(evaluator=ev).order_by("entry__index").values_list("answer", flat=True))
    assert answers == expected_counts
    ranks = [r.ranks for r in RankResponse.objects.filter(evaluator=ev).order_by("entry__index")]
    assert ranks == expected_ranks
    assert all(r.seconds > 0 for r in CountResponse.objects.all())


def test_keyboard_cant_tell_and_undo(page, live_server, study):
    _consent_by_keyboard(page, live_server, study)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ev = Evaluator.objects.get(study=study)
    # Answer until a count task, then "can't tell" with "?" and take it back with Esc.
    while _kind(page) != "count":
        for key in "1234":
            page.keyboard.press(key)
        with next_task(page):
            page.keyboard.press("Enter")
    before = page.locator(".progress-label").inner_text()
    with next_task(page):
        page.keyboard.press("?")
    assert page.locator(".progress-label").inner_text() != before
    last = present(CountResponse.objects.filter(evaluator=ev).order_by("-created_at").first())
    assert last.cant_tell and last.answer is None
    n_before = CountResponse.objects.filter(evaluator=ev).count()
    with page.expect_navigation():
        page.keyboard.press("Escape")
    page.wait_for_selector(".progress-label")
    assert page.locator(".progress-label").inner_text() == before
    assert CountResponse.objects.filter(evaluator=ev).count() == n_before - 1


def test_enter_starts_the_tasks_after_a_click_moved_the_focus(page, live_server, study):
    _consent_by_keyboard(page, live_server, study)
    page.click("h1")  # the focus leaves "Start"
    assert page.evaluate("document.activeElement.id") != "start"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _kind(page) in ("count", "rank")
    assert Entry.objects.filter(evaluator__study=study).exists()


def test_mouse_only(page, live_server, study):
    _start(page, live_server, study)
    with page.expect_navigation():
        page.click("text=I agree, continue")
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    skipped = False
    clicked_orders = []
    while (kind := _kind(page)) != "done":
        if kind == "count":
            page.click("#answer")
            page.fill("#answer", "2")
            with next_task(page):
                page.click("#submit")
        elif not skipped:
            with next_task(page):
                page.click("#skip-hard")
            skipped = True
        else:
            tiles = page.locator(".tile img")
            order = [1, 0, 3, 2]
            for pos in order:
                tiles.nth(pos).click()
            assert [page.locator(".tile .badge").nth(i).inner_text() for i in range(4)] == ["2", "1", "4", "3"]
            with next_task(page):
                page.click("#submit")
            clicked_orders.append(order)
    ev = Evaluator.objects.get(study=study)
    assert set(CountResponse.objects.filter(evaluator=ev).values_list("answer", flat=True)) == {2}
    responses = list(RankResponse.objects.filter(evaluator=ev).order_by("entry__index"))
    assert responses[0].skipped and responses[0].skip_reason == "too_hard"
    assert [r.ranks for r in responses[1:]] == [[2, 1, 4, 3]] * len(clicked_orders)
    assert Entry.objects.filter(evaluator=ev).count() == CountResponse.objects.filter(evaluator=ev).count() + len(
        responses
    )


def test_phone_layout_fits_the_screen(phone_page, live_server, study):
    page = phone_page
    _start(page, live_server, study)
    page.tap("text=I agree, continue")
    page.get_by_role("button", name="Start").tap()
    page.wait_for_selector("#answer-form, #rank-form")
    settled(page)  # the script lays the images out
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px phone"
    box = page.locator(".count-image, .tile img").first.bounding_box()
    assert box["width"] > 120
