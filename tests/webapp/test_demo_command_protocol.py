"""The demo command reads its protocol first: one that does not parse is refused, naming the
field, before anything is created."""
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


@pytest.mark.parametrize("text, says", [
    ("{nope", "not valid JSON"),
    (json.dumps({**json.loads(DEMO.read_text()), "sampling": {"steps": 25}}), "sampling"),
])
def test_a_protocol_that_does_not_parse_is_refused_before_anything_is_made(tmp_path, settings, text, says):
    settings.VAR_DIR = str(tmp_path / "var")
    settings.MEDIA_ROOT = str(tmp_path / "var" / "media")
    bad = tmp_path / "protocol.json"
    bad.write_text(text)
    with pytest.raises(CommandError, match=says):
        call_command("demo", "--protocol", str(bad), "--checkpoints", str(tmp_path), "--no-serve")
    assert not (tmp_path / "var").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("no_serve", [False, True])
def test_the_welcome_says_where_each_login_is_used(no_serve):
    """The demo prints two logins: each with the address it is typed into, so that a newcomer
    given the researcher's password need not guess where the researchers' login page is."""
    from io import StringIO

    from tests.factories import StudyFactory
    from webapp.generation.management.commands.demo import Command

    study = StudyFactory()
    summary = {"images": {"a": 1}, "invite_url": "http://127.0.0.1:8650/join/x/", "seconds": 1.0,
               "logins": {"admin": {"username": "admin", "password": "pa"},
                          "researcher": {"username": "researcher", "password": "pr"}}}
    out, err = StringIO(), StringIO()
    Command(stdout=out, stderr=err)._print_welcome(study, summary, "127.0.0.1:8650", no_serve)
    lines = (err if no_serve else out).getvalue().splitlines()
    researcher, = (line for line in lines if "Researcher login" in line)
    assert "researcher / pr" in researcher and "http://127.0.0.1:8650/research/login/" in researcher
    admin, = (line for line in lines if "Admin (staff) login" in line)
    assert "http://127.0.0.1:8650/admin/" in admin
