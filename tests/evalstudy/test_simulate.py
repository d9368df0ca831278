"""The rater simulator: its closed forms against simulation, the study it writes, power."""

import numpy as np
import pytest

from evalstudy.analysis import analyze
from evalstudy.power import power_analysis
from evalstudy.responses import RESPONSE_COLUMNS
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol

Q = {"c-early": 0.5, "c-intermediate": 0.8}


def test_expected_count_matches_monte_carlo():
    sim = RaterSimulator(Q, count_noise=0.2, cant_tell_rate=0.05)
    rng = np.random.default_rng(0)
    n = 200_000
    for true in (1, 3):
        imgs = sim.draw_image_counts(np.full(n, true), ["c-early"] * n, rng)
        ans = sim._answers(imgs, np.full(n, 0.2), np.zeros(n, bool), 5, rng)
        ok = np.isfinite(ans)
        exp = sim.expected_count(true, "c-early")
        assert np.abs(ans[ok] - true).mean() == pytest.approx(exp["mean_abs_error"], abs=0.01)
        assert (ans == true).mean() == pytest.approx(exp["match_ratio"], abs=0.005)


def test_expected_scores_match_a_large_simulated_study():
    quality = {"a": 0.4, "b": 0.5, "c": 0.6, "d": 0.9}
    sim = RaterSimulator(quality, skip_rate=0.0, seed=2)
    proto = synthetic_protocol(list(quality), objects=(), n_captions=400, n_evaluators=40,
                               overlap=10)
    res = analyze(simulate_study(sim, proto), proto, n_boot=40)
    expected = sim.expected_scores()
    for rec in res.preference.by_variant:
        assert rec.score == pytest.approx(expected[rec.variant], abs=0.06)
    assert sum(expected.values()) == pytest.approx(1 + 2 + 3 + 4)


def test_single_answers_have_the_documented_types():
    sim = RaterSimulator(Q, skip_rate=0.5, cant_tell_rate=0.3)
    rng = np.random.default_rng(3)
    counts = [sim.answer_count(3, "c-early", rng) for _ in range(200)]
    assert None in counts and all(c is None or (isinstance(c, int) and c >= 0) for c in counts)
    ranks = [sim.answer_rank(["c-early", "c-intermediate"], rng) for _ in range(200)]
    assert None in ranks
    assert all(sorted(r) == [1, 2] for r in ranks if r is not None)
    assert isinstance(sim.skip_reason(rng), str)


def test_simulated_study_follows_the_protocol():
    proto = synthetic_protocol(list(Q), images_per_prompt=2, n_captions=6, n_evaluators=8,
                               overlap=2, gold=2, repeats=1)
    t = simulate_study(RaterSimulator(Q, seed=4), proto)
    assert list(t.columns) == list(RESPONSE_COLUMNS)
    count = (t["task"] == "count") & ~t["is_gold"] & (t["repeat_of"] == "")
    assert count.sum() == 3 * 5 * 2 * 2 * 2  # objects x counts x images x variants x overlap
    rank = (t["task"] == "rank") & (t["repeat_of"] == "")
    assert rank.sum() == 6 * 2 * 2
    assert t["is_gold"].sum() == 8 * 2
    assert (t["repeat_of"] != "").sum() >= 8  # one repeated item per evaluator
    again = simulate_study(RaterSimulator(Q, seed=4), proto)
    assert again.to_rows() == t.to_rows()


def test_bad_simulator_settings_are_refused():
    with pytest.raises(ValueError, match="quality"):
        RaterSimulator({"a": 1.5})
    with pytest.raises(ValueError, match="skip_rate"):
        RaterSimulator(Q, skip_rate=1.0)


def test_power_grows_with_evaluators_and_finds_a_large_effect():
    sim = RaterSimulator({"c-early": 0.3, "c-intermediate": 0.9}, seed=5)
    res = power_analysis(sim, "c-intermediate", "c-early", task="rank", evaluators=(3, 12),
                         items_per_evaluator=10, n_sims=20, seed=1)
    powers = [r.power for r in res.rows]
    assert powers[1] >= powers[0]
    assert res.required_evaluators in (3, 12)
    null = power_analysis(RaterSimulator({"c-early": 0.6, "c-intermediate": 0.6}, seed=5),
                          "c-intermediate", "c-early", task="count", evaluators=(6,),
                          items_per_evaluator=30, n_sims=20, seed=2)
    assert null.rows[0].power <= 0.25


@pytest.mark.parametrize("m", [2, 3, 6])
def test_simulated_studies_of_any_width_with_ties_are_valid_and_balanced(m):
    variants = [f"v{k}" for k in range(m)]
    proto = synthetic_protocol(variants, objects=(), n_captions=12, n_evaluators=8, overlap=3,
                               allow_ties=True)
    sim = RaterSimulator({v: 0.4 + 0.1 * k for k, v in enumerate(variants)}, tie_margin=0.4, seed=2)
    t = simulate_study(sim, proto)
    ranks = t["rank"][np.isfinite(t["rank"])].reshape(-1, m)
    assert any(len(set(r)) < m for r in ranks.tolist())  # ties drawn, as competition ranks
    with pytest.raises(ValueError, match="does not allow ties"):
        simulate_study(sim, synthetic_protocol(variants, objects=(), n_captions=4, n_evaluators=4,
                                               overlap=2))


def test_power_analysis_ranks_several_variants_with_ties():
    sim = RaterSimulator({"a": 0.9, "b": 0.3, "c": 0.6}, tie_margin=0.3, seed=5)
    res = power_analysis(sim, "a", "b", task="rank", evaluators=(12,), items_per_evaluator=10,
                         n_sims=10, seed=1, ranked=["a", "b", "c"])
    assert res.rows[0].power >= 0.8
    with pytest.raises(ValueError, match="ranked must name a and b"):
        power_analysis(sim, "a", "b", ranked=["a", "c"], n_sims=1)
