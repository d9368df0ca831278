"""An answer sent in place by the task script: the next task of the same kind and layout (a
count, a ranking as wide, a pairwise comparison) replaces the last one on the same page (one
request an answer), with its own token, images, question or caption, progress and time on
task; an answer over the rate is said on the page and can be sent again; a task of another
kind is a page load."""

import pytest
from playwright.sync_api import Route

from tests.e2e.conftest import answer_any, next_task, settled
from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies import selectors, task_views
from webapp.studies.models import CountResponse, Entry, Evaluator, Item, RankResponse, Slot


@pytest.fixture
def study(transactional_db):
    return build_open_study(n_slots=2)


def _to_two_counts_in_a_row(page, live_server, study) -> tuple[Evaluator, list[Entry], int]:
    """Join, agree, start, and answer (plainly) up to the first of two count tasks in a row."""
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID=in-place")
    page.click("text=I agree, continue")
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("#answer-form, #rank-form")
    ev = Evaluator.objects.get(study=study)
    entries = list(Entry.objects.filter(evaluator=ev).select_related("item__image").order_by("index"))
    kinds = [e.item.task for e in entries]
    k = next(i for i in range(len(kinds) - 1) if kinds[i] == kinds[i + 1] == "count")
    for _ in entries[:k]:
        answer_any(page)
    page.wait_for_selector("#answer-form")
    settled(page)
    page.evaluate("window.samePage = true")  # gone if the browser loads another page
    return ev, entries, k


def _image_url(entry: Entry) -> str:
    """The address of the count task's image at this showing (its own: imagealias)."""
    return task_views.showing_urls(entry, 1)[0]


def test_the_next_count_task_replaces_the_last_on_the_same_page(page, live_server, study):
    ev, entries, k = _to_two_counts_in_a_row(page, live_server, study)
    assert page.get_attribute("#count-image", "src") == _image_url(entries[k])
    page.fill("#answer", "3")
    # The answer's request (a page's first input also reports "back" to /away/).
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/task/")) as sent, next_task(page):
        page.keyboard.press("Enter")
    assert page.evaluate("window.samePage") is True  # no page load
    # URL-encoded as the plain form is (multipart would cost the server a parse of its own).
    assert sent.value.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent.value.headers["accept"] == "application/json"
    stored = CountResponse.objects.get(evaluator=ev, entry=entries[k])
    assert stored.answer == 3 and not stored.cant_tell
    nxt = entries[k + 1]
    assert page.get_attribute("#count-image", "src") == _image_url(nxt)
    page.wait_for_function("() => { const i = document.getElementById('count-image'); "
                           "return i.complete && i.naturalWidth > 0 && !i.classList.contains('loading'); }")
    assert page.inner_text("label[for=answer]") == nxt.item.prompt.question
    assert page.inner_text(".progress-label") == f"Task {k + 2} of {len(entries)} · {k + 1} answered"
    assert page.title().endswith(f"task {k + 2}")
    assert page.input_value("#answer") == ""
    assert page.evaluate("document.activeElement.id") == "answer"
    assert present(Entry.objects.get(pk=nxt.pk).shown_at) >= present(stored.created_at)  # its time starts now
    # The next answer goes to the next task, and Esc takes it back as on any task page.
    page.keyboard.type("4")
    with next_task(page):
        page.keyboard.press("Enter")
    assert CountResponse.objects.get(evaluator=ev, entry=nxt).answer == 4
    with page.expect_navigation():
        page.keyboard.press("Escape")
    page.wait_for_selector("#notice")
    assert page.inner_text(".progress-label").startswith(f"Task {k + 2} of")
    assert not CountResponse.objects.filter(evaluator=ev, entry=nxt).exists()


def test_an_answer_over_the_rate_is_said_on_the_page_and_sent_again(page, live_server, study, settings):
    ev, entries, k = _to_two_counts_in_a_row(page, live_server, study)
    settings.FUSION_RATE_ANSWER = "1/d"  # a counter of its own: one more answer, then 429
    page.fill("#answer", "2")
    with next_task(page):
        page.click("#submit")
    page.fill("#answer", "5")
    page.click("#submit")
    page.wait_for_selector(".error[role=alert]")
    assert "Wait a minute" in page.inner_text(".error[role=alert]")
    assert page.evaluate("window.samePage") is True
    assert page.input_value("#answer") == "5"  # kept, to send again
    assert not CountResponse.objects.filter(evaluator=ev, entry=entries[k + 1]).exists()
    settings.FUSION_RATE_ANSWER = "1000/s"
    with next_task(page):
        page.click("#submit")
    assert CountResponse.objects.get(evaluator=ev, entry=entries[k + 1]).answer == 5
    assert page.query_selector(".error[role=alert]") is None


def _let_it_load(page, held: list) -> None:
    """Answer the one image request the test held, and wait until the image shows."""
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_function("() => !document.querySelector('img.loading')")


def test_an_answer_waits_for_the_next_image(page, live_server, study):
    ev, entries, k = _to_two_counts_in_a_row(page, live_server, study)
    nxt = entries[k + 1]
    held = []  # the next image's request, answered only when the test lets it
    page.route(f"**{_image_url(nxt)}", lambda route: held.append(route))
    token = page.input_value("input[name=token]")
    page.fill("#answer", "2")
    page.click("#submit")
    page.wait_for_function("t => document.querySelector('input[name=token]').value !== t", arg=token)
    page.wait_for_function("() => document.querySelector('#count-image.loading') !== null")
    page.fill("#answer", "6")
    page.keyboard.press("Enter")  # held back: the image has not loaded
    page.wait_for_timeout(300)
    assert not CountResponse.objects.filter(evaluator=ev, entry=nxt).exists()
    _let_it_load(page, held)
    with next_task(page):
        page.keyboard.press("Enter")
    assert CountResponse.objects.get(evaluator=ev, entry=nxt).answer == 6
    assert page.evaluate("window.samePage") is True


AWAY_AFTER_ANSWER = 2.5  # seconds the participant stays away once they answered and left


def test_a_next_task_put_in_place_on_a_hidden_page_is_away_from_its_first_showing(page, live_server, study):
    """The participant answers and leaves at once (another tab, the screen locked): the page
    says "away" with the answered task's token while the answer is on the way, and the answer
    ends that absence. The next task, put in place on the page still hidden, is away too,
    until the page is visible again."""
    ev, entries, k = _to_two_counts_in_a_row(page, live_server, study)
    held: list[Route] = []  # the answer's request, sent on only once the page is hidden

    def hold_the_first_answer(route: Route) -> None:
        if route.request.method == "POST" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/task/", hold_the_first_answer)
    page.fill("#answer", "2")
    with next_task(page):
        page.keyboard.press("Enter")
        while not held:
            page.wait_for_timeout(50)
        with page.expect_response(lambda r: r.url.endswith("/away/")):
            page.evaluate("""() => {
                Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
                document.dispatchEvent(new Event("visibilitychange"));
            }""")
        held[0].continue_()
    page.wait_for_timeout(AWAY_AFTER_ANSWER * 1000)
    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "visible"});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    page.fill("#answer", "4")
    with next_task(page):
        page.keyboard.press("Enter")
    assert page.evaluate("window.samePage") is True
    stored = CountResponse.objects.get(evaluator=ev, entry=entries[k + 1])
    assert stored.away_seconds >= AWAY_AFTER_ANSWER - 0.5, (stored.seconds, stored.away_seconds)
    assert stored.seconds - stored.away_seconds < 1.5


# --------------------------------------------------------------------------- rankings


def _rankings_first(study) -> None:
    """Every slot shows the rankings first, one after the other, then the counts."""
    kinds = dict(Item.objects.filter(study=study).values_list("pk", "task"))
    for slot in Slot.objects.filter(study=study):
        slot.items = sorted(slot.items, key=lambda pk: kinds[pk] != "rank")
        slot.save(update_fields=["items"])


def _start_on_rankings(page, live_server, study, pid: str) -> tuple[Evaluator, list[Entry]]:
    _rankings_first(study)
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={pid}")
    page.click("text=I agree, continue")
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("#rank-form, #pair-form")
    settled(page)  # the page's script runs, its images are loaded
    ev = Evaluator.objects.get(study=study)
    entries = list(Entry.objects.filter(evaluator=ev).select_related("item__prompt").order_by("index"))
    assert [e.item.task for e in entries[:3]] == ["rank", "rank", "count"]
    page.evaluate("window.samePage = true")  # gone if the browser loads another page
    return ev, entries


def _screen_urls(entry: Entry) -> list[str]:
    return task_views.showing_urls(entry, len(selectors.entry_images(entry=entry)))


def _tile_srcs(page) -> list[str]:
    return page.eval_on_selector_all(".tile img", "imgs => imgs.map(i => i.getAttribute('src'))")


def test_the_next_ranking_replaces_the_last_and_waits_for_its_images(page, live_server, study):
    ev, entries = _start_on_rankings(page, live_server, study, "rank-in-place")
    first, second = entries[0], entries[1]
    assert _tile_srcs(page) == _screen_urls(first)
    held = []  # the next ranking's first image, answered only when the test lets it
    page.route(f"**{_screen_urls(second)[0]}", lambda route: held.append(route))
    token = page.input_value("#rank-form input[name=token]")
    for key in "2143":  # screen positions from best to worst
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_function("t => document.querySelector('#rank-form input[name=token]').value !== t", arg=token)
    assert page.evaluate("window.samePage") is True  # no page load
    stored = RankResponse.objects.get(evaluator=ev, entry=first)
    assert stored.ranks == [2, 1, 4, 3]
    assert _tile_srcs(page) == _screen_urls(second)
    assert page.inner_text(".caption") == f"\u201c{second.item.prompt.text}\u201d"
    assert page.inner_text(".progress-label") == f"Task 2 of {len(entries)} · 1 answered"
    assert page.get_attribute(".progress-label", "aria-live") == "polite"  # a screen reader hears the new task
    assert page.title().endswith("task 2")
    assert present(Entry.objects.get(pk=second.pk).shown_at) >= present(stored.created_at)  # its time starts now
    # Nothing of the last ranking is left: no badge, no rank chosen, the focus on no button.
    assert [b.inner_text() for b in page.locator(".tile .badge").all()] == [""] * 4
    assert page.eval_on_selector_all("#rank-form select", "ss => ss.map(s => s.value)") == [""] * 4
    assert page.evaluate("document.activeElement === document.body")
    # Its first image is still loading: a key picks nothing and the ranking is not sent.
    assert page.evaluate("document.querySelector('.tile img').classList.contains('loading')")
    for key in "1234":
        page.keyboard.press(key)
    page.click("#skip-hard")
    page.wait_for_timeout(300)
    assert [b.inner_text() for b in page.locator(".tile .badge").all()] == [""] * 4
    assert not RankResponse.objects.filter(evaluator=ev, entry=second).exists()
    _let_it_load(page, held)
    # A skip, in place too; a count comes next: its page is loaded.
    with next_task(page):
        page.keyboard.press("h")
    got = RankResponse.objects.get(evaluator=ev, entry=second)
    assert got.skipped and got.skip_reason == "too_hard"
    page.wait_for_selector("#answer-form")
    assert page.evaluate("window.samePage") is None


def test_an_unfinished_ranking_and_one_over_the_rate_are_said_on_the_page(page, live_server, study, settings):
    ev, entries = _start_on_rankings(page, live_server, study, "rank-rate")
    settings.FUSION_RATE_ANSWER = "1/d"  # a counter of its own: one more answer, then 429
    for key in "1234":
        page.keyboard.press(key)
    with next_task(page):
        page.keyboard.press("Enter")
    page.keyboard.press("3")
    page.keyboard.press("Enter")  # two images unranked: said without a request
    page.wait_for_selector("#rank-error:visible")
    assert "Rank all 4 images" in page.inner_text("#rank-error")
    for key in "124":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_function("() => /Wait a minute/.test(document.getElementById('rank-error').textContent)")
    assert page.evaluate("window.samePage") is True
    assert [b.inner_text() for b in page.locator(".tile .badge").all()] == ["2", "3", "1", "4"]  # kept
    assert not RankResponse.objects.filter(evaluator=ev, entry=entries[1]).exists()
    settings.FUSION_RATE_ANSWER = "1000/s"
    with next_task(page):
        page.keyboard.press("Enter")
    assert RankResponse.objects.get(evaluator=ev, entry=entries[1]).ranks == [2, 3, 1, 4]


def test_the_next_pairwise_comparison_replaces_the_last(page, live_server):
    study = build_open_study(n_slots=1, variants=("left-model", "right-model"))
    ev, entries = _start_on_rankings(page, live_server, study, "pair-in-place")
    assert _tile_srcs(page) == _screen_urls(entries[0])
    with next_task(page):
        page.keyboard.press("ArrowRight")
    assert page.evaluate("window.samePage") is True
    assert RankResponse.objects.get(evaluator=ev, entry=entries[0]).ranks == [2, 1]
    assert _tile_srcs(page) == _screen_urls(entries[1])
    assert page.inner_text(".caption") == f"\u201c{entries[1].item.prompt.text}\u201d"
    page.click("[data-side=left]")  # a click on the image chooses it
    page.wait_for_selector("#answer-form")
    assert RankResponse.objects.get(evaluator=ev, entry=entries[1]).ranks == [1, 2]
    assert page.evaluate("window.samePage") is None
