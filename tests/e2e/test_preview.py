"""A researcher previews the study in Chromium: answers a count and a ranking; nothing is stored."""
import pytest

from tests.e2e.conftest import settled
from tests.factories import UserFactory, build_open_study
from webapp.research import participants
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse


@pytest.fixture
def study(transactional_db):
    study = build_open_study()
    study.researchers.add(UserFactory(username="res"))
    return study


def test_a_researcher_previews_a_count_and_a_ranking_and_nothing_is_stored(page, live_server, study):
    places = participants.study_places(study=study)
    page.goto(f"{live_server.url}/research/login/")
    page.fill("#id_username", "res")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/run/{study.slug}/")
    free = page.inner_text("#free-places")
    page.click("#preview-start")
    page.wait_for_url(f"{live_server.url}/run/{study.slug}/preview/task/")
    answered: set[str] = set()
    while answered != {"count", "rank"}:
        settled(page)
        assert page.is_visible("#preview-banner") and "Preview" in page.inner_text("#preview-banner")
        assert page.locator("#undo").count() == 0
        before = page.inner_text(".progress-label")
        if page.locator("#answer").count():
            page.fill("#answer", "2")
            page.click("#submit")
            answered.add("count")
        else:
            for key in ("1", "2", "3", "4"):
                page.keyboard.press(key)
            page.click("#submit")
            answered.add("rank")
        page.wait_for_function(f"document.querySelector('.progress-label') && "
                               f"document.querySelector('.progress-label').innerText !== {before!r}")
    assert (Evaluator.objects.count(), Entry.objects.count(), CountResponse.objects.count(),
            RankResponse.objects.count()) == (0, 0, 0, 0)
    page.click("#preview-end")
    page.wait_for_url(f"{live_server.url}/run/{study.slug}/")
    assert page.inner_text("#free-places") == free
    assert participants.study_places(study=study) == places
