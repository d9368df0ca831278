"""Only a study's researchers and admins see its dashboard, results and exports."""
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import build_open_study
from tests.webapp.conftest import join
from tests.webapp.research_support import fill_study, researcher_of, update_results
from webapp.research.models import ReportDetails

pytestmark = pytest.mark.django_db

STUDY_GETS = (
    "/research/{slug}/",
    "/research/{slug}/progress.json",
    "/research/{slug}/results.json",
    "/research/{slug}/figures/count-by-object.png",
    "/research/{slug}/figures/preference.svg",
    "/research/{slug}/export/responses.csv",
    "/research/{slug}/export/responses.jsonl",
    "/research/{slug}/export/aggregates.json",
    "/research/{slug}/export/figures.zip",
    "/research/{slug}/export/protocol.json",
    "/research/{slug}/report/",
    "/research/{slug}/report.md",
)
STUDY_POSTS = ("/research/{slug}/results/update/", "/research/{slug}/report-details/")


@pytest.fixture
def answered(study, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    fill_study(study, 2)
    return study


def _requests(client, slug):
    for url in STUDY_GETS:
        yield url, client.get(url.format(slug=slug))
    for url in STUDY_POSTS:
        yield url, client.post(url.format(slug=slug), {"recruitment": "changed"})


def test_the_studys_researcher_sees_everything(answered):
    client = Client()
    client.force_login(researcher_of(answered))
    update_results(client, answered)  # figures exist after this
    for url, r in _requests(client, answered.slug):
        assert r.status_code in (200, 302), (url, r.status_code)
    assert ReportDetails.objects.get(study=answered).recruitment == "changed"


def test_admins_see_every_study(answered):
    admin = get_user_model().objects.create_user(username="root", password="pw-for-tests", is_staff=True)
    client = Client()
    client.force_login(admin)
    assert client.get(f"/research/{answered.slug}/").status_code == 200
    assert answered.slug in client.get("/research/").content.decode()


def test_researchers_of_other_studies_get_404_everywhere(answered):
    other = build_open_study(n_slots=1)
    client = Client()
    client.force_login(researcher_of(other, "bob"))
    for url, r in _requests(client, answered.slug):
        assert r.status_code == 404, (url, r.status_code)
    assert answered.slug not in client.get("/research/").content.decode()
    assert ReportDetails.objects.filter(study=answered).count() == 0


def test_evaluators_get_404_everywhere(answered):
    client = join(Client(), answered)  # an evaluator's browser, joined by invite link
    for url, r in _requests(client, answered.slug):
        assert r.status_code == 404, (url, r.status_code)
    assert client.get("/research/").status_code == 404


def test_logged_in_evaluators_get_404_everywhere(answered):
    user = get_user_model().objects.create_user(username="eve", password="pw-for-tests")
    client = Client()
    client.force_login(user)
    join(client, answered)
    for url, r in _requests(client, answered.slug):
        assert r.status_code == 404, (url, r.status_code)


def test_anonymous_visitors_are_sent_to_log_in(answered):
    client = Client()
    for url, r in _requests(client, answered.slug):
        assert r.status_code == 302 and r["Location"].startswith("/research/login/"), (url, r.status_code)
    assert client.get("/research/")["Location"].startswith("/research/login/")


def test_unknown_studies_look_like_forbidden_ones(answered):
    client = Client()
    client.force_login(researcher_of(answered))
    assert client.get("/research/no-such-study/").status_code == 404


def test_researchers_log_in_with_the_research_login(answered):
    researcher_of(answered)
    client = Client()
    r = client.post("/research/login/", {"username": "alice", "password": "pw-for-tests"})
    assert r.status_code == 302 and r["Location"] == "/research/"
    home = client.get("/research/")
    assert home.status_code == 200 and answered.title in home.content.decode()
    # The researcher is still logged in: the login page sends them on to their studies.
    assert client.get("/research/login/")["Location"] == "/research/"
    out = client.post("/research/logout/")
    assert out.status_code == 302 and out["Location"] == "/research/login/"
    assert client.get(f"/research/{answered.slug}/").status_code == 302


OTHER_SITES = ("//evil.example/x", "https://evil.example/", "/\\evil.example", "https:evil.example",
               "javascript:alert(1)")


@pytest.mark.parametrize("login", ["/research/login/", "/admin/login/"])
@pytest.mark.parametrize("next_url", OTHER_SITES)
def test_a_login_with_a_next_on_another_site_lands_on_the_research_home(login, next_url):
    # Probe 4: both refuse the other site, but the admin's login then went to Django's
    # default /accounts/profile/, a 404 here.
    get_user_model().objects.create_user("staffer", password="pw-for-tests", is_staff=True)
    data = {"username": "staffer", "password": "pw-for-tests", "next": next_url}
    r = Client().post(f"{login}?{urlencode({'next': next_url})}", data)
    assert r.status_code == 302 and r["Location"] == "/research/"
