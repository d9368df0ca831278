"""webapp.cache: Django's Redis cache with one client per pool and a one-round-trip ``incr``.

Needs a Redis server (FUSION_TEST_REDIS_URL, as ``make test`` sets it); skipped without one.
"""
import os

import pytest

from webapp.cache import RedisCache

REDIS_URL = os.environ.get("FUSION_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="FUSION_TEST_REDIS_URL is not set: needs the Redis server")


@pytest.fixture
def cache():
    backend = RedisCache(REDIS_URL, {"KEY_PREFIX": f"test-cache-{os.getpid()}"})
    backend.clear()
    yield backend
    backend.clear()


def test_one_client_object_serves_every_call(cache):
    first = cache._cache.get_client("a")
    assert cache._cache.get_client("b") is first
    assert cache._cache.get_client("c", write=True) is first  # one server: one pool, one client


def test_incr_counts_atomically_and_refuses_a_missing_key_like_djangos(cache):
    assert cache.add("hits", 1, 60)
    assert not cache.add("hits", 1, 60)  # django-ratelimit's first step: only the first add wins
    assert cache.incr("hits") == 2
    assert cache.incr("hits", 5) == 7
    assert cache.get("hits") == 7
    with pytest.raises(ValueError, match="not found"):
        cache.incr("never-set")
    assert cache.get("never-set") is None  # a refused incr creates nothing


def test_incr_is_one_round_trip(cache, monkeypatch):
    cache.set("hits", 1, 60)
    client = cache._cache.get_client("hits", write=True)
    calls = []
    real = type(client).execute_command

    def counted(self, *args, **options):
        calls.append(args[0])
        return real(self, *args, **options)

    monkeypatch.setattr(type(client), "execute_command", counted)
    assert cache.incr("hits") == 2
    assert len(calls) == 1, calls
