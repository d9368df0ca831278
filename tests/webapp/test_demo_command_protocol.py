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
