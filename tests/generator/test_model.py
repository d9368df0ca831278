"""The IF-U-ViT model: paper numbers, wiring of skips and fusion, capture, training signal."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from generator import profile
from generator.attention import TEXT_BORDER, capture_attention, collect_attention, plot_attention
from generator.model import PAPER_VARIANTS, PRESETS, UViT, UViTConfig, build_model

TINY = [n for n in PRESETS if n.startswith("tiny-")]
UVIT_S = [n for n in PRESETS if n.startswith("uvit-s-") and n != "uvit-s-deep-concat-early"]  # the paper's
EARLY_PARAMS, INTERMEDIATE_PARAMS = 44_692_644, 47_843_492
DEEP_PARAMS = 58_345_636  # U-ViT-S/2 Deep: 4 more blocks (3,150,848 each) and 2 more skips (524,800 each)


def inputs(cfg: UViTConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    ctx = torch.randn(batch, cfg.text_len, cfg.text_dim, generator=g)
    return x, t, ctx


def tiny(name: str, seed: int = 0) -> UViT:
    torch.manual_seed(seed)
    return build_model(name).eval()


def block_outputs(model: UViT, x, t, ctx) -> dict[str, torch.Tensor]:
    """Output of every U-ViT block and text block in one forward call."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    named = [(n, b) for n, b, _ in model.named_blocks()] + [(f"text.{i}", b) for i, b in enumerate(model.text_blocks)]
    for name, blk in named:
        handles.append(blk.register_forward_hook(lambda m, a, out, name=name: seen.__setitem__(name, out.detach())))
    with torch.no_grad():
        model(x, t, ctx)
    for h in handles:
        h.remove()
    return seen


# ----------------------------------------------------------------- paper numbers


@pytest.mark.parametrize("name", UVIT_S)
def test_paper_presets_have_exact_parameter_counts_and_shapes(name):
    """Built and run on the meta device: shapes propagate, nothing is computed (the
    real batch-1 forward of the paper variants runs under ptflops in the next test)."""
    cfg = PRESETS[name]
    with torch.device("meta"):
        model = build_model(name)
        x, t, ctx = (v.to("meta") for v in inputs(cfg, batch=1))
        assert model(x, t, ctx).shape == (1, 4, 32, 32)
    expected = INTERMEDIATE_PARAMS if cfg.n_text else EARLY_PARAMS
    assert profile.count_params(model) == expected


def test_uvit_s_deep_is_uvit_s_with_its_depth_16():
    """U-ViT's depth counts in- and out-blocks (16: 8 + 8) and adds the mid block; ours counts all 17."""
    cfg = PRESETS["uvit-s-deep-concat-early"]
    assert (cfg.depth, cfg.n_joint) == (17, 8)
    assert dataclasses.replace(cfg, depth=13) == PRESETS["uvit-s-concat-early"]
    with torch.device("meta"):
        model = build_model(cfg)
        x, t, ctx = (v.to("meta") for v in inputs(cfg, batch=1))
        assert model(x, t, ctx).shape == (1, 4, 32, 32)
    assert len(model.in_blocks) == len(model.out_blocks) == 8
    assert profile.count_params(model) == DEEP_PARAMS == EARLY_PARAMS + 4 * 3_150_848 + 2 * 524_800


def test_profile_json_matches_paper_table1(capsys):
    profile.main(profile.parse_args(["--json"]))
    out = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in out["variants"]}
    assert list(rows) == list(PAPER_VARIANTS)
    for name, row in rows.items():
        cfg = PRESETS[name]
        assert row["params"] == (INTERMEDIATE_PARAMS if cfg.n_text else EARLY_PARAMS)
        assert abs(row["gflops_paper_method"] - profile.PAPER_TABLE1[name]["gflops"]) < 0.05, name
        attn = row["gflops_with_attention"] - row["gflops_paper_method"]
        assert attn == pytest.approx(2 * profile.attention_macs(cfg) / 1e9)
    # The baseline's attention: 13 blocks of QK^T and AV over 334 tokens, D = 512.
    assert profile.attention_macs(PRESETS["uvit-s-concat-early"]) == 13 * 2 * 334 * 334 * 512


def test_attention_macs_follow_the_sequence_lengths():
    cfg = PRESETS["uvit-s-cross-intermediate"]
    D, T, N = 512, 77, 256
    # 1 text block, 8 image-only blocks, 5 cross blocks (257 queries x 334 keys).
    assert profile.attention_macs(cfg) == 2 * D * (T * T + 8 * (1 + N) ** 2 + 5 * (1 + N) * (1 + N + T))


# ------------------------------------------------------------------ tiny presets


@pytest.mark.parametrize("name", TINY)
def test_tiny_presets_map_images_to_same_shape_noise(name):
    cfg = PRESETS[name]
    assert (cfg.in_chans, cfg.img_size, cfg.text_dim) == (3, 32, 384)
    model = tiny(name)
    x, t, ctx = inputs(cfg)
    with torch.no_grad():
        eps_int = model(x, t, ctx)
        eps_float = model(x, t.float(), ctx)
    assert eps_int.shape == x.shape
    assert torch.isfinite(eps_int).all()
    torch.testing.assert_close(eps_int, eps_float)


def test_bf16_autocast_runs_on_cpu():
    model = tiny("tiny-cross-intermediate")
    x, t, ctx = inputs(model.cfg)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        eps = model(x, t, ctx)
    assert eps.shape == x.shape and torch.isfinite(eps.float()).all()


def test_forward_traces_as_one_graph_for_torch_compile():
    """fullgraph=True fails on any graph break; the eager backend skips code generation,
    so this checks traceability on a machine without a compiler toolchain."""
    model = tiny("tiny-cross-intermediate")
    x, t, ctx = inputs(model.cfg)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, ctx), model(x, t, ctx))


def test_presets_cover_the_paper_and_its_ablations():
    for cond in ("concat", "cross"):
        for name, n_text_image in (("intermediate", (1, 4)), ("ablation-n0-i4", (0, 4)), ("ablation-n1-i0", (1, 0))):
            cfg = PRESETS[f"uvit-s-{cond}-{name}"]
            assert (cfg.n_text, cfg.n_image) == n_text_image
        assert PRESETS[f"uvit-s-{cond}-early"].fusion == "early"
    for name in PAPER_VARIANTS:
        cond, fusion = name.split("-")[2:4]
        assert (PRESETS[name].conditioning, PRESETS[name].fusion) == (cond, fusion)


# ------------------------------------------------------------------------ wiring


@pytest.mark.parametrize("name", TINY)
def test_output_depends_on_every_block(name):
    model = tiny(name)
    x, t, ctx = inputs(model.cfg)
    with torch.no_grad():
        ref = model(x, t, ctx)
    blocks = [b for _, b, _ in model.named_blocks()] + list(model.text_blocks)
    for blk in blocks:
        # Random, not constant: a per-token constant shift would vanish in the final LayerNorm.
        h = blk.register_forward_hook(
            lambda m, a, out: out + 0.5 * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
        )
        with torch.no_grad():
            changed = (model(x, t, ctx) - ref).abs().max().item()
        h.remove()
        assert changed > 1e-4


@pytest.mark.parametrize("name", TINY)
def test_long_skips_join_mirrored_blocks(name):
    """out.j receives the output of in.(k-1-j), with the joint sequence in the joint part."""
    model = tiny(name)
    cfg = model.cfg
    x, t, ctx = inputs(model.cfg)
    outs = block_outputs(model, x, t, ctx)
    skips: dict[int, torch.Tensor] = {}
    handles = []
    for j, blk in enumerate(model.out_blocks):
        handles.append(blk.register_forward_pre_hook(
            lambda m, args, j=j: skips.__setitem__(j, args[1].detach())))
    with torch.no_grad():
        model(x, t, ctx)
    for h in handles:
        h.remove()
    k = cfg.depth // 2
    joint_len = 1 + cfg.num_patches + (cfg.text_len if cfg.conditioning == "concat" else 0)
    for j in range(k):
        torch.testing.assert_close(skips[j], outs[f"in.{k - 1 - j}"], rtol=0, atol=0)
        expected_len = joint_len if j < cfg.n_joint else 1 + cfg.num_patches
        assert skips[j].shape[1] == expected_len


@pytest.mark.parametrize("name", ["tiny-concat-intermediate", "tiny-cross-intermediate"])
def test_image_only_blocks_do_not_see_the_text(name):
    model = tiny(name)
    cfg = model.cfg
    x, t, ctx = inputs(cfg)
    other = torch.randn_like(ctx)
    a, b = block_outputs(model, x, t, ctx), block_outputs(model, x, t, other)
    for i in range(cfg.n_image):
        torch.testing.assert_close(a[f"in.{i}"], b[f"in.{i}"], rtol=0, atol=0)
    # The first joint block and everything after it do see the text.
    for name_ in [f"in.{cfg.n_image}", "mid", f"out.{cfg.depth // 2 - 1}"]:
        assert (a[name_] - b[name_]).abs().max() > 1e-4
    # Image-only out-blocks run on the image stream alone.
    for name_, _, role in model.named_blocks():
        if role == "image":
            assert a[name_].shape[1] == 1 + cfg.num_patches


def test_early_fusion_sees_the_text_from_the_first_block():
    model = tiny("tiny-concat-early")
    x, t, ctx = inputs(model.cfg)
    a, b = block_outputs(model, x, t, ctx), block_outputs(model, x, t, torch.randn_like(ctx))
    assert (a["in.0"] - b["in.0"]).abs().max() > 1e-4


@pytest.mark.parametrize("name", TINY)
def test_text_changes_the_prediction(name):
    model = tiny(name)
    x, t, ctx = inputs(model.cfg)
    with torch.no_grad():
        assert (model(x, t, ctx) - model(x, t, torch.randn_like(ctx))).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["tiny-cross-early", "tiny-cross-intermediate"])
def test_cross_attention_blocks_share_one_unchanged_text(name):
    """Cross blocks attend to the same text tensor; the blocks never update it."""
    model = tiny(name)
    seen, handles = [], []
    for _, blk, role in model.named_blocks():
        if role == "cross":
            handles.append(blk.register_forward_pre_hook(
                lambda m, args, kwargs: seen.append(kwargs["context"]), with_kwargs=True))
    with torch.no_grad():
        model(*inputs(model.cfg))
    for h in handles:
        h.remove()
    assert len(seen) == 2 * model.cfg.n_joint + 1
    assert all(s is seen[0] for s in seen)
    # The cross projections have exactly the self-attention parameters: q D->D, kv D->2D.
    D = model.cfg.embed_dim
    attn = model.mid_block.attn
    assert attn.q.weight.shape == (D, D) and attn.kv.weight.shape == (2 * D, D)


def test_cross_and_concat_have_equal_parameter_counts():
    for fusion in ("early", "intermediate"):
        a, b = tiny(f"tiny-concat-{fusion}"), tiny(f"tiny-cross-{fusion}")
        assert profile.count_params(a) == profile.count_params(b)


# ------------------------------------------------------------ config, determinism


@pytest.mark.parametrize("name", list(PRESETS))
def test_config_round_trips_through_json(name):
    cfg = PRESETS[name]
    assert UViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_rejects_unknown_fields_and_inconsistent_fusion():
    with pytest.raises(ValueError):
        UViTConfig.from_dict({**UViTConfig().to_dict(), "dropout": 0.1})
    with pytest.raises(ValueError):
        UViTConfig(fusion="intermediate", n_image=0)
    with pytest.raises(ValueError):
        UViTConfig(fusion="early", n_image=2)
    with pytest.raises(ValueError):
        UViTConfig(conditioning="add")
    with pytest.raises(ValueError):
        UViTConfig(depth=12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny-concat-early"].depth = 3  # type: ignore[misc]  # the refused write is the test


def test_same_seed_same_weights_and_outputs():
    a, b = tiny("tiny-cross-intermediate", seed=3), tiny("tiny-cross-intermediate", seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    x, t, ctx = inputs(a.cfg)
    with torch.no_grad():
        assert torch.equal(a(x, t, ctx), b(x, t, ctx))
    c = tiny("tiny-cross-intermediate", seed=4)
    assert not torch.equal(a.pos_embed, c.pos_embed)


# ------------------------------------------------------------- attention capture


def test_attention_capture_shapes_and_singular_values():
    model = tiny("tiny-concat-intermediate")
    cfg = model.cfg
    N, T = cfg.num_patches, cfg.text_len
    x, t, ctx = inputs(cfg)
    with torch.no_grad():
        ref = model(x, t, ctx)
        with capture_attention(model) as maps:
            captured = model(x, t, ctx)
    torch.testing.assert_close(captured, ref, rtol=1e-4, atol=1e-5)  # explicit weights == SDPA
    assert all(b.attn.record is None for _, b, _ in model.named_blocks())  # capture is switched off
    assert maps.layers == [n for n, _, _ in model.named_blocks()] and maps.calls == 1
    for name in maps.layers:
        torch.testing.assert_close(maps.mean(name).sum(-1), torch.ones(maps.mean(name).shape[0]))
    ii, ti = maps.image_to_image(), maps.text_to_image()
    assert all(v.shape == (N, N) for v in ii.values())
    assert set(ti) == {n for n, _, r in model.named_blocks() if r != "image"}
    kept = T - sum(TEXT_BORDER)
    assert all(v.shape == (N, kept) for v in ti.values())
    assert maps.image_to_image(drop_border=False)["in.0"].shape == (1 + N, 1 + N)
    assert maps.text_to_image(drop_border=False)["mid"].shape == (1 + N, T)
    for name, s in maps.singular_values().items():
        assert s.shape == (min(N, kept),)
        assert torch.all(s[:-1] >= s[1:] - 1e-6)
        assert (s**2).sum() == pytest.approx((ti[name] ** 2).sum().item(), rel=1e-4)


def test_cross_capture_finds_the_text_keys():
    model = tiny("tiny-cross-early")
    cfg = model.cfg
    x, t, ctx = inputs(cfg)
    with torch.no_grad(), capture_attention(model) as maps:
        model(x, t, ctx)
    full = maps.mean("mid")  # q = [time, patches], k = [time, patches, text]
    assert full.shape == (1 + cfg.num_patches, 1 + cfg.num_patches + cfg.text_len)
    torch.testing.assert_close(maps.text_to_image(drop_border=False)["mid"], full[:, 1 + cfg.num_patches:])


def test_capture_averages_over_forward_calls():
    model = tiny("tiny-cross-intermediate")
    x, t, ctx = inputs(model.cfg)
    singles = []
    for tt in (torch.full_like(t, 10), torch.full_like(t, 900)):
        with torch.no_grad(), capture_attention(model) as m:
            model(x, tt, ctx)
        singles.append(m.mean("mid"))
    with torch.no_grad(), capture_attention(model) as both:
        model(x, torch.full_like(t, 10), ctx)
        model(x, torch.full_like(t, 900), ctx)
    assert both.calls == 2
    torch.testing.assert_close(both.mean("mid"), (singles[0] + singles[1]) / 2)


def test_attention_figure_from_a_model(tmp_path):
    model = tiny("tiny-cross-intermediate")
    _, _, ctx = inputs(model.cfg)
    maps = collect_attention(model, ctx, timesteps=[50, 500])
    fig = plot_attention(maps, title="tiny")
    out = tmp_path / "fig.png"
    fig.savefig(out, dpi=40)
    assert out.stat().st_size > 1000
    # 7 layers x 2 map rows + the spectrum panel.
    assert len(fig.axes) == 2 * 7 + 1
    assert maps.calls == 2


def test_attention_maps_give_the_network_its_checkpoint_s_timestep_convention():
    model = tiny("tiny-cross-early")
    _, _, ctx = inputs(model.cfg)
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[1].tolist()))
    try:
        collect_attention(model, ctx, timesteps=[50, 500])
        collect_attention(model, ctx, timesteps=[50, 500], timestep_convention="uvit")
    finally:
        hook.remove()
    b = ctx.shape[0]
    assert seen == [[50] * b, [500] * b, [51] * b, [501] * b]  # U-ViT's network gets i + 1


def test_attention_cli_draws_a_checkpoint(tiny_checkpoint, tmp_path):
    from generator import attention

    out = tmp_path / "fig8.png"
    attention.main(attention.parse_args([
        "--checkpoint", str(tiny_checkpoint), "--out", str(out),
        "--prompt", "two blue squares", "--timesteps", "2", "--sample-steps", "2", "--dpi", "40",
    ]))
    assert out.stat().st_size > 1000


# ---------------------------------------------------------------------- training


def test_tiny_model_overfits_one_batch():
    """A fixed (x_t, t, text, eps) batch is memorised: the loss falls by 20x or more."""
    torch.manual_seed(0)
    model = build_model("tiny-cross-intermediate").train()
    x, t, ctx = inputs(model.cfg, batch=2, seed=1)
    target = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.0)
    losses = []
    for _ in range(80):
        loss = F.mse_loss(model(x, t, ctx), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])
