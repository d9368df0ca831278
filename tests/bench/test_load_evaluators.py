"""The load test reads what the site's Server-Timing header says, in the format the site writes."""
import pytest
import requests

from bench.load_evaluators import server_timing
from webapp.servertiming import HEADER, format_header


def _response(*made: tuple[float, float, float, int, float]) -> requests.Response:
    """A response, with the redirects before it, each with a header made by the site's own code."""
    chain = []
    for app, cpu, db, queries, gc in made:
        r = requests.Response()
        r.headers[HEADER] = format_header(app_seconds=app, cpu_seconds=cpu, db_seconds=db, queries=queries,
                                          gc_seconds=gc)
        chain.append(r)
    chain[-1].history = chain[:-1]
    return chain[-1]


def test_it_reads_every_field_and_sums_the_redirects_a_browser_follows():
    timing = server_timing(_response((0.010, 0.004, 0.002, 6, 0.0), (0.005, 0.003, 0.001, 3, 0.0015)))
    assert timing is not None
    assert timing == pytest.approx((15.0, 7.0, 3.0, 9, 1.5))


def test_a_response_without_the_header_has_no_timing():
    assert server_timing(requests.Response()) is None


@pytest.mark.django_db
@pytest.mark.parametrize("variants", [("a", "b", "c", "d"), ("a", "b")], ids=["ranking", "pairwise"])
def test_the_browser_walk_reads_the_forms_and_images_of_the_site_s_own_pages(settings, tmp_path, variants):
    """What the browser's walk finds in the pages (the CSRF field, the task's token, the rank
    menus, the images, the form the task script answers in place) is what the site's
    templates write: the walk answers every task of an evaluator with the forms it builds,
    through the site, and loads every image."""
    from django.core.cache import cache
    from django.test import Client

    from bench.load_evaluators import CSRF_FIELD, IMAGE_SRC, IN_PLACE_FORM, TOKEN_FIELD, _answer, _layout, _task_layout

    def _csrf(html: str) -> str:
        found = CSRF_FIELD.search(html)
        assert found is not None, "no CSRF field in the page"
        return found.group(1)
    from tests.factories import build_open_study
    from webapp.studies.models import CountResponse, RankResponse

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FUSION_RATE_ANSWER = "1000/s"
    cache.clear()
    study = build_open_study(variants=variants)
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/join/{study.invite_token}/", follow=True)
    agree = {"agree": "yes", "csrfmiddlewaretoken": _csrf(page.content.decode())}
    page = client.post(f"/e/{study.slug}/consent/", agree, follow=True)
    html = page.content.decode()
    page = client.post(f"/e/{study.slug}/instructions/", {"csrfmiddlewaretoken": _csrf(html)}, follow=True)
    kinds, k = set(), 0
    while (token := TOKEN_FIELD.search(html := page.content.decode())) is not None:
        sources = IMAGE_SRC.findall(html)
        assert sources and all(client.get(src).status_code == 200 for src in sources)
        name, data = _answer(k, html)
        kinds.add(name)
        # The walk answers in place where the task script would (every task page of an open
        # study), and reads a page's layout as the API describes the same task.
        assert IN_PLACE_FORM.search(html) is not None
        assert _layout(html) == _task_layout(client.get(f"/e/{study.slug}/state/").json()["task"])
        form = {"csrfmiddlewaretoken": _csrf(html), "token": token.group(1), **data}
        page = client.post(f"/e/{study.slug}/task/", form, follow=True)
        assert page.status_code == 200
        k += 1
    assert kinds == {"submit-count", "submit-rank"}
    assert CountResponse.objects.count() + RankResponse.objects.count() == k > 0
    cache.clear()
