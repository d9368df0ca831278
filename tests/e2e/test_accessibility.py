"""The accessibility audit (tests/e2e/audit.py: axe-core, WCAG 2.1 A/AA, a serious or critical
finding fails) of the evaluator's pages that the screenshot test's walk does not reach
(test_screenshots.py audits consent, instructions, practice and its feedback, the count and
rank tasks and the completion page), on a phone and a laptop: the page asking for a Prolific
ID (and its error), another browser taking over (the question, and the 403 the first browser
then gets), a form sent after its page expired (403), a ranking with ties (its instructions,
the tie pressed, the error of an incomplete ranking), a pairs study's instructions, A/B task
with ties and completion page, a study that is full or closed, an address that is not there
(404) and too many requests (429).
"""
import pytest

from tests.e2e.audit import Audit, assert_accessible
from tests.e2e.conftest import next_task, settled
from tests.e2e.test_screenshots import SIZES, new_page
from tests.factories import fill_study_images
from webapp.studies import lifecycle

FULL_CODE = "TIES-FULL"


def _open_study(protocol: dict, slug: str):
    study = lifecycle.study_create(protocol=protocol, slug=slug)
    fill_study_images(study)
    return lifecycle.study_open(study=study)


def _protocol(name: str, **preference) -> dict:
    return {"name": name, "variants": ["m-a", "m-b", "m-c", "m-d"],
            "sampling": {"cfg_scale": 1.0, "steps": 2, "sampler": "dpm_solver", "seed": 0},
            "preference_task": {"captions": ["a red circle", "two blue squares"], "allow_ties": True, **preference},
            "evaluators": {"n": len(SIZES), "overlap": 1}}


@pytest.fixture
def ties_study(transactional_db):
    """Rankings of four images with ties, for Prolific participants who type their ID; a place
    for each browser size."""
    protocol = _protocol("ties a11y")
    protocol["recruitment"] = {"panel": "prolific", "full": {"code": FULL_CODE}}
    return _open_study(protocol, "ties-a11y")


@pytest.fixture
def pairs_study(transactional_db):
    return _open_study(_protocol("pairs a11y", design="pairs"), "pairs-a11y")


def _ties(browser, live_server, study, audit: Audit) -> None:
    """A Prolific participant who types their ID, then (the same ID) in a second browser, which
    takes over; the first is signed out. The second sends an expired form, then agrees and
    ranks with a tie."""
    first, second = new_page(browser, audit.size), new_page(browser, audit.size)
    link = f"{live_server.url}/join/{study.invite_token}/"
    first.goto(link)
    audit.look(first, "participant-id")
    first.fill("#id_typed_id", "not an id")
    first.click("#typed-id-submit")
    first.wait_for_selector("#typed-id-error")
    audit.look(first, "participant-id-error")
    pid = f"{list(SIZES).index(audit.size) + 1:024x}"
    first.fill("#id_typed_id", pid)
    first.click("#typed-id-submit")
    first.wait_for_selector("#n-tasks")
    second.goto(f"{link}?PROLIFIC_PID={pid}")
    audit.look(second, "takeover")
    second.click("button:text-is('Continue here')")
    second.wait_for_selector("#n-tasks")
    assert first.reload().status == 403
    audit.look(first, "signed-out-403")
    # The consent form sent with a token that is no longer good: the site's "expired" page.
    second.evaluate("document.querySelector('input[name=csrfmiddlewaretoken]').value = 'x'.repeat(64)")
    with second.expect_navigation():
        second.click("text=I agree, continue")
    assert "expired" in second.inner_text("main")
    audit.look(second, "expired-form-403")
    second.goto(f"{link}?PROLIFIC_PID={pid}")
    second.click("text=I agree, continue")
    second.wait_for_selector("#start")
    audit.look(second, "instructions-ties")
    second.click("#start")
    second.wait_for_selector("#rank-form")
    settled(second)
    second.keyboard.press("2")
    second.keyboard.press("=")
    audit.look(second, "rank-ties")
    second.click("#submit")  # two images short of a ranking: said on the page
    second.wait_for_selector("#rank-error:not([hidden])")
    audit.look(second, "rank-ties-error")
    first.context.close()
    second.context.close()


def _pairs(browser, live_server, study, audit: Audit) -> None:
    """An evaluator of the pairs study, through its instructions to its first A/B task, answered
    "about the same" by the keyboard."""
    page = new_page(browser, audit.size)
    page.goto(f"{live_server.url}/join/{study.invite_token}/")
    page.click("text=I agree, continue")
    page.wait_for_selector("#start")
    audit.look(page, "pairs-instructions")
    page.click("#start")
    page.wait_for_selector("#pair-form")
    settled(page)
    audit.look(page, "pairs-task")
    with next_task(page):  # answered in place or not, the page after an answer by the keyboard
        page.keyboard.press("ArrowDown")
    audit.look(page, "pairs-answered")
    page.context.close()


def _refused(browser, live_server, ties_study, pairs_study, audit: Audit, settings) -> None:
    """The pages of a study that takes nobody more (full: every place of ``ties_study`` taken;
    closed: ``pairs_study``), of an address that is not there, and of a join over the rate."""
    page = new_page(browser, audit.size)
    assert page.goto(f"{live_server.url}/join/{ties_study.invite_token}/?PROLIFIC_PID={'f' * 24}").status == 403
    assert page.inner_text("#return-code") == FULL_CODE
    audit.look(page, "study-full")
    assert page.goto(f"{live_server.url}/join/{pairs_study.invite_token}/").status == 403
    audit.look(page, "study-closed")
    assert page.goto(f"{live_server.url}/e/{ties_study.slug}/no-such-page/").status == 404
    audit.look(page, "not-found-404")
    settings.FUSION_RATE_JOIN = "0/h"
    assert page.goto(f"{live_server.url}/join/{ties_study.invite_token}/").status == 429
    audit.look(page, "too-many-429")
    settings.FUSION_RATE_JOIN = "1000/h"
    page.context.close()


def test_the_other_evaluator_pages_pass_axe_on_a_phone_and_a_laptop(browser, live_server, ties_study, pairs_study,
                                                                    settings):
    settings.FUSION_RATE_JOIN = "1000/h"
    audits = [Audit(size) for size in SIZES]
    for audit in audits:
        _ties(browser, live_server, ties_study, audit)
        _pairs(browser, live_server, pairs_study, audit)
    lifecycle.study_close(study=pairs_study)
    for audit in audits:
        _refused(browser, live_server, ties_study, pairs_study, audit, settings)
    for audit in audits:  # every page named was looked at
        assert len(set(audit.pages)) == len(audit.pages) == 15, audit.pages
    assert_accessible(audits)
