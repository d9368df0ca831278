"""Rate limits (django-ratelimit) and the login lock-out (django-axes), with production values.

The limits' counts come from webapp/settings.py as they ship; the autouse fixture of conftest
raises only the answer rate, which the answer test below sets back. django-ratelimit's windows
are fixed, so a run of requests that straddles a window's edge gets a second window's count
(seen in CI: 40 of 300 joins let through instead of 30, on a slow machine): the tests keep the
shipped counts over a day's window, which no test straddles but once a day at worst.
"""

import importlib

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import UserFactory, build_open_study
from webapp.studies.models import CountResponse, Evaluator, RankResponse, Slot

from .conftest import answer_data, current_task, join, start

pytestmark = pytest.mark.django_db

SHIPPED = importlib.import_module(django_settings.SETTINGS_MODULE)


def _limit(rate: str) -> int:
    return int(rate.split("/")[0])


@pytest.fixture(autouse=True)
def _shipped_counts_in_one_window(settings):
    settings.FUSION_RATE_JOIN = f"{_limit(SHIPPED.FUSION_RATE_JOIN)}/d"
    settings.FUSION_RATE_CONSENT = f"{_limit(SHIPPED.FUSION_RATE_CONSENT)}/d"


def _held_slots(study) -> int:
    return Evaluator.objects.filter(study=study, slot__isnull=False, abandoned_at__isnull=True).count()


def test_300_cookie_less_joins_from_one_client_get_429s_and_take_no_slot():
    study = build_open_study(n_slots=20)
    statuses = [Client().get(f"/join/{study.invite_token}/").status_code for _ in range(300)]
    allowed = _limit(SHIPPED.FUSION_RATE_JOIN)
    assert statuses.count(302) == allowed and statuses.count(429) == 300 - allowed
    assert _held_slots(study) == 0  # joining holds no slot; only consent takes one
    assert Evaluator.objects.filter(study=study).count() == allowed


def test_300_joins_that_also_consent_leave_at_least_95_percent_of_the_slots_free():
    study = build_open_study(n_slots=200)
    for _ in range(300):
        client = Client()
        if client.get(f"/join/{study.invite_token}/").status_code == 302:
            client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    assert _held_slots(study) <= _limit(SHIPPED.FUSION_RATE_CONSENT)
    assert _held_slots(study) / Slot.objects.filter(study=study).count() <= 0.05
    # A participant at another address still gets in.
    client = Client(REMOTE_ADDR="198.51.100.20")
    r = client.get(f"/join/{study.invite_token}/")
    assert r.status_code == 302 and client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(client, study)
    assert current_task(client, study)["task"]


def _consent_from(study, address: str) -> tuple[Client, int]:
    client = Client(REMOTE_ADDR=address)
    assert client.get(f"/join/{study.invite_token}/").status_code == 302
    return client, client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code


def test_one_address_holds_at_most_its_share_of_places_at_once(settings):
    """The consent rate alone let one address take every place of a study in minutes (and
    keep them with an answer every two hours): now it holds FUSION_SLOTS_PER_ADDRESS at once."""
    settings.FUSION_RATE_CONSENT = "1000/d"  # the cap, not the rate, is what this test meets
    cap = SHIPPED.FUSION_SLOTS_PER_ADDRESS
    study = build_open_study(n_slots=cap + 3)
    holders = [_consent_from(study, "203.0.113.7") for _ in range(cap)]
    assert [status for _, status in holders] == [302] * cap and _held_slots(study) == cap
    client, status = _consent_from(study, "203.0.113.7")
    assert status == 429 and _held_slots(study) == cap
    again = client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    assert again.status_code == 429 and b"already held from your network" in again.content
    assert b"I agree" in client.get(f"/e/{study.slug}/consent/").content  # nothing taken: they may come back
    assert not Evaluator.objects.filter(study=study, consented_at__isnull=False, slot__isnull=True).exists()
    assert _consent_from(study, "198.51.100.21")[1] == 302  # another address gets in
    # A place given back (finished, or abandoned) makes room for the address again.
    finished = Evaluator.objects.filter(study=study, consent_address__gt="", slot__isnull=False).order_by("pk")[0]
    Evaluator.objects.filter(pk=finished.pk).update(finished_at=finished.consented_at)
    assert _consent_from(study, "203.0.113.7")[1] == 302
    assert Evaluator.objects.filter(consent_address__contains="203.0.113").count() == 0  # a keyed hash only
    settings.FUSION_SLOTS_PER_ADDRESS = 0  # no cap, e.g. a lab whose participants share an address
    assert _consent_from(study, "203.0.113.7")[1] == 302


def test_the_cap_counts_an_ipv6_client_by_its_64_and_a_mapped_ipv4_as_itself(settings):
    """Every IPv6 home line or server has at least a /64: counted by the full address, one
    client held every place of a study from 2^64 "addresses"."""
    settings.FUSION_RATE_CONSENT = "1000/d"
    cap = SHIPPED.FUSION_SLOTS_PER_ADDRESS
    study = build_open_study(n_slots=2 * cap + 2)
    statuses = [_consent_from(study, f"2001:db8:0:7::{k + 1:x}")[1] for k in range(cap + 1)]
    assert statuses == [302] * cap + [429] and _held_slots(study) == cap
    assert _consent_from(study, "2001:db8:0:8::1")[1] == 302  # the next /64 is someone else
    mapped = [_consent_from(study, "::ffff:192.0.2.9")[1] for _ in range(cap - 1)]
    assert mapped == [302] * (cap - 1)
    assert _consent_from(study, "192.0.2.9")[1] == 302           # the same IPv4 client, its 5th place
    assert _consent_from(study, "::ffff:192.0.2.9")[1] == 429


def test_a_refused_join_shows_the_plain_429_page(study):
    for _ in range(_limit(SHIPPED.FUSION_RATE_JOIN)):
        Client().get(f"/join/{study.invite_token}/")
    r = Client().get(f"/join/{study.invite_token}/")
    assert r.status_code == 429 and b"Wait a minute" in r.content and r["Retry-After"] == "60"


def test_answers_over_the_rate_get_429_and_are_not_stored(study, settings):
    settings.FUSION_RATE_ANSWER = "3/d"  # a small count, over a window the test does not straddle
    client = join(Client(), study)
    for _ in range(3):
        task = current_task(client, study)["task"]
        assert (
            client.post(f"/e/{study.slug}/task/", answer_data(task), HTTP_ACCEPT="application/json").status_code == 200
        )
    task = current_task(client, study)["task"]
    r = client.post(f"/e/{study.slug}/task/", answer_data(task), HTTP_ACCEPT="application/json")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert CountResponse.objects.count() + RankResponse.objects.count() == 3
    # Another evaluator has a rate of their own.
    other = join(Client(), study)
    task = current_task(other, study)["task"]
    assert other.post(f"/e/{study.slug}/task/", answer_data(task), HTTP_ACCEPT="application/json").status_code == 200


@pytest.mark.parametrize("url", ["/research/login/", "/admin/login/"])
def test_wrong_passwords_lock_the_login_out_even_for_the_right_one(url):
    user = UserFactory(username="researcher", is_staff=True)
    user.set_password("the-right-one")
    user.save()
    client = Client()
    for _ in range(SHIPPED.AXES_FAILURE_LIMIT):
        r = client.post(url, {"username": "researcher", "password": "wrong"})
        assert r.status_code in (200, 429) and "_auth_user_id" not in client.session
    r = client.post(url, {"username": "researcher", "password": "the-right-one"})
    assert r.status_code == 429 and b"Too many failed logins" in r.content
    assert "_auth_user_id" not in client.session
    # Below the limit, the right password logs in (and the count starts again).
    other = UserFactory(username="other", is_staff=True)
    other.set_password("pw-other")
    other.save()
    fresh = Client()
    fresh.post(url, {"username": "other", "password": "wrong"})
    fresh.post(url, {"username": "other", "password": "pw-other"})
    assert fresh.session.get("_auth_user_id") == str(other.pk)


def test_behind_a_proxy_the_address_it_appends_is_counted_not_what_the_client_claims(settings, rf):
    from webapp.clientip import client_ip

    settings.FUSION_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    # A client that sends its own X-Forwarded-For cannot pick the address it is counted under.
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7", REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == "198.51.100.7"
    assert client_ip(rf.get("/", REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"  # no header: the peer
    settings.FUSION_CLIENT_IP_HEADER = "REMOTE_ADDR"
    assert client_ip(request) == "127.0.0.1"
