"""bench/crowd_behaviours.py: its truths are the statistics `analyze` reports (the same sums,
"can't tell" and skips entering as the docs define), each behaviour shows in the answers,
and `--quick` prints a row per crowd and interval family."""
import argparse
import re

import numpy as np
import pytest

from bench import crowd_behaviours as cb
from evalstudy.analysis import analyze


def _crowd(name: str, n_raters: int = 12) -> cb.Crowd:
    return next(c for c in cb.CROWDS if c.name == name and c.n_raters == n_raters)


@pytest.mark.parametrize("name", ["plain", "skips", "anchoring"])
def test_a_studys_ratios_are_the_point_estimates_analyze_reports(name):
    study = cb.draw_study(_crowd(name), np.random.default_rng(3))
    assert np.isnan(study.c_answer).any() and np.isnan(study.r_ranks[:, 0]).any()
    res = analyze(cb.to_table(study), n_boot=50, seed=0)
    mine = cb.ratios(cb.study_sums(study))
    for v, variant in enumerate(cb.VARIANTS):
        count = next(r for r in res.count.by_variant if r.variant == variant)
        score = next(s for s in res.preference.by_variant if s.variant == variant)
        assert count.mean_abs_error == pytest.approx(mine["mean_abs_error"][v], abs=1e-12)
        assert count.match_ratio == pytest.approx(mine["match_ratio"][v], abs=1e-12)
        assert score.score == pytest.approx(mine["score"][v], abs=1e-12)
    assert {k for k, _ in cb.intervals(res)} == set(cb.FAMILIES)


def test_the_truth_is_a_paired_difference_of_variant_truths_with_a_small_monte_carlo_error():
    truth, se = cb.truths(_crowd("plain"), 300, np.random.default_rng(0))
    for key in cb.MEASURES:
        for a, b in cb.PAIRS:
            assert truth[(key, f"{a} - {b}")] == pytest.approx(truth[(key, a)] - truth[(key, b)])
    assert sum(truth[("score", v)] for v in cb.VARIANTS) == pytest.approx(10.0)
    assert 0 < se < 0.02


def _pooled(crowd: cb.Crowd, n: int = 40) -> list[cb.Study]:
    rng = np.random.default_rng(1)
    return [cb.draw_study(crowd, rng) for _ in range(n)]


def test_each_behaviour_shows_in_the_answers():
    def summed(name: str) -> dict[str, np.ndarray]:
        return cb.ratios(np.sum([cb.study_sums(s) for s in _pooled(_crowd(name))], axis=0))
    plain = summed("plain")
    assert (summed("anchoring")["match_ratio"] > plain["match_ratio"] + 0.03).all()
    assert (summed("fatigue")["mean_abs_error"] > plain["mean_abs_error"] + 0.1).all()
    assert summed("subgroup")["score"][0] > plain["score"][0] + 0.1

    # Informative skips: more "can't tell" on cross-early and on images showing a wrong count.
    skips = _pooled(_crowd("skips"))
    cant = np.concatenate([np.isnan(s.c_answer) for s in skips])
    variant = np.concatenate([s.c_variant for s in skips])
    assert cant[variant == 2].mean() > 1.5 * cant[variant != 2].mean()
    assert np.mean([np.isnan(s.r_ranks[:, 0]).mean() for s in skips]) > 0.1

    # Position: the first screen slot wins far more than a quarter of the rankings.
    pos = _pooled(_crowd("position"))
    first = np.concatenate([(s.r_ranks == 1) & (s.r_slots == 0) for s in pos])
    assert first.sum() / np.isfinite(np.concatenate([s.r_ranks for s in pos])[:, 0]).sum() > 0.4

    # Power users: a few raters give most answers (Kish's effective number well under n).
    for s in _pooled(_crowd("power users", 36), 10):
        load = np.bincount(s.c_rater, minlength=36)
        if load.max() > 3 * np.median(load):
            assert load.sum() ** 2 / (load ** 2).sum() < 30
            break
    else:
        pytest.fail("no study drew a power user")


def test_session_positions_run_from_first_to_last_for_every_rater():
    raters = np.array([0, 1, 0, 2, 0, 1])
    pos = cb._session_position(raters, 3, np.random.default_rng(0))
    assert sorted(pos[raters == 0]) == [0.0, 0.5, 1.0]
    assert sorted(pos[raters == 1]) == [0.0, 1.0]
    assert pos[raters == 2].tolist() == [0.0]


def test_quick_prints_a_row_per_crowd_family_and_resamples_and_a_summary(capsys):
    args = argparse.Namespace(studies=0, n_boot=0, more_n_boot=0, truth_studies=0, seed=0, only="p", quick=True,
                              write=False)
    text = cb.main(args)
    assert text == capsys.readouterr().out.rstrip("\n")
    lines = text.splitlines()
    assert lines[1].startswith("date: ") and lines[2].startswith("command: ") and lines[-1].startswith("run time: ")
    crowds = {"plain": (50, 100), "skips": (50,), "position": (50,), "power users": (50,), "subgroup": (50,)}
    rows = [line for line in lines if line[:13].strip() in crowds]
    assert len(rows) == len(cb.RATER_COUNTS) * len(cb.FAMILIES) * sum(len(b) for b in crowds.values())
    for line in rows:
        raters, n_boot, *numbers = re.findall(r"-?\d+\.\d+|\d+", line[13:])
        assert int(n_boot) in crowds[line[:13].strip()]
        n, cover, se, lo, hi, width, truth_se = (float(x) for x in numbers)
        assert n == 3 * (2 if "difference" in line else 4)
        assert 0 <= cover <= 1 and 0 <= lo + hi <= 1 - cover + 2e-3 and width > 0 and truth_se > 0
    summary = lines[lines.index("Over the crowds at 50 resamples:") + 2:][:len(cb.FAMILIES)]
    assert [line.split()[0] for line in summary] == [f.split()[0] for f in cb.FAMILIES]
    assert all(int(line[28:33]) == len(crowds) * len(cb.RATER_COUNTS) for line in summary)


def test_the_summary_names_the_rows_short_of_the_target():
    def row(cover: float, se: float) -> cb.Row:
        return cb.Row(cb.CROWDS[0], 300, "score", 1200, cover, se, 0.0, 1 - cover, 0.5, 0.001)
    (line,) = [x for x in cb.summary([row(0.95, 0.01), row(0.90, 0.01), row(0.91, 0.015)]) if x.startswith("score")]
    assert line.split()[1:6] == ["3", "0.900", "0.950", "0.920", "0.007"]
    assert line.endswith("plain 12") and line.count("plain") == 1
