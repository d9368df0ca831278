"""What one statement that may fail needs around it, and nothing more.

A lone INSERT that may break a unique constraint (two joins with one panel id) must fail
without spoiling the caller's transaction: inside one, that takes a savepoint
(``transaction.atomic``). Outside any, in autocommit, the statement is its own transaction and
its error leaves nothing open, so an ``atomic`` would only add a BEGIN and a COMMIT, two more
round trips to the database on the evaluators' way in.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from django.db import transaction


def lone_statement(using: str | None = None) -> AbstractContextManager:
    """A savepoint inside a transaction; nothing in autocommit."""
    if transaction.get_connection(using).in_atomic_block:
        return transaction.atomic(using=using)
    return nullcontext()
