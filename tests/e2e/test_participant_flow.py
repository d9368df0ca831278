"""The participant's flow in Chromium: time on task kept across a reload (and what the
researcher is then told to do), the automatic way back to Prolific, a phone's view of the
tasks and the code, and researcher pages that fit a phone."""
import csv
import io
import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import answer_any, next_task, settled
from tests.factories import UserFactory, build_open_study
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"
PROLIFIC = "https://app.prolific.com/"
PID = "5f3e2d1c0b9a887766554433"
PHONE_WIDTH = 390
CODE = "FUSION-DEMO-COMPLETION-2403"  # long enough to have been split on a 390 px phone
WAIT_BEFORE_RELOAD = 2.5  # seconds on the first task before the page is reloaded


def panel_protocol() -> dict:
    doc = json.loads(DEMO.read_text())
    # A speed rule every test browser breaks (a median under a minute a task): their data
    # is excluded, and with the gold image counted right the suggestion is "review" (not "reject").
    doc["analysis"]["exclusions"]["min_median_seconds"] = 60.0
    return doc


@pytest.fixture
def study(transactional_db):
    return build_open_study(n_slots=3, protocol=panel_protocol(), completion_code=CODE)


def _route_prolific(page):
    """Prolific's pages, answered in the browser (the test machine has no internet)."""
    page.context.route(f"{PROLIFIC}**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Prolific</title><h1>Back on Prolific</h1>"))


def _to_first_task(page, live_server, study, query: str = ""):
    page.goto(f"{live_server.url}/join/{study.invite_token}/{query}")
    page.click("text=I agree, continue")
    page.click("#start")
    page.fill("#answer", "3")  # the practice item
    page.click("#submit")
    page.click("#start")
    page.wait_for_selector("#answer-form, #rank-form")
    settled(page)


def _current_entry(evaluator: Evaluator) -> Entry:
    entry = (Entry.objects.filter(evaluator=evaluator, count_response__isnull=True, rank_response__isnull=True)
             .select_related("item").order_by("index").first())
    assert entry is not None, "the evaluator has no task left"
    return entry


def _answer_all(page, evaluator: Evaluator):
    """Every task by clicks and typing; gold images counted right, others "2"."""
    while True:
        page.wait_for_selector("#answer-form, #rank-form, #completion-code")
        settled(page)
        if page.query_selector("#completion-code"):
            return
        if page.query_selector("#answer-form"):
            item = _current_entry(evaluator).item
            page.fill("#answer", str(item.true_count if item.is_gold else 2))
            with next_task(page):
                page.click("#submit")
        else:
            for k in range(4):
                page.locator(".tile").nth(k).click()
            with next_task(page):
                page.click("#submit")


def _logged_in_researcher(page, live_server, study):
    UserFactory(username="alice")
    from django.contrib.auth import get_user_model

    study.researchers.add(get_user_model().objects.get(username="alice"))
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/research/login/?next=/run/{study.slug}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_selector("#invite-link")


def test_a_reload_keeps_the_time_on_task_and_a_fast_accurate_participant_is_put_to_review(page, live_server, study):
    _route_prolific(page)
    _to_first_task(page, live_server, study, f"?PROLIFIC_PID={PID}")
    ev = Evaluator.objects.get(study=study)
    first = _current_entry(ev)
    time.sleep(WAIT_BEFORE_RELOAD)
    page.reload()
    page.wait_for_selector("#answer-form, #rank-form")
    _answer_all(page, ev)
    response = CountResponse.objects.filter(entry=first).first() or RankResponse.objects.get(entry=first)
    # Measured from the first showing: the reload did not restart the clock.
    assert response.seconds >= WAIT_BEFORE_RELOAD
    shown_at = Entry.objects.get(pk=first.pk).shown_at
    assert shown_at is not None and shown_at < response.created_at

    _logged_in_researcher(page, live_server, study)
    text = page.context.request.get(f"{live_server.url}/run/{study.slug}/participants.csv").text()
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["participant_id"] == PID and row["status"] == "finished" and row["gold_accuracy"] == "1.000"
    assert "median seconds" in row["exclusion"] and row["suggestion"] == "review"
    assert float(row["minutes"]) >= WAIT_BEFORE_RELOAD / 60


def test_a_prolific_participant_is_taken_back_to_prolific_after_seeing_the_code(page, live_server, study):
    _route_prolific(page)
    _to_first_task(page, live_server, study, f"?PROLIFIC_PID={PID}")
    _answer_all(page, Evaluator.objects.get(study=study))
    # The code and the button first, then, with no click, Prolific's completion URL.
    assert page.inner_text("#completion-code") == CODE
    expect(page.locator("#return-link")).to_be_visible()
    assert "Taking you back to Prolific" in page.inner_text("#return-note")
    page.wait_for_url(f"{PROLIFIC}submissions/complete?cc={CODE}", timeout=10000)
    assert page.inner_text("h1") == "Back on Prolific"


def test_the_way_back_to_prolific_waits_for_one_who_asks_to_stay(page, live_server, study):
    """The automatic return is a time limit the participant can turn off (WCAG 2.2.1)."""
    _route_prolific(page)
    page.clock.install()  # the page's timers run only as the test moves the clock
    _to_first_task(page, live_server, study, f"?PROLIFIC_PID={PID}")
    _answer_all(page, Evaluator.objects.get(study=study))
    done = page.url
    page.click("#return-stay")
    page.clock.run_for(60_000)  # a minute of the page's time, far past the countdown
    assert page.url == done and page.inner_text("#completion-code") == CODE
    assert "You stay here" in page.inner_text("#return-note") and page.query_selector("#return-stay") is None
    page.click("#return-link")  # the button still takes them back, with the code
    page.wait_for_url(f"{PROLIFIC}submissions/complete?cc={CODE}", timeout=10000)


def test_on_a_phone_no_key_hints_the_code_on_one_line_and_zoom_fits(phone_page, live_server, study):
    page = phone_page
    _to_first_task(page, live_server, study)  # the plain link: no panel id
    ev = Evaluator.objects.get(study=study)
    while not page.query_selector("#answer-form"):  # on to a counting task
        for k in range(4):
            page.locator(".tile").nth(k).click()
        with next_task(page):
            page.click("#submit")
        page.wait_for_selector("#answer-form, #rank-form")
    expect(page.locator("#keys")).to_be_hidden()  # no Esc, Enter or "?" on a phone
    expect(page.locator("#touch-hint")).to_be_visible()
    page.click("#count-image")
    expect(page.locator("#stage.zoomed")).to_have_count(1)
    box = page.locator("#count-image").bounding_box()
    view = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0
    assert box["x"] + box["width"] <= view["width"] and box["y"] + box["height"] <= view["height"]
    page.click("#count-image")
    expect(page.locator("#stage.zoomed")).to_have_count(0)
    _answer_all(page, ev)
    # No panel id: the code only, no way "back" to a panel they did not come from.
    assert page.query_selector("#return-link") is None and page.query_selector("[data-auto-return]") is None
    code = page.locator("#completion-code")
    assert code.inner_text() == CODE
    assert code.evaluate("el => el.getClientRects().length") == 1  # one box: not split over two lines
    assert code.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH


def test_the_researcher_pages_do_not_scroll_sideways_on_a_phone(phone_page, live_server, study):
    page = phone_page
    Evaluator.objects.create(study=study, external_id=PID, external_study_id="s" * 24, external_session_id="x" * 24)
    _logged_in_researcher(page, live_server, study)
    for path in (f"/run/{study.slug}/", f"/run/{study.slug}/participants/", f"/research/{study.slug}/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH, (path, width)


def test_rank_tiles_label_key_and_rank_above_the_picture(page, live_server, study):
    _to_first_task(page, live_server, study, f"?PROLIFIC_PID={PID}")
    ev = Evaluator.objects.get(study=study)
    while not page.query_selector("#rank-form"):  # on to a ranking
        item = _current_entry(ev).item
        page.fill("#answer", str(item.true_count if item.is_gold else 2))
        with next_task(page):
            page.click("#submit")
        page.wait_for_selector("#answer-form, #rank-form")
    page.locator(".tile").nth(1).click()  # ranked first: its badge shows; the others keep their key
    for k, label in ((0, ".key"), (1, ".badge")):
        tile = page.locator(".tile").nth(k)
        mark, picture = tile.locator(label).bounding_box(), tile.locator("img").bounding_box()
        assert mark["y"] + mark["height"] <= picture["y"] + 0.5, (label, mark, picture)  # above, not over
    before = page.evaluate("""() => ['.key', '.badge'].map(s => getComputedStyle(
        document.querySelector('.tile ' + s), '::before').content)""")
    assert before == ['"key "', '"rank\u00a0"']  # a key and a rank never read alike
    assert page.locator(".tile").nth(1).locator(".badge").inner_text() == "1"


# --------------------------------------------------------------------------- time away

IDLE_AFTER = 1  # seconds without input before the task page reports its participant away
IDLE_FOR = 4  # seconds the participant then stays away from the first task


def _first_answer(evaluator: Evaluator, entry: Entry):
    return CountResponse.objects.filter(entry=entry).first() or RankResponse.objects.get(entry=entry)


def test_time_idle_on_a_task_is_stored_as_away_and_left_out_of_active_time(page, live_server, study, settings):
    settings.FUSION_IDLE_AFTER_SECONDS = IDLE_AFTER
    _to_first_task(page, live_server, study)
    ev = Evaluator.objects.get(study=study)
    first = _current_entry(ev)
    # No input at all: after the idle period the page says "away" (the server stamps it).
    page.wait_for_timeout(IDLE_FOR * 1000)
    assert Entry.objects.get(pk=first.pk).away_since is not None
    answer_any(page)  # the input is "back", the answer closes the absence
    response = _first_answer(ev, first)
    assert response.away_seconds >= IDLE_FOR - IDLE_AFTER - 0.5
    # Active time: the idle period before the report, and the test's own steps.
    assert response.seconds - response.away_seconds < IDLE_AFTER + 1.5
    assert response.seconds >= IDLE_FOR


def test_a_hidden_page_is_away_until_it_is_visible_again(page, live_server, study, settings):
    settings.FUSION_IDLE_AFTER_SECONDS = 600  # only the page's visibility counts here
    _to_first_task(page, live_server, study)
    ev = Evaluator.objects.get(study=study)
    first = _current_entry(ev)
    hide = """state => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(hide, "hidden")
    page.wait_for_timeout(3000)
    page.evaluate(hide, "visible")
    answer_any(page)
    response = _first_answer(ev, first)
    assert 2.5 <= response.away_seconds <= response.seconds
    assert response.seconds - response.away_seconds < 2.5


def test_a_task_page_reports_back_once_at_its_first_input_and_again_after_a_reload(page, live_server, study, settings):
    """A reload shows the task its unloading page just reported "away" from, and that report
    may reach the server after the new page's request (as a tab left behind may report after
    another tab's): the first input on every task page says "back", once; later input nothing."""
    settings.FUSION_IDLE_AFTER_SECONDS = 600
    _to_first_task(page, live_server, study)
    reports: list[str] = []
    page.on("request", lambda r: reports.append(r.post_data or "") if r.url.endswith("/away/") else None)
    page.mouse.move(10, 10)
    page.mouse.move(40, 40)
    page.wait_for_timeout(500)
    page.mouse.move(20, 20)
    page.keyboard.press("Shift")
    page.wait_for_timeout(500)
    assert [r.rsplit("state=", 1)[-1] for r in reports] == ["back"]
    with page.expect_request(lambda r: r.url.endswith("/away/") and "state=back" in (r.post_data or "")):
        page.reload()
        page.mouse.move(20, 20)
        page.mouse.move(60, 60)


_SET_VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    document.dispatchEvent(new Event("visibilitychange"));
}"""
WORK_IN_SECOND_TAB = 2.5  # seconds the participant works on the task in the second tab


def _away_report(page, state: str):
    """Wait for the server's reply to the page's report of ``state``: the reports of two tabs
    then reach it in the order the test sends them."""
    return page.expect_response(
        lambda r: r.url.endswith("/away/") and f"state={state}" in (r.request.post_data or ""))


def _two_tabs_on_the_first_task(page, live_server, study, settings):
    """The first task open in ``page`` and in a second tab of the same browser (only the
    pages' visibility counts: no idle period); the evaluator, the entry and the second tab."""
    settings.FUSION_IDLE_AFTER_SECONDS = 600
    _to_first_task(page, live_server, study)
    ev = Evaluator.objects.get(study=study)
    first = _current_entry(ev)
    second = page.context.new_page()
    second.goto(f"{live_server.url}/e/{study.slug}/task/")
    settled(second)
    return ev, first, second


def test_work_in_a_second_tab_is_not_away_when_the_first_tab_went_hidden_after_it_opened(
        page, live_server, study, settings):
    """Two tabs show one task, and the server's absence is theirs together: the tab left
    behind says "away" when it is hidden, and that may reach the server after the new tab's
    own request (a new tab opens as the old one hides). The new tab's first input says "back"."""
    ev, first, second = _two_tabs_on_the_first_task(page, live_server, study, settings)
    with _away_report(page, "away"):
        page.evaluate(_SET_VISIBILITY, "hidden")  # the first tab's report, after the new tab's request
    second.wait_for_timeout(200)
    assert Entry.objects.get(pk=first.pk).away_since is not None
    second.mouse.move(30, 30)  # the participant at work in the second tab
    second.mouse.move(60, 60)
    second.wait_for_timeout(WORK_IN_SECOND_TAB * 1000)
    answer_any(second)
    response = _first_answer(ev, first)
    assert response.away_seconds < 1.0, (response.seconds, response.away_seconds)


def test_switching_between_two_tabs_leaves_no_absence_open_behind_the_one_in_front(
        page, live_server, study, settings):
    """Switching from one tab to another, the tab left says "away" as the one in front says
    "back", and the two reports may arrive in either order: the tab in front says "back"
    again at its first input after it came to the front."""
    ev, first, second = _two_tabs_on_the_first_task(page, live_server, study, settings)
    second.mouse.move(30, 30)  # at work in the second tab
    second.mouse.move(60, 60)
    with _away_report(second, "away"):
        second.evaluate(_SET_VISIBILITY, "hidden")  # to the first tab and back to the second:
    with _away_report(second, "back"):
        second.evaluate(_SET_VISIBILITY, "visible")  # the second tab's "back" arrives first,
    with _away_report(page, "away"):
        page.evaluate(_SET_VISIBILITY, "hidden")  # the first tab's "away" after it
    second.wait_for_timeout(200)
    assert Entry.objects.get(pk=first.pk).away_since is not None
    second.mouse.move(30, 30)
    second.mouse.move(60, 60)
    second.wait_for_timeout(WORK_IN_SECOND_TAB * 1000)
    answer_any(second)
    response = _first_answer(ev, first)
    assert response.away_seconds < 1.0, (response.seconds, response.away_seconds)
