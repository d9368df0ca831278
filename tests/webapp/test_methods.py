"""Views that only read refuse writes (405), and refusing stores nothing."""
import pytest

from tests.narrow import present
from webapp.studies.models import CountResponse, Evaluator, Image, RankResponse

pytestmark = pytest.mark.django_db


def _stored(study):
    return (Evaluator.objects.filter(study=study).count(), CountResponse.objects.count(), RankResponse.objects.count())


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_read_only_evaluator_views_refuse_other_methods(study, evaluator_client, method):
    image = present(Image.objects.filter(study=study).first())
    before = _stored(study)
    urls = [f"/e/{study.slug}/state/", f"/e/{study.slug}/done/", f"/i/{image.public_id}",
            f"/join/{study.invite_token}/"]
    if method != "post":  # the instructions take a POST: "Start"
        urls.append(f"/e/{study.slug}/instructions/")
    for url in urls:
        r = getattr(evaluator_client, method)(url)
        assert r.status_code == 405, (url, r.status_code)
    assert _stored(study) == before


def test_undo_refuses_get(study, evaluator_client):
    assert evaluator_client.get(f"/e/{study.slug}/undo/").status_code == 405


def test_a_visitor_who_has_not_joined_gets_404_on_every_evaluator_page(study, client):
    for page in ("consent", "instructions", "task", "state", "done"):
        assert client.get(f"/e/{study.slug}/{page}/").status_code == 404, page
    assert client.post(f"/e/{study.slug}/undo/").status_code == 404


def test_a_head_on_the_invite_link_answers_and_makes_nobody(study, client):
    """Link checkers and previews (mail scanners, chat unfurls) send HEAD: the link works,
    and no evaluator is made until a browser GETs the page."""
    url = f"/join/{study.invite_token}/?PROLIFIC_PID=5f1e2d3c4b5a69788796a5b4"
    before = _stored(study)
    r = client.head(url)
    assert r.status_code == 200
    assert _stored(study) == before
    assert "_auth_user_id" not in client.session and not client.session.keys()
    assert client.get(url).status_code in (200, 302)
    assert Evaluator.objects.filter(study=study).count() == before[0] + 1
