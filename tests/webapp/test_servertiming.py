"""Every response but an image says how long the server worked on it and how many queries it made."""
import gc
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from webapp.studies import selectors
from webapp.studies.models import Image

from .conftest import current_task

pytestmark = pytest.mark.django_db

TIMING = re.compile(
    r'^app;dur=(\d+\.\d\d), cpu;dur=(\d+\.\d\d), db;dur=(\d+\.\d\d);desc="(\d+) queries", gc;dur=(\d+\.\d\d)$')


def _timing(response) -> tuple[float, float, float, int]:
    match = TIMING.match(response["Server-Timing"])
    assert match, response["Server-Timing"]
    return float(match[1]), float(match[2]), float(match[3]), int(match[4])


def _gc_ms(response) -> float:
    match = TIMING.match(response["Server-Timing"])
    assert match, response["Server-Timing"]
    return float(match[5])


def test_evaluator_pages_report_server_time_and_their_queries(study, evaluator_client):
    for _ in range(2):  # the first showing of a task may write; the second only reads
        with CaptureQueriesContext(connection) as ctx:
            r = evaluator_client.get(f"/e/{study.slug}/state/")
        app_ms, cpu_ms, db_ms, queries = _timing(r)
        assert 0 < db_ms <= app_ms and 0 < cpu_ms
        assert queries == len(ctx.captured_queries) > 0  # the queries Django ran, no more, no fewer


def test_a_garbage_collection_during_a_request_is_reported(study, evaluator_client, monkeypatch):
    """The time the process spent collecting garbage while the request was served: a full
    collection set off inside the view shows, and a request without one shows none."""
    quiet = evaluator_client.get(f"/e/{study.slug}/state/")
    gc.disable()  # no collection but the one this test sets off
    try:
        assert _gc_ms(evaluator_client.get(f"/e/{study.slug}/state/")) == 0.0

        real_state = selectors.evaluator_next_and_progress

        def collecting(**kwargs):
            gc.collect()  # the whole heap of a test process: milliseconds
            return real_state(**kwargs)

        monkeypatch.setattr(selectors, "evaluator_next_and_progress", collecting)
        busy = evaluator_client.get(f"/e/{study.slug}/state/")
    finally:
        gc.enable()
    app_ms = _timing(busy)[0]
    assert 0 < _gc_ms(busy) <= app_ms, busy["Server-Timing"]
    assert quiet.status_code == busy.status_code == 200


def test_images_carry_no_timing(study, evaluator_client):
    """A time could vary with a file's size, and so with the model that drew it."""
    url = current_task(evaluator_client, study)["task"]["images"][0]
    r = evaluator_client.get(url)
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    assert "Server-Timing" not in r
    assert Image.objects.filter(study=study).exists()


def test_it_can_be_turned_off(study, settings):
    settings.FUSION_SERVER_TIMING = False
    settings.MIDDLEWARE = list(settings.MIDDLEWARE)  # rebuilds the middleware chain, which reads the setting
    assert "Server-Timing" not in Client().get(f"/join/{study.invite_token}/")
