"""What every management command that names a study does with a slug that names none."""
from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

# Each command that takes a study's slug, called with an unknown one ("nope") and otherwise
# valid arguments; {tmp} is a scratch folder.
UNKNOWN_SLUG_CALLS = {
    "launch_batch": ["nope"],
    "batch_status": ["nope"],
    "import_images": ["nope", "{tmp}/images"],
    "register_checkpoint": ["tiny", "{tmp}/ckpt", "--study", "nope", "--variant", "cross-early"],
    "export": ["nope", "--format", "csv", "--out", "{tmp}/out.csv"],
    "simulate_responses": ["nope", "--evaluators", "2"],
    "remove_simulated": ["nope"],
    "study_status": ["nope", "--open"],
}


def _database() -> dict[str, list[dict]]:
    """Every row of every table."""
    return {model._meta.label: list(model._default_manager.order_by("pk").values()) for model in apps.get_models()}


@pytest.mark.parametrize("command", sorted(UNKNOWN_SLUG_CALLS))
def test_an_unknown_slug_fails_with_one_message_and_changes_nothing(command, study, tmp_path):
    before = _database()
    argv = [a.format(tmp=tmp_path) for a in UNKNOWN_SLUG_CALLS[command]]
    with pytest.raises(CommandError) as failure:
        call_command(command, *argv)
    assert str(failure.value) == "No study with the slug 'nope'."
    assert _database() == before
    assert {p.name for p in tmp_path.iterdir()} <= {"media"}  # no file written
