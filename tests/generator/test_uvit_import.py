"""Importing U-ViT's released text-to-image weights, and sampling them U-ViT's way.

The "released" files are made here: random weights under U-ViT's own tensor names and
shapes (tests/generator/uvit_reference.py, written from U-ViT's architecture, not from
generator/model.py), saved as U-ViT saves its nnet (torch.save of a plain state dict).
The imported network is compared with that module's functional forward pass, and the
expected values of the sampling test come from the formulas U-ViT publishes (its
discrete schedule, the timestep it feeds the network, its guidance), not from its code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generator.checkpoint import (
    UVIT_PRESETS,
    CheckpointMismatch,
    file_sha256,
    import_uvit,
    load_ema,
    main,
    read_metadata,
)
from generator.diffusion import make_scheduler
from generator.model import PRESETS
from generator.sample import load_sampler
from tests.generator.uvit_reference import UVIT_S, official_shapes, random_official_state, uvit_t2i_forward

PRESET = "uvit-s-concat-early"


@pytest.fixture(scope="module")
def uvit_state():
    return random_official_state(official_shapes(depth=12, **UVIT_S), seed=0)  # U-ViT-S: its depth 12


@pytest.fixture(scope="module")
def uvit_file(tmp_path_factory, uvit_state):
    path = tmp_path_factory.mktemp("uvit") / "mscoco_uvit_small.pth"
    torch.save(uvit_state, path)  # U-ViT: torch.save(nnet_ema.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory, uvit_file):
    return import_uvit(uvit_file, tmp_path_factory.mktemp("ckpt") / "uvit-s")


@pytest.fixture(scope="module")
def clip_768_dir(tmp_path_factory):
    """A CLIPTokenizer and a one-layer CLIPTextModel with CLIP ViT-L/14's token shape, 77 x 768."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.generator.conftest import write_clip_tokenizer

    folder = tmp_path_factory.mktemp("clip-768")
    vocab = write_clip_tokenizer(folder, max_length=77)
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=768, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=16, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    CLIPTextModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sampler(imported, tiny_vae_dir, clip_768_dir):
    return load_sampler(imported, vae_path=tiny_vae_dir, clip_path=clip_768_dir)


def test_imported_weights_are_the_file_and_record_uvit_conventions(imported, uvit_state):
    state, meta = load_ema(imported)
    assert state.keys() == uvit_state.keys() and all(torch.equal(state[k], uvit_state[k]) for k in state)
    assert meta.config == PRESETS[PRESET]
    assert meta.timestep_convention == "uvit" and meta.prediction_type == "epsilon"
    # U-ViT's MS-COCO config: the SD autoencoder at scale_factor 0.23010, CLIP ViT-L/14 tokens.
    assert meta.codec == {"name": "sd-vae", "scale_factor": 0.2301}
    # U-ViT called CLIP without the attention mask; the import records it for the sampler.
    assert meta.text_encoder == {"name": "clip", "text_len": 77, "dim": 768, "attention_mask": False}


def _reference_inputs(batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 32, 32, generator=g), torch.randn(batch, 77, 768, generator=g)


# Integer timesteps (U-ViT's training inputs, 1..1000) and fractional ones (its sampler gives
# the network 1000 t for continuous t), in one batch: one forward pass at U-ViT-S's shapes.
TIMESTEPS = [1.0, 1000.0, 37.0, 500.5, 3.25, 999.75]


def test_the_imported_network_computes_uvits_forward_pass(sampler, uvit_state):
    """The network a sampler loads from an imported file gives U-ViT's output, bit for bit.

    Exact, not approximate: the reference runs U-ViT's operations in U-ViT's order, and
    where our model orders them otherwise (the position rows added to each stream before
    the concatenation; the text tokens dropped before the final LayerNorm rather than
    after decoder_pred) the operations are elementwise or per token, so each output float
    comes from the same arithmetic."""
    x, ctx = _reference_inputs(len(TIMESTEPS))
    timesteps = torch.tensor(TIMESTEPS)
    with torch.no_grad():
        ours = sampler.model(x, timesteps, ctx)
    expected = uvit_t2i_forward(uvit_state, x, timesteps, ctx, num_heads=8)
    assert expected.abs().mean() > 0.1  # weights of order one: a wiring mistake moves the output by as much
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_uvit_s_deep_weights_import_and_compute_its_forward_pass(tmp_path, tiny_vae_dir, clip_768_dir):
    """U-ViT-S/2 Deep: U-ViT's depth 16 (8 + 1 + 8 blocks), our uvit-s-deep-concat-early."""
    state = random_official_state(official_shapes(depth=16, **UVIT_S), seed=2)
    assert len(state) == 214 and sum(v.numel() for v in state.values()) == 58_345_636
    path = tmp_path / "mscoco_uvit_small_deep.pth"
    torch.save(state, path)
    folder = tmp_path / "deep"
    import_uvit(path, folder, preset="uvit-s-deep-concat-early")
    network = load_sampler(folder, vae_path=tiny_vae_dir, clip_path=clip_768_dir).model
    assert network.cfg.depth == 17 and len(network.in_blocks) == len(network.out_blocks) == 8
    x, ctx = _reference_inputs(2)
    timesteps = torch.tensor([999.0, 12.5])
    with torch.no_grad():
        ours = network(x, timesteps, ctx)
    assert ours.shape == (2, 4, 32, 32)
    torch.testing.assert_close(ours, uvit_t2i_forward(state, x, timesteps, ctx, num_heads=8), rtol=0, atol=0)
    with pytest.raises(CheckpointMismatch):  # and U-ViT-S's 13 blocks do not fit it
        import_uvit(path, tmp_path / "not-deep", preset=PRESET)


@pytest.mark.parametrize("preset", ["uvit-s-concat-ablation-n0-i4", "uvit-s-cross-early", "uvit-s-concat-intermediate"])
def test_presets_that_are_not_uvit_are_refused(tmp_path, uvit_file, preset, capsys):
    # uvit-s-concat-ablation-n0-i4 has U-ViT-S's very names and shapes: only the preset tells them apart.
    with pytest.raises(ValueError, match="not a U-ViT architecture"):
        import_uvit(uvit_file, tmp_path / "out", preset=preset)
    with pytest.raises(SystemExit):
        main(["import-uvit", str(uvit_file), "--out", str(tmp_path / "out"), "--preset", preset])
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert set(UVIT_PRESETS) == {"uvit-s-concat-early", "uvit-s-deep-concat-early"}


def test_provenance_names_the_source_file(imported, uvit_file, sampler):
    source = read_metadata(imported).source
    assert source["kind"] == "imported" and source["file"] == "mscoco_uvit_small.pth"
    assert source["sha256"] == file_sha256(uvit_file)
    assert sampler.provenance()["source"] == source and sampler.provenance()["timestep_convention"] == "uvit"


def test_an_imported_checkpoint_samples(sampler):
    images = sampler.generate(["a cat on a sofa", "two dogs"], [1, 2], steps=2)
    assert [im.size for im in images] == [(64, 64), (64, 64)]  # 32x32 latents, the tiny VAE's 2x upsampling
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


@pytest.mark.django_db
def test_the_web_app_registers_an_imported_checkpoint(imported):
    from webapp.generation.services import checkpoint_register

    checkpoint = checkpoint_register(name="U-ViT-S (released)", path=imported.parent)
    assert checkpoint.sha256 == file_sha256(imported) and checkpoint.config["model"] == PRESETS[PRESET].to_dict()


def test_a_file_that_does_not_fit_is_refused_with_every_difference(tmp_path, uvit_state, capsys):
    state = dict(uvit_state)
    state["mid_block.attn.qkv_weight"] = state.pop("mid_block.attn.qkv.weight")  # renamed
    del state["norm.bias"]  # missing
    state["context_embed.weight"] = torch.zeros(512, 512)  # wrong shape (CLIP's 768 -> 512)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatch) as err:
        import_uvit(path, tmp_path / "out")
    assert err.value.missing == ["mid_block.attn.qkv.weight", "norm.bias"]
    assert err.value.unexpected == ["mid_block.attn.qkv_weight"]
    assert err.value.mismatched == ["context_embed.weight: got (512, 512), want (512, 768)"]
    with pytest.raises(SystemExit) as exit_:
        main(["import-uvit", str(path), "--out", str(tmp_path / "out")])
    message = str(exit_.value.code)
    for name in ("mid_block.attn.qkv.weight", "norm.bias", "mid_block.attn.qkv_weight", "context_embed.weight"):
        assert name in message
    assert not (tmp_path / "out").exists()


def test_the_command_line_imports_and_prints_the_source(tmp_path, uvit_file, capsys):
    main(["import-uvit", str(uvit_file), "--out", str(tmp_path / "ckpt")])
    printed = json.loads(capsys.readouterr().out)
    assert printed["source"]["sha256"] == file_sha256(uvit_file)
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    with pytest.raises(SystemExit, match="exists"):  # never overwrites
        main(["import-uvit", str(uvit_file), "--out", str(tmp_path / "ckpt")])


def _uvit_alphas_cumprod() -> np.ndarray:
    """U-ViT's discrete schedule: betas_1..N = linspace(sqrt(0.00085), sqrt(0.012), N)^2,
    with beta_0 = 0 prepended; cum_alphas[n] = prod_{i <= n} (1 - beta_i), n = 0..N."""
    betas = np.append(0.0, np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2)
    return np.cumprod(1 - betas)


def test_one_step_gives_the_network_uvit_timesteps_and_takes_uvit_guidance(sampler):
    prompt, seed, scale = "a red bus", 5, 3.0
    calls = []
    network = sampler.model
    hook = network.register_forward_pre_hook(lambda module, args: calls.append(args[1].clone()))  # (x, t, ctx)
    try:
        z = sampler.sample_latents([prompt], [seed], cfg_scale=scale, steps=1)
    finally:
        hook.remove()
    # The one solver step starts from the noise level of diffusers' first timestep. In
    # U-ViT's discrete schedule that level is cum_alphas[n]; DPM-Solver places it at
    # continuous time t = n / N, and U-ViT's sampler gives the network N * t = n.
    level = float(make_scheduler(1).alphas_cumprod[int(make_scheduler(1).timesteps[0])])
    cum = _uvit_alphas_cumprod()
    n = int(np.argmin(np.abs(cum - level)))
    assert abs(cum[n] - level) < 1e-5 * level and n == 1000  # diffusers keeps float32
    assert len(calls) == 1 and calls[0].tolist() == [n, n]  # conditional and unconditional halves

    # U-ViT's guidance, two separate calls: eps = cond + s * (cond - uncond), the
    # unconditional call given the CLIP tokens of the empty caption.
    x = sampler.initial_noise([seed])
    t = torch.full((1,), float(n))
    with torch.no_grad():
        cond = network(x, t, sampler.text_encoder.encode([prompt]))
        uncond = network(x, t, sampler.text_encoder.encode([""]))
    eps = cond + scale * (cond - uncond)
    # DPM-Solver++'s data prediction at that level, x0 = (x - sigma eps) / alpha, which
    # a one-step solve to zero noise returns.
    alpha, sigma = cum[n] ** 0.5, (1 - cum[n]) ** 0.5
    x0 = (x.double() - sigma * eps.double()) / alpha
    # The sampler's float32 eps (one batch of both halves) and these two calls differ in the
    # last bits; x0 carries that difference times sigma / alpha (about 15 here), so the
    # tolerance is 1e-4 in units of eps (a flat 1e-4 on x0 failed on a few entries near 0).
    tolerance = 1e-4 * sigma / alpha
    assert torch.allclose(z.double(), x0, rtol=1e-4, atol=tolerance)
    # The same with our training convention's input (n - 1) differs: the test can tell.
    with torch.no_grad():
        c, u = (network(x, t - 1, sampler.text_encoder.encode([p])) for p in (prompt, ""))
    off_by_one = (x.double() - sigma * (c + scale * (c - u)).double()) / alpha
    assert not torch.allclose(z.double(), off_by_one, rtol=1e-4, atol=tolerance)


def test_a_missing_weights_file_says_where_to_get_it_and_writes_nothing(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["import-uvit", str(tmp_path / "mscoco_uvit_small.pth"), "--out", str(tmp_path / "out")])
    message = str(exit_.value.code)
    assert "no U-ViT weights at" in message and "github.com/baofff/U-ViT" in message
    assert not (tmp_path / "out").exists()
