"""Sessions read from the shared cache, written through to the database (Django's
``cached_db``), without the look-up that precedes every new session.

Django makes a new session key by drawing one and asking the cache and then the database
whether it is taken, before the INSERT. The key is 32 characters of 36 (about 165 bits):
a collision is not expected in the life of the site, and were one drawn, the INSERT would
hit the table's primary key, Django would raise ``CreateError`` and ``create()`` would
draw again. So the INSERT alone decides, as it would in a race between two new sessions
anyway; a new visitor (every evaluator's first request) costs a query and a Redis round
trip less.
"""
from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbSessionStore
from django.utils.crypto import get_random_string

KEY_LENGTH = 32  # as Django's own keys


class SessionStore(CachedDbSessionStore):
    """``cached_db``'s store, whose new keys are checked by the INSERT's primary key only."""

    def _get_new_session_key(self) -> str:
        return get_random_string(KEY_LENGTH, VALID_KEY_CHARS)
