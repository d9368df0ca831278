import re

import pytest
import torch

from generator.checkpoint import CheckpointMetadata, checkpoint_sha256, load_ema, read_metadata, save_ema, weights_path
from generator.encoders import encoder_specs_for
from generator.model import UViT


def test_weights_and_metadata_round_trip(tmp_path, tiny_cfg):
    model = UViT(tiny_cfg)
    codec, text = encoder_specs_for(tiny_cfg)
    save_ema(tmp_path / "run", model.state_dict(), tiny_cfg, codec, text, step=7, name="x")
    state, meta = load_ema(tmp_path / "run")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert meta == CheckpointMetadata(
        config=tiny_cfg, codec=codec, text_encoder=text, step=7, name="x", prediction_type="epsilon",
        timestep_convention="index", source={"kind": "trained"},
    )


def test_half_precision_export_is_smaller_and_loads_as_float32(tmp_path, tiny_cfg):
    model = UViT(tiny_cfg)
    codec, text = encoder_specs_for(tiny_cfg)
    full = save_ema(tmp_path / "full", model.state_dict(), tiny_cfg, codec, text, 1, "x")
    half = save_ema(
        tmp_path / "half.safetensors", model.state_dict(), tiny_cfg, codec, text, 1, "x",
        dtype=torch.float16, prediction_type="v_prediction",
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    state, _ = load_ema(half)
    assert state["pos_embed"].dtype == torch.float32
    assert torch.allclose(state["pos_embed"], model.pos_embed.detach(), atol=1e-3)
    assert read_metadata(half).config == tiny_cfg and read_metadata(half).prediction_type == "v_prediction"


def test_sha256_identifies_the_weights_file(tiny_checkpoint):
    digest = checkpoint_sha256(tiny_checkpoint)
    assert len(digest) == 64 and digest == checkpoint_sha256(weights_path(tiny_checkpoint))


def _rewrite_metadata(src, dest, change):
    """A copy of weights file `src` at `dest` with its metadata strings passed through `change`."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(src)), str(dest), metadata=change(meta))
    return dest


def test_a_checkpoint_written_before_the_conventions_reads_as_their_defaults(tmp_path, tiny_checkpoint):
    # Files saved before prediction_type, timestep_convention and source were recorded.
    old = _rewrite_metadata(weights_path(tiny_checkpoint), tmp_path / "old.safetensors", lambda m: {
        k: v for k, v in m.items() if k not in ("prediction_type", "timestep_convention", "source")})
    meta = read_metadata(old)
    assert (meta.prediction_type, meta.timestep_convention, meta.source) == ("epsilon", "index", {"kind": "trained"})
    assert meta.step == 0 and meta.name == "tiny-test"


@pytest.mark.parametrize("change, message", [
    (lambda m: {("model_config" if k == "config" else k): v for k, v in m.items()}, "its metadata lacks config"),
    (lambda m: {k: v for k, v in m.items() if k != "text_encoder"}, "its metadata lacks text_encoder"),
    (lambda m: {**m, "step": "seven"}, "step is not a whole number ('seven')"),
    (lambda m: {**m, "codec": "{not json"}, "codec is not JSON"),
    (lambda m: {**m, "source": '["trained"]'}, "source is not a JSON object"),
    (lambda m: {**m, "source": '{"origin": "trained"}'}, "source has no kind"),
])
def test_a_renamed_or_malformed_metadata_field_is_a_clear_error(tmp_path, tiny_checkpoint, change, message):
    bad = _rewrite_metadata(weights_path(tiny_checkpoint), tmp_path / "bad.safetensors", change)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        read_metadata(bad)
    assert str(err.value).startswith("bad.safetensors is a damaged ")  # the file's name, not its folder
