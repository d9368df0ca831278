"""After a flood of joins from one address, a real participant in Chromium still gets in.

The flood comes through "the proxy" (X-Forwarded-For, as in production behind one) from
one address: 300 cookie-less joins, and as many joins that also agree to the consent
form, as a script taking slots would. The participant comes from another address.
"""
import re

import pytest
import requests
from django.core.cache import cache

from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies.models import Evaluator, Slot

ATTACKER = {"X-Forwarded-For": "203.0.113.7"}


@pytest.fixture
def study(transactional_db, settings):
    settings.FUSION_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    # The production limits (30 joins and 10 consents a minute per address) in hourly windows:
    # django-ratelimit's windows are fixed, so a flood that straddled a minute's boundary got a
    # second window's 10 consents (10 of 40 slots, seen in CI on a slow machine). An hour makes
    # the flood one window, whatever the machine's speed.
    settings.FUSION_RATE_JOIN = "30/h"
    settings.FUSION_RATE_CONSENT = "10/h"
    cache.clear()
    yield build_open_study(n_slots=40)
    cache.clear()


def _flood(live_server, study) -> list[int]:
    url = f"{live_server.url}/join/{study.invite_token}/"
    statuses = [requests.get(url, headers=ATTACKER, allow_redirects=False, timeout=10).status_code for _ in range(300)]
    for _ in range(300):
        with requests.Session() as s:
            r = s.get(url, headers=ATTACKER, timeout=10)
            statuses.append(r.status_code)
            if r.status_code == 200 and "csrftoken" in s.cookies:
                token = present(re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)).group(1)
                consent = s.post(r.url, data={"agree": "yes", "csrfmiddlewaretoken": token},
                                 headers={**ATTACKER, "Referer": r.url}, allow_redirects=False, timeout=10)
                statuses.append(consent.status_code)
    return statuses


def test_a_participant_joins_after_a_flood_from_one_address(browser, live_server, study):
    statuses = _flood(live_server, study)
    assert statuses.count(429) >= 500
    held = Evaluator.objects.filter(study=study, slot__isnull=False).count()
    assert held / Slot.objects.filter(study=study).count() <= 0.05
    context = browser.new_context(extra_http_headers={"X-Forwarded-For": "198.51.100.20"})
    page = context.new_page()
    page.set_default_timeout(15000)
    blocked = []
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
    try:
        response = page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID=real-person")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector("text=Before you start")
        with page.expect_navigation():
            page.click("button[name=agree][value=yes]")
        page.wait_for_selector("text=How it works")
        with page.expect_navigation():
            page.click("#start")
        page.wait_for_selector("#answer-form, #rank-form")
    finally:
        context.close()
    person = Evaluator.objects.get(study=study, external_id="real-person")
    assert person.consented_at is not None and person.slot_id is not None
    assert not blocked, blocked
