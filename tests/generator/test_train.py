import json

import pytest
import torch

from generator.checkpoint import TRAIN_STATE_FILE, WEIGHTS_FILE, load_ema, load_train_state, read_metadata
from generator.recipes import ALL_PRESETS, DEMO_PRESETS, PAPER, recipe_for
from generator.train import lr_at, main, parse_args, step_generator

FAST = ["--batch-size", "16", "--synthetic-n", "64", "--sample-steps", "2", "--threads", "1", "--no-progress"]


@pytest.fixture
def run(tmp_path, tiny_cfg):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_cfg.to_dict()))

    def train(out, steps, *extra):
        argv = ["--preset", "demo-cross-intermediate", "--config", str(config), "--out", str(out), "--steps", str(steps)]
        return main(parse_args([*argv, *FAST, *extra]))

    return train


def test_paper_presets_train_with_the_paper_recipe():
    assert recipe_for("uvit-s-cross-intermediate") == PAPER
    assert PAPER.lr == 2e-4 and PAPER.weight_decay == 0.03 and PAPER.adam_betas == (0.9, 0.9)
    assert PAPER.batch_size == 256 and PAPER.warmup == 5000 and PAPER.p_uncond == 0.1
    args = parse_args(["--preset", "uvit-s-concat-early", "--out", "x"])
    assert (args.lr, args.batch_size, args.ema_decay, args.seed) == (2e-4, 256, 0.9999, 1234)
    assert set(DEMO_PRESETS) <= set(ALL_PRESETS)


def test_warmup_is_linear_then_constant():
    assert lr_at(0, 1e-3, 100) == pytest.approx(1e-5)
    assert lr_at(99, 1e-3, 100) == lr_at(5000, 1e-3, 100) == 1e-3


def test_step_generators_depend_on_seed_step_and_process():
    draw = lambda *a: torch.rand(3, generator=step_generator(*a))
    assert torch.equal(draw(1, 5, 0), draw(1, 5, 0))
    assert not torch.equal(draw(1, 5, 0), draw(1, 6, 0))
    assert not torch.equal(draw(1, 5, 0), draw(1, 5, 1))


def test_a_short_run_lowers_the_loss(tmp_path, run, tiny_cfg):
    out = tmp_path / "run"
    run(out, 60, "--log-every", "10", "--warmup", "10", "--lr", "3e-3", "--sample-every", "60")
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    assert (out / "samples" / "step-0000060.png").is_file()
    meta = read_metadata(out)
    assert meta["step"] == 60 and meta["config"] == tiny_cfg and meta["name"] == "tiny"
    assert meta["codec"]["name"] == "pixel" and meta["text_encoder"] == {"name": "minilm", "text_len": 8, "dim": 384}


def test_resume_takes_the_same_next_step(tmp_path, run):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(straight, 3, "--sample-every", "0")
    run(resumed, 2, "--sample-every", "0")
    assert load_train_state(resumed)["step"] == 2
    run(resumed, 3, "--sample-every", "0")  # same folder: picks up at step 2

    for name in (WEIGHTS_FILE,):
        a, b = load_ema(straight / name)[0], load_ema(resumed / name)[0]
        assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = load_train_state(straight), load_train_state(resumed)
    assert sa["step"] == sb["step"] == 3
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    exp_a = [s["exp_avg"] for s in sa["optimizer"]["state"].values()]
    exp_b = [s["exp_avg"] for s in sb["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(exp_a, exp_b))
    assert (resumed / TRAIN_STATE_FILE).is_file()


def test_demo_export_is_float16_sampling_weights_with_the_log(tmp_path, run):
    from safetensors import safe_open

    from generator.train_demo import export

    run(tmp_path / "run", 2, "--sample-every", "0", "--prediction-type", "v_prediction")
    file = export(tmp_path / "run", tmp_path / "fixture")
    with safe_open(str(file), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    meta = read_metadata(file)
    assert meta["step"] == 2 and meta["prediction_type"] == "v_prediction"
    assert (tmp_path / "fixture" / "log.jsonl").read_text() == (tmp_path / "run" / "log.jsonl").read_text()
    assert not (tmp_path / "fixture" / TRAIN_STATE_FILE).exists()


def test_sincos_position_codes_make_neighbours_alike(tiny_cfg):
    from generator.model import UViT
    from generator.train import init_pos_embed_sincos, sincos_2d

    codes = sincos_2d(8, 96)  # (64, 96), raster order
    assert codes.shape == (64, 96)
    dist = lambda i, j: (codes[i] - codes[j]).norm()
    assert dist(0, 1) < dist(0, 3) < dist(0, 7) and dist(0, 8) < dist(0, 24)
    model = UViT(tiny_cfg)
    before = model.pos_embed.detach().clone()
    init_pos_embed_sincos(model)
    grid = tiny_cfg.img_size // tiny_cfg.patch_size
    assert torch.equal(model.pos_embed[0, -tiny_cfg.num_patches :], sincos_2d(grid, tiny_cfg.embed_dim))
    assert torch.equal(model.pos_embed[0, : 1 + tiny_cfg.text_len], before[0, : 1 + tiny_cfg.text_len])


def test_training_time_sums_resumed_segments(tmp_path):
    from generator.train_demo import training_seconds

    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "elapsed_s": e}) for s, e in [(50, 10.0), (100, 20.0), (150, 5.0), (200, 12.5)]))
    assert training_seconds(log) == 32.5
