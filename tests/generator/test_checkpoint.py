import torch

from generator.checkpoint import checkpoint_sha256, load_ema, read_metadata, save_ema, weights_path
from generator.encoders import encoder_specs_for
from generator.model import UViT


def test_weights_and_metadata_round_trip(tmp_path, tiny_cfg):
    model = UViT(tiny_cfg)
    codec, text = encoder_specs_for(tiny_cfg)
    save_ema(tmp_path / "run", model.state_dict(), tiny_cfg, codec, text, step=7, name="x")
    state, meta = load_ema(tmp_path / "run")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert meta == {
        "config": tiny_cfg, "codec": codec, "text_encoder": text, "step": 7, "name": "x", "prediction_type": "epsilon",
        "timestep_convention": "index", "source": {"kind": "trained"},
    }


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
    assert read_metadata(half)["config"] == tiny_cfg and read_metadata(half)["prediction_type"] == "v_prediction"


def test_sha256_identifies_the_weights_file(tiny_checkpoint):
    digest = checkpoint_sha256(tiny_checkpoint)
    assert len(digest) == 64 and digest == checkpoint_sha256(weights_path(tiny_checkpoint))
