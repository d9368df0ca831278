"""A count answer sent in place by the task script: the next count task replaces the last one
on the same page (one request an answer), with its own token, image, question, progress and
time on task; an answer over the rate is said on the page and can be sent again."""

import pytest
from django.urls import reverse

from tests.e2e.conftest import answer_any, next_task
from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies.models import CountResponse, Entry, Evaluator


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
    page.evaluate("window.samePage = true")  # gone if the browser loads another page
    return ev, entries, k


def _image_url(entry: Entry) -> str:
    return reverse("studies:image", args=[present(entry.item.image).public_id])


def test_the_next_count_task_replaces_the_last_on_the_same_page(page, live_server, study):
    ev, entries, k = _to_two_counts_in_a_row(page, live_server, study)
    assert page.get_attribute("#count-image", "src") == _image_url(entries[k])
    page.fill("#answer", "3")
    with next_task(page):
        page.keyboard.press("Enter")
    assert page.evaluate("window.samePage") is True  # no page load
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
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_function("() => !document.querySelector('#count-image.loading')")
    with next_task(page):
        page.keyboard.press("Enter")
    assert CountResponse.objects.get(evaluator=ev, entry=nxt).answer == 6
    assert page.evaluate("window.samePage") is True
