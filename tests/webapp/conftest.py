import json
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import build_open_study

from .fake_prolific import fake_prolific  # noqa: F401 (a fixture: a local server answering as Prolific's API)

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"
PID = "0123456789abcdef01234567"  # shaped like a Prolific participant id (24 hex digits)


def demo_protocol() -> dict:
    return json.loads(DEMO.read_text())


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Every web app test writes images into its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(db):
    return build_open_study()


def join(client: Client, study, **params):
    """Join by invite link, consent, and start from the instructions (answering the
    practice item when there is one); return the evaluator's client."""
    r = client.get(f"/join/{study.invite_token}/", params)
    assert r.status_code == 302, r.content
    r = client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    assert r.status_code == 302
    start(client, study)
    return client


def start(client: Client, study) -> None:
    """Past the instructions (and the practice item) of a consented evaluator."""
    r = client.post(f"/e/{study.slug}/instructions/")
    if r.status_code == 302 and r["Location"].endswith("/practice/"):
        r = client.post(f"/e/{study.slug}/practice/", {"answer": "1"})
        assert r.status_code == 302 and r["Location"].endswith("/practice/"), r  # its feedback, by a GET
        return
    assert r.status_code == 302 and r["Location"].endswith("/task/"), r


@pytest.fixture
def evaluator_client(study):
    return join(Client(), study)


def current_task(client: Client, study) -> dict:
    r = client.get(f"/e/{study.slug}/state/")
    assert r.status_code == 200
    return r.json()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Rate-limit counters live in the cache: each test starts with none spent. A test
    client answers far faster than a person, so the answer rate is raised; the tests of
    the limits themselves set the production values (tests/webapp/test_ratelimits.py)."""
    from django.core.cache import cache

    settings.FUSION_RATE_ANSWER = "1000/s"
    cache.clear()
    yield
    cache.clear()


def answer_data(task: dict, *, count: str = "2") -> dict:
    """A valid POST for the task shown: a count, or the identity ranking of its width."""
    data = {"kind": task["kind"], "token": task["token"]}
    if task["kind"] == "count":
        data["answer"] = count
    else:
        data.update({f"rank_{i}": str(i + 1) for i in range(len(task["images"]))})
    return data


def shown_image(url: str, evaluator):
    """The image an evaluator's image address (``/i/<alias>``) names for ``evaluator``, by the
    ORM's rule (selectors.showing_image); None when it names none of theirs."""
    from webapp.studies import imagealias, selectors

    showing = imagealias.showing_from_alias(url.rsplit("/", 1)[1], evaluator_ids=[evaluator.pk])
    if showing is None:
        return None
    return selectors.showing_image(evaluator=evaluator, index=showing.index, position=showing.position)
