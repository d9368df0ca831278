"""webapp/sessions.py: a new session is one INSERT, and a drawn key that is taken is drawn again."""
import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext

from webapp import sessions
from webapp.sessions import SessionStore

pytestmark = pytest.mark.django_db


def _statements(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_a_new_session_is_stored_by_one_insert_without_a_look_up_first():
    store = SessionStore()
    store["fusion_evaluators"] = {"1": 2}
    with CaptureQueriesContext(connection) as ctx:
        store.save()
    assert [sql.split()[0] for sql in _statements(ctx)] == ["INSERT"]
    assert SessionStore(store.session_key)["fusion_evaluators"] == {"1": 2}


def test_a_key_that_is_taken_is_drawn_again_and_the_other_session_is_untouched(monkeypatch):
    first = SessionStore()
    first["fusion_evaluators"] = {"1": 1}
    first.save()
    taken = first.session_key
    drawn = iter([taken, "k" * sessions.KEY_LENGTH])
    monkeypatch.setattr(sessions, "get_random_string", lambda length, chars: next(drawn))
    second = SessionStore()
    second["fusion_evaluators"] = {"1": 2}
    second.save()
    assert second.session_key == "k" * sessions.KEY_LENGTH
    assert SessionStore(taken)["fusion_evaluators"] == {"1": 1}
    assert Session.objects.count() == 2
