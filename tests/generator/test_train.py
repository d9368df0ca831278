import functools
import itertools
import json
import os
import random
import shutil

import pytest
import torch

import generator.checkpoint
import generator.train
from generator.checkpoint import (
    TRAIN_STATE_DIR,
    latest_train_state,
    load_ema,
    read_metadata,
)
from generator.recipes import ALL_PRESETS, DEMO, DEMO_PRESETS, PAPER, recipe_for
from generator.train import lr_at, main, parse_args
from generator.train_batches import step_generator
from tests.narrow import present
from tests.slow import slow_unless_asked

FAST = [
    "--batch-size", "16", "--synthetic-n", "64", "--sample-steps", "2", "--threads", "1", "--no-progress",
    "--log-with", "none",
]


@pytest.fixture
def run(tmp_path, tiny_cfg):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_cfg.to_dict()))

    def train(out, steps, *extra):
        argv = [
            "--preset", "demo-cross-intermediate", "--config", str(config), "--out", str(out), "--steps", str(steps),
        ]
        return main(parse_args([*argv, *FAST, *extra]))

    return train


def test_paper_presets_train_with_the_paper_recipe():
    assert recipe_for("uvit-s-cross-intermediate") == PAPER
    assert PAPER.lr == 2e-4 and PAPER.weight_decay == 0.03 and PAPER.adam_betas == (0.9, 0.9)
    assert PAPER.batch_size == 256 and PAPER.warmup == 5000 and PAPER.p_uncond == 0.1
    args = parse_args(["--preset", "uvit-s-concat-early", "--out", "x"])
    assert (args.lr, args.batch_size, args.ema_decay, args.seed) == (2e-4, 256, 0.9999, 1234)
    assert set(DEMO_PRESETS) <= set(ALL_PRESETS)


def test_the_ema_ramp_is_a_recipe_field_off_for_the_paper_and_on_for_the_demo():
    assert not PAPER.ema_warmup and DEMO.ema_warmup
    assert not parse_args(["--preset", "uvit-s-concat-early", "--out", "x"]).ema_warmup
    assert parse_args(["--preset", "demo-concat-early", "--out", "x"]).ema_warmup
    assert not parse_args(["--preset", "demo-concat-early", "--out", "x", "--no-ema-warmup"]).ema_warmup
    assert parse_args(["--preset", "uvit-s-concat-early", "--out", "x", "--ema-warmup"]).ema_warmup


@pytest.mark.parametrize("preset, decays", [
    ("uvit-s-concat-early", [0.9999] * 3),  # U-ViT: the decay itself from the first step
    ("demo-concat-early", [1 / 10, 2 / 11, 3 / 12]),  # the ramp (1 + s) / (10 + s)
])
def test_the_ema_starts_as_the_initial_network_and_decays_per_the_recipe(tmp_path, tiny_cfg, monkeypatch, preset,
                                                                         decays):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_cfg.to_dict()))
    args = parse_args(["--preset", preset, "--config", str(config), "--out", str(tmp_path / "run"), "--steps", "3",
                       "--sample-every", "0", *FAST])
    initial = generator.train.initial_model(tiny_cfg, args).state_dict()
    seen: list[float] = []
    real_update = generator.train.ema_update

    def update(ema, model, decay):
        if not seen:  # the first update: the EMA is still the step-0 network
            assert all(torch.equal(v, initial[k]) for k, v in ema.state_dict().items())
        seen.append(decay)
        real_update(ema, model, decay)

    monkeypatch.setattr(generator.train, "ema_update", update)
    main(args)
    assert seen == pytest.approx(decays, rel=1e-12)


def test_warmup_is_linear_then_constant():
    assert lr_at(0, 1e-3, 100) == pytest.approx(1e-5)
    assert lr_at(99, 1e-3, 100) == lr_at(5000, 1e-3, 100) == 1e-3


def test_cooldown_decays_linearly_to_zero_over_the_last_steps():
    # 20 steps, the last 10 decaying: constant until step 10, then (20 - step) / 10 of it.
    assert [lr_at(s, 1.0, 1, 20, 10) for s in (0, 9, 10, 15, 19)] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.1])
    assert lr_at(15, 1.0, 1, 20, 0) == 1.0  # no cooldown: constant, as before


def test_the_recipe_cooldown_keeps_its_share_of_a_shorter_run():
    full = parse_args(["--preset", "demo-concat-early", "--out", "x"])
    short = parse_args(["--preset", "demo-concat-early", "--out", "x", "--steps", "100"])
    assert full.cooldown == DEMO.cooldown > 0 and full.steps == DEMO.steps
    assert short.cooldown == round(100 * DEMO.cooldown / DEMO.steps)


def test_cooldown_longer_than_the_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--preset", "demo-concat-early", "--out", "x", "--steps", "100", "--cooldown", "101"])
    assert "--cooldown must be between 0 and --steps (100)" in capsys.readouterr().err


def test_step_generators_depend_on_seed_step_and_process():
    def draw(*a):
        return torch.rand(3, generator=step_generator(*a))

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
    assert meta.step == 60 and meta.config == tiny_cfg and meta.name == "tiny"
    assert meta.codec["name"] == "pixel" and meta.text_encoder == {
        "name": "minilm", "text_len": 8, "dim": 384, "attention_mask": True}


class Killed(BaseException):
    """Stands for SIGKILL: raised instead of one write (or step), so nothing after it runs.
    A BaseException, so that no `except Exception` on the way can swallow it."""


# Every way the run writes a checkpoint file or folder: accelerate's save_state (all of it
# torch.save, see save_train_state), renames into place, deletions of old states, and the
# EMA sampling file. The training step counts as an event too, so kills land between
# saves as well as inside them.
_WRITES = [(torch, "save"), (os, "rename"), (os, "replace"), (shutil, "rmtree"), (generator.checkpoint, "save_file")]


def _count_events(monkeypatch, kill_at: int | None = None) -> list[str]:
    """Wrap every write and step; raise Killed instead of event number `kill_at` (1-based)."""
    events: list[str] = []

    def wrap(fn, label):
        @functools.wraps(fn)
        def inner(*a, **k):
            events.append(label)
            if len(events) == kill_at:
                raise Killed(label)
            return fn(*a, **k)

        return inner

    for owner, attr in _WRITES:
        monkeypatch.setattr(owner, attr, wrap(getattr(owner, attr), attr))
    monkeypatch.setattr(generator.train, "ema_update", wrap(generator.train.ema_update, "step"))
    return events


def _load(state, name):
    """One file of a train-state folder, on the CPU."""
    return torch.load(state / name, map_location="cpu", weights_only=True)


def _final_state(out):
    """(EMA sampling weights, online weights, AdamW state, EMA in the train state, losses)."""
    state = latest_train_state(out)
    losses = [(r["step"], r["loss"], r["lr"]) for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())]
    return (load_ema(out)[0], _load(state, "pytorch_model.bin"), _load(state, "optimizer.bin"),
            _load(state, "custom_checkpoint_0.pkl"), losses)


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.fixture
def quick_run(run, monkeypatch):
    """`run` with the synthetic data built once (it is the same every time) and a save
    every 2 steps and a log line every 3, so a save falls inside a log window; 5 steps, so
    the last save is off the grid."""
    original = generator.train.build_source
    built: list = []

    def build_once(args, cfg, spec):
        if not built:
            built.append(original(args, cfg, spec))
        return built[0]

    monkeypatch.setattr(generator.train, "build_source", build_once)
    return lambda out, *extra: run(out, 5, "--sample-every", "0", "--ckpt-every", "2", "--log-every", "3", *extra)


def test_a_run_killed_at_any_write_or_step_resumes_exactly(tmp_path, quick_run, monkeypatch):
    with monkeypatch.context() as m:
        events = _count_events(m)
        quick_run(tmp_path / "straight")
    reference = _final_state(tmp_path / "straight")
    assert events.count("step") == 5 and events.count("rename") == 3  # saves at steps 2, 4 and 5
    # Every point: before each write and each step of the whole run.
    for kill_at in range(1, len(events) + 1):
        out = tmp_path / f"killed-{kill_at}"
        with monkeypatch.context() as m:
            _count_events(m, kill_at)
            with pytest.raises(Killed):
                quick_run(out)
        quick_run(out)  # the same command again resumes
        _assert_same(_final_state(out), reference)
        assert [d.name for d in (out / TRAIN_STATE_DIR).iterdir() if not d.name.startswith(".")] == ["step-0000005"]


def test_a_run_killed_repeatedly_at_random_points_resumes_exactly(tmp_path, quick_run, monkeypatch):
    quick_run(tmp_path / "straight")
    reference = _final_state(tmp_path / "straight")
    rng = random.Random(13)
    out = tmp_path / "killed"
    for _ in range(3):  # each kill early in what the resumed run has left to do
        with monkeypatch.context() as m:
            _count_events(m, rng.randint(1, 12))
            try:
                quick_run(out)
            except Killed:
                pass
    quick_run(out)
    _assert_same(_final_state(out), reference)


def test_a_run_folder_of_the_old_format_is_refused_and_left_alone(tmp_path, run):
    """A train_state.pt from before train_state/ is not resumed, nor trained over from step 0."""
    out = tmp_path / "old"
    out.mkdir()
    (out / generator.checkpoint.LEGACY_TRAIN_STATE_FILE).write_bytes(b"an old run's state")
    with pytest.raises(SystemExit, match="from before train_state/"):
        run(out, 2)
    assert sorted(p.name for p in out.iterdir()) == [generator.checkpoint.LEGACY_TRAIN_STATE_FILE]


def test_a_run_folder_of_another_target_is_not_resumed(tmp_path, quick_run):
    quick_run(tmp_path / "run", "--steps", "2")
    with pytest.raises(SystemExit, match="different model config or target"):
        quick_run(tmp_path / "run", "--prediction-type", "epsilon")  # the demo recipe trains v
    assert present(latest_train_state(tmp_path / "run")).name == "step-0000002"


def test_the_logged_loss_is_the_mean_over_processes(tmp_path, tiny_cfg):
    """Two CPU processes (torchrun, gloo); the first log line is the mean of the two
    processes' step-0 losses, each computed here from its half of the batch."""
    import subprocess
    import sys
    from pathlib import Path

    from generator.diffusion import alphas_cumprod, diffusion_loss
    from generator.encoders import encoder_specs_for
    from generator.train import initial_model
    from generator.train_batches import build_source, step_batch

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_cfg.to_dict()))
    argv = [
        "--preset", "demo-cross-intermediate", "--config", str(config), "--out", str(tmp_path / "run"),
        "--steps", "1", "--log-every", "1", "--sample-every", "0", *FAST,
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "generator.train", *argv],
        check=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=300, capture_output=True,
    )
    logged = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])["loss"]

    args = parse_args(argv)
    source = build_source(args, tiny_cfg, encoder_specs_for(tiny_cfg)[1])[0]
    model = initial_model(tiny_cfg, args).train()
    losses = []
    for process in (0, 1):
        x0, ctx, g = step_batch(source, args, 0, process, args.batch_size // 2)
        with torch.no_grad():
            losses.append(diffusion_loss(model, x0, ctx, alphas_cumprod(), g, args.prediction_type).item())
    assert logged == pytest.approx((losses[0] + losses[1]) / 2, rel=1e-5)
    assert abs(losses[0] - losses[1]) > 1e-3  # so that the main process's loss alone would fail


def test_a_run_writes_tensorboard_events(tmp_path, run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run(out, 4, "--sample-every", "0", "--log-every", "2", "--log-with", "tensorboard")
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    expected = [(r["step"], r["loss"]) for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())]
    assert [s for s, _ in logged] == [2, 4]
    assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)
    run(tmp_path / "quiet", 2, "--sample-every", "0", "--log-with", "none")
    assert (tmp_path / "quiet" / "log.jsonl").is_file() and not (tmp_path / "quiet" / "tensorboard").exists()


def test_tensorboard_shows_a_resumed_run_once(tmp_path, run, monkeypatch):
    """Killed after logging steps 1-3 (saved at 2), resumed: steps 3 and 4 are logged again,
    and TensorBoard, like log.jsonl, shows each step once, with the resumed values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    flags = ("--sample-every", "0", "--log-every", "1", "--ckpt-every", "2", "--log-with", "tensorboard")
    original = generator.train.ema_update
    steps: list = []

    def die_in_step_4(*a):
        steps.append(len(steps) + 1)
        if steps[-1] == 4:
            raise Killed
        return original(*a)

    with monkeypatch.context() as m:
        m.setattr(generator.train, "ema_update", die_in_step_4)
        with pytest.raises(Killed):
            run(out, 4, *flags)
    run(out, 4, *flags)
    logged = [(e.step, e.value) for e in EventAccumulator(str(out / "tensorboard")).Reload().Scalars("train/loss")]
    expected = [(r["step"], r["loss"]) for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())]
    assert [s for s, _ in logged] == [s for s, _ in expected] == [1, 2, 3, 4]
    assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_demo_export_is_float16_sampling_weights_with_the_log(tmp_path, run):
    from safetensors import safe_open

    from generator.train_demo import export

    run(tmp_path / "run", 2, "--sample-every", "0", "--prediction-type", "v_prediction")
    file = export(tmp_path / "run", tmp_path / "fixture")
    with safe_open(str(file), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    meta = read_metadata(file)
    assert meta.step == 2 and meta.prediction_type == "v_prediction"
    assert (tmp_path / "fixture" / "log.jsonl").read_text() == (tmp_path / "run" / "log.jsonl").read_text()
    assert not (tmp_path / "fixture" / TRAIN_STATE_DIR).exists()


def test_sincos_position_codes_make_neighbours_alike(tiny_cfg):
    from generator.model import UViT
    from generator.train import init_pos_embed_sincos, sincos_2d

    codes = sincos_2d(8, 96)  # (64, 96), raster order
    assert codes.shape == (64, 96)
    def dist(i, j):
        return (codes[i] - codes[j]).norm()

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
    records = [(50, 10.0), (100, 20.0), (150, 5.0), (200, 12.5)]
    log.write_text("\n".join(json.dumps({"step": s, "elapsed_s": e}) for s, e in records))
    assert training_seconds(log) == 32.5


def test_resuming_with_another_schedule_is_refused_unless_asked(tmp_path, quick_run):
    """Stop at 4 of 5 steps and rerun with --steps 8: the cooldown (the recipe's share of
    --steps) would move under the steps already taken. Refused; allowed with the flag."""
    out = tmp_path / "run"
    quick_run(out, "--steps", "4")
    for change in (["--steps", "8"], ["--batch-size", "8"], ["--cooldown", "0"]):
        with pytest.raises(SystemExit, match="another schedule"):
            quick_run(out, *change)
    assert present(latest_train_state(out)).name == "step-0000004"
    quick_run(out, "--steps", "8", "--allow-schedule-change")
    latest = latest_train_state(out)
    assert latest is not None and latest.name == "step-0000008"
    assert generator.checkpoint.read_train_state_info(latest)["schedule"]["steps"] == 8


def test_processes_that_found_different_train_states_refuse_to_start(tmp_path, run, tiny_cfg):
    """Two real processes (torch.distributed, gloo on the CPU), one finding a train state at
    step 2 and one finding none (a node that does not see OUT): both stop, with the
    message, instead of the second waiting forever at its first all-reduce."""
    import socket
    import subprocess
    import sys

    seen, unseen = tmp_path / "seen", tmp_path / "unseen"
    run(seen, 2)
    assert present(latest_train_state(seen)).name == "step-0000002"
    config = tmp_path / "tiny.json"  # written by the run fixture
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank, out in enumerate((seen, unseen)):
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "OMP_NUM_THREADS": "1"}
        # --steps 4 (the saved state's schedule was 2 steps'): process 0 would resume at step 2, process 1
        # start at 0, and the two would meet at different all-reduces.
        argv = [sys.executable, "-m", "generator.train", "--preset", "demo-cross-intermediate", "--config",
                str(config), "--out", str(out), "--steps", "4", "--allow-schedule-change", "--sample-every", "0",
                "--workers", "0", *FAST]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [p.communicate(timeout=120) for p in procs]  # a hang would end here, failing the test
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode != 0, err
        assert "the processes found different train states" in err and "[2, 0]" in err, err
    assert present(latest_train_state(seen)).name == "step-0000002" and latest_train_state(unseen) is None


def test_the_step_loader_gives_each_step_its_own_batch_and_generator(run, tiny_cfg):
    """Batches prepared by DataLoader workers equal the loop's own draws: the same x0 and
    context, and a generator in the same state (it then draws the step's t and noise)."""
    from generator.encoders import encoder_specs_for
    from generator.train_batches import build_source, step_batch, step_loader

    args = parse_args(["--preset", "demo-cross-intermediate", "--out", "x", "--steps", "6", "--workers", "2",
                       "--prefetch", "2", "--synthetic-n", "64"])
    source = build_source(args, tiny_cfg, encoder_specs_for(tiny_cfg)[1])[0]
    loaded = list(step_loader(source, args, 2, 1, 4, pin_memory=False))
    assert len(loaded) == 4
    for step, (x0, ctx, state) in enumerate(loaded, start=2):
        want_x0, want_ctx, g = step_batch(source, args, step, 1, 4)
        assert torch.equal(x0, want_x0) and torch.equal(ctx, want_ctx)
        assert torch.equal(torch.rand(3, generator=torch.Generator().set_state(state)), torch.rand(3, generator=g))


def test_the_loss_is_read_back_once_per_log_line(tmp_path, run, monkeypatch):
    """No all-reduce and host sync of the loss per step: between two steps' EMA updates
    the loss is reduced across processes only after a step that writes a log line (4, 8;
    the run ends at 12). AdamW's own CPU step counter is not a device sync."""
    from accelerate import Accelerator

    calls, marks = [], []
    original_reduce, original_ema = Accelerator.reduce, generator.train.ema_update

    def counting_reduce(self, *a, **k):
        calls.append(1)
        return original_reduce(self, *a, **k)

    def marking_ema(*a):
        marks.append(len(calls))
        return original_ema(*a)

    monkeypatch.setattr(Accelerator, "reduce", counting_reduce)
    monkeypatch.setattr(generator.train, "ema_update", marking_ema)
    run(tmp_path / "run", 12, "--sample-every", "0", "--log-every", "4", "--ckpt-every", "6")
    reads = [step for step, (a, b) in enumerate(itertools.pairwise(marks), start=1) if b > a]
    assert reads == [4, 6, 8]  # log lines at 4 and 8, a save at 6 (its counters hold the window so far)
    assert len(calls) == 4  # and the last step's


@slow_unless_asked("torch.compile on the CPU takes minutes")
def test_compiled_steps_train_the_same_model(tmp_path, run):
    """--compile changes how the steps run, not what they compute (up to float rounding)."""
    flags = ("--sample-every", "0", "--log-every", "2")
    run(tmp_path / "eager", 4, *flags)
    run(tmp_path / "compiled", 4, *flags, "--compile")
    eager, compiled = (_final_state(tmp_path / name) for name in ("eager", "compiled"))
    assert [s for s, _, _ in compiled[4]] == [2, 4]
    assert [loss for _, loss, _ in compiled[4]] == pytest.approx([loss for _, loss, _ in eager[4]], rel=1e-3)
    for key, value in eager[1].items():
        assert torch.allclose(compiled[1][key], value, atol=1e-4), key
