import json
import shutil

import numpy as np
import pytest

from generator import count_eval
from generator.count_eval import Judged, intervals, judge_images, metrics, paired_difference, summarise
from generator.synthetic import KINDS, Scene, make_item

VARIANT_KEYS = {"variant", "exact_match", "mean_abs_error", "shape_accuracy", "prompt_match", "n"}


def judged(target, count, shape_ok, match) -> Judged:
    return Judged(*(np.asarray(v, dtype=np.int64) for v in (target, count, shape_ok, match)))


def test_prompts_cover_every_kind_and_count_with_shared_seeds():
    scenes, seeds = count_eval.eval_prompts(per_count=4, seed=10)
    assert len(scenes) == len(KINDS) * 5 * 4
    assert {(s.kind, s.count) for s in scenes} == {(k, n) for k in KINDS for n in range(1, 6)}
    assert seeds[:4] == seeds[4:8] == [10, 11, 12, 13]


def test_metrics_read_the_judge_on_rendered_images():
    # Rendered images are what the prompts ask for; a wrong prompt for one of them
    # lowers each metric by what that image gets wrong.
    scenes = [Scene("circle", "red", 2), Scene("square", "blue", 3), Scene("triangle", "green", 1)]
    images = [make_item(0, i, 32, s)[0] for i, s in enumerate(scenes)]
    right = metrics([judge_images(scenes, images)])
    assert right == {"exact_match": 1.0, "mean_abs_error": 0.0, "shape_accuracy": 1.0, "prompt_match": 1.0}
    wrong = metrics([judge_images([scenes[0], scenes[1], Scene("circle", "green", 3)], images)])
    assert wrong["exact_match"] == pytest.approx(2 / 3) and wrong["mean_abs_error"] == pytest.approx(2 / 3)
    assert wrong["shape_accuracy"] == pytest.approx(5 / 6) and wrong["prompt_match"] == pytest.approx(2 / 3)


def test_shape_accuracy_is_pooled_over_objects_and_zero_without_any():
    r = judged([2, 2], [4, 0], [1, 0], [0, 0])
    assert metrics([r])["shape_accuracy"] == 0.25
    assert metrics([judged([1], [0], [0], [0])])["shape_accuracy"] == 0.0


def test_intervals_include_the_spread_between_training_seeds():
    # Two seeds, one always right and one always wrong: resampling images alone would
    # give 0.5 every time; the t interval over the two seeds (1 df, t = 12.7) reaches far
    # past both. One seed: its images only.
    good, bad = judged([1] * 50, [1] * 50, [1] * 50, [1] * 50), judged([1] * 50, [2] * 50, [0] * 50, [0] * 50)
    ci = intervals([good, bad], n_boot=400)
    half = 12.706 * 0.5  # t(1) x (s.d. of 0 and 1) / sqrt(2)
    assert ci["exact_match"] == pytest.approx((0.5 - half, 0.5 + half), abs=1e-3)
    assert ci["mean_abs_error"] == pytest.approx((0.5 - half, 0.5 + half), abs=1e-3)
    one_seed = intervals([good], n_boot=100)
    assert one_seed["exact_match"] == (1.0, 1.0)


def test_the_output_says_what_its_intervals_are_over():
    rng = np.random.default_rng(6)
    runs = [judged(np.full(40, 3), c, c, (c == 3).astype(int)) for c in rng.integers(1, 6, size=(3, 40))]
    three = summarise(runs, n_boot=50)
    assert three.interval == "t over clusters" and three.df == 2 and three.seeds == 3
    one = summarise(runs[:1], n_boot=50)
    assert one.interval.startswith("units only") and one.df is None


def test_image_resampling_gives_an_interval_around_the_estimate():
    rng = np.random.default_rng(1)
    count = rng.integers(1, 6, size=300)
    r = judged(np.full(300, 3), count, count, (count == 3).astype(int))
    s = summarise([r], n_boot=300, variant="v")
    lo, hi = s.metrics["exact_match"].ci
    assert lo < s.metrics["exact_match"].estimate < hi and hi - lo < 0.2
    assert s.n == 300 and s.seeds == 1 and list(s.metrics) == list(count_eval.METRICS)
    line = s.to_json()  # the --json line: flat, the metrics in order, each with its interval
    assert list(line)[:3] == ["variant", "exact_match", "exact_match_ci"] and line["exact_match_ci"] == [lo, hi]


def test_paired_difference_of_identical_runs_is_exactly_zero():
    rng = np.random.default_rng(2)
    runs = [
        judged(np.full(80, 2), rng.integers(0, 5, 80), rng.integers(0, 3, 80), rng.integers(0, 2, 80))
        for _ in range(3)
    ]
    d = paired_difference(runs, runs, n_boot=200)
    for m in count_eval.METRICS:
        assert d[m] == count_eval.Estimate(0.0, (0.0, 0.0))


def test_paired_difference_sees_a_consistent_improvement():
    base = judged([2] * 100, [1] * 50 + [2] * 50, [1] * 100, [0] * 50 + [1] * 50)
    better = judged([2] * 100, [1] * 30 + [2] * 70, [1] * 100, [0] * 30 + [1] * 70)
    d = paired_difference([base, base], [better, better], n_boot=300)
    assert d["exact_match"].estimate == pytest.approx(0.2)
    # Both seeds identical: no spread between them, a zero-width interval at the estimate.
    assert d["exact_match"].ci == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError):
        paired_difference([base], [better, better])


def test_json_output_per_variant_and_difference(tiny_checkpoint, tmp_path, capsys):
    for name in ("concat-early", "concat-intermediate"):
        shutil.copytree(tiny_checkpoint, tmp_path / "ckpts" / name)
    argv = ["--checkpoints", str(tmp_path / "ckpts"), "--per-count", "1", "--steps", "2", "--json", "--n-boot", "50"]
    count_eval.main([*argv, "--save", str(tmp_path / "judged")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, diffs = lines[:2], lines[2:]
    assert [r["variant"] for r in rows] == ["concat-early", "concat-intermediate"]
    assert VARIANT_KEYS <= set(rows[0]) and rows[0]["n"] == len(KINDS) * 5 and rows[0]["seeds"] == 1
    assert rows[0] == {**rows[1], "variant": "concat-early"}  # same weights, same prompts and seeds
    assert diffs[0]["difference"] == "concat-intermediate - concat-early"
    assert diffs[0]["exact_match"] == {"estimate": 0.0, "ci": [0.0, 0.0]}
    # The saved judgements give the same table without sampling.
    count_eval.main(["--load", str(tmp_path / "judged"), "--json", "--n-boot", "50"])
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == lines


def test_runs_are_read_per_seed_and_at_a_given_step(tiny_checkpoint, tmp_path):
    for seed in (3, 11):
        run = tmp_path / f"seed-{seed}" / "cross-early"
        shutil.copytree(tiny_checkpoint, run)
        (run / "snapshots").mkdir()
        shutil.copyfile(run / "model.safetensors", run / "snapshots" / "step-0000500.safetensors")
    found = count_eval.find_runs(tmp_path)
    assert list(found) == ["seed-3", "seed-11"]
    assert found["seed-3"]["cross-early"] == tmp_path / "seed-3" / "cross-early"
    at = count_eval.find_runs(tmp_path, step=500)
    assert at["seed-11"]["cross-early"].name == "step-0000500.safetensors"
    with pytest.raises(SystemExit, match="step 1000"):
        count_eval.find_runs(tmp_path, step=1000)


def test_saved_judgements_are_reused_so_an_evaluation_resumes(tmp_path):
    n = len(KINDS) * 5 * 2
    saved = judged([2] * n, [2] * n, [2] * n, [1] * n)
    (tmp_path / "seed-1").mkdir()
    (tmp_path / "seed-1" / "cross-early.json").write_text(json.dumps(saved.to_json()))
    # The checkpoint does not exist: the saved judgements must be read, not resampled.
    sources = {"seed-1": {"cross-early": tmp_path / "no-such-checkpoint"}}
    out = count_eval.judge_all(sources, per_count=2, steps=2, cfg_scale=3.0, batch_size=10, save=tmp_path)
    assert metrics([out["seed-1"]["cross-early"]])["prompt_match"] == 1.0
    with pytest.raises(SystemExit, match="per-count 3"):
        count_eval.judge_all(sources, per_count=3, steps=2, cfg_scale=3.0, batch_size=10, save=tmp_path)


def test_the_cli_samples_as_the_demo_study_does(monkeypatch, tmp_path):
    """Without --cfg-scale and --steps the judge reads images sampled with the demo
    protocol's settings, the ones the study's images are made with."""
    from evalstudy.protocol import load_protocol

    seen: dict = {}

    def capture(sources, per_count, steps, cfg_scale, *rest, **kw):
        seen.update(steps=steps, cfg_scale=cfg_scale)
        raise SystemExit(0)

    monkeypatch.setattr(count_eval, "judge_all", capture)
    with pytest.raises(SystemExit):
        count_eval.main(["--checkpoint", str(tmp_path / "model.safetensors")])
    sampling = load_protocol(count_eval.DEMO_PROTOCOL).sampling
    assert seen == {"steps": sampling.steps, "cfg_scale": sampling.cfg_scale}
