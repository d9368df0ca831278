"""Django's Redis cache (the rate limits' counters and the sessions' copies), lighter per call.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` object for every cache call; each
one copies redis-py's table of ~170 response callbacks, which on the evaluator pages (a
session read and two rate-limit calls per request) cost more CPU than the round trips.
A ``redis.Redis`` is safe to share between threads (each command borrows a connection from
the pool), so one per connection pool is kept and reused.

``incr`` is one round trip instead of two (Django asks ``EXISTS`` and then ``INCRBY``):
a short Lua script increments the key only when it exists, atomically, and says when it
did not (``ValueError``, as Django's does), so django-ratelimit counts a hit with an
``add`` and at most one ``incr``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script
    from redis.typing import KeyT

# KEYS[1]: the key; ARGV[1]: the step. Returns the new value, or false (nil) when the key is missing.
_INCR_IF_EXISTS = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)


class ReusingRedisCacheClient(RedisCacheClient):
    """``RedisCacheClient`` with one ``redis.Redis`` per connection pool, and ``incr`` in one round trip."""

    def __init__(self, servers: list[str], **options: Any) -> None:  # Any: Django's client options, passed on
        super().__init__(servers, **options)
        self._clients: dict[int, Redis] = {}
        self._incr_scripts: dict[int, Script] = {}

    def get_client(self, key: KeyT | None = None, *, write: bool = False) -> Redis:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's, untyped
        client = self._clients.get(id(pool))
        if client is None:  # two threads may both build one; either is as good
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client

    def incr(self, key: KeyT, delta: int) -> int:
        client = self.get_client(key, write=True)
        script = self._incr_scripts.get(id(client))
        if script is None:
            script = self._incr_scripts.setdefault(id(client), client.register_script(_INCR_IF_EXISTS))
        value = script(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key {key!r} not found.")
        return value


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` on ``ReusingRedisCacheClient``."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
