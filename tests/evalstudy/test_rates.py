"""Every rate the analysis reports gets Wilson's score interval on its effective number of
trials (`analysis.data.rate_intervals`): none is [1, 1] (or [0, 0]) where every answer went
one way, and the left image's share widens by what raters who always pick the left image
cost it."""

import numpy as np
import pytest
from scipy import stats as sps

from evalstudy import bootstrap as bs
from evalstudy.analysis import analyze
from evalstudy.analysis.data import rate_intervals
from evalstudy.analysis.pairdesign import _PairData
from evalstudy.confidence import score_intervals
from evalstudy.simulate import RaterSimulator, simulate_bradley_terry_pairs, simulate_study, synthetic_protocol
from tests.narrow import present

V2 = ["c-intermediate", "c-early"]
Z = sps.norm.ppf(0.975)


def _count_study(seed: int = 3):
    proto = synthetic_protocol(V2, n_captions=6, n_evaluators=10, overlap=3)
    sim = RaterSimulator(dict(zip(V2, (0.7, 0.6), strict=True)), skip_rate=0.0, seed=seed)
    return proto, simulate_study(sim, proto)


def test_a_count_task_answered_right_every_time_has_match_ratios_below_one():
    # The audit's case: every counted image matched. The crossed bootstrap's resamples all give
    # 1, and its interval was [1, 1]; a rate interval is [n / (n + q^2), 1], q >= z.
    proto, table = _count_study()
    count = table["task"] == "count"
    table["answer_count"][count] = table["true_count"][count]  # right, and never "can't tell"
    res = analyze(table, proto, n_boot=100, seed=0, exclusions=False)
    rows = res.count.by_variant + res.count.by_variant_object_count
    assert rows
    for row in rows:
        n = row.n_answered
        assert row.match_ratio == 1.0 and row.match_ratio_ci[1] == 1.0
        assert 0.2 < present(row.match_ratio_ci[0]) <= n / (n + Z * Z) + 1e-12
        assert row.match_ratio_cant_tell_as_miss_ci == row.match_ratio_ci
        # Nobody said "can't tell": 0, and an interval above it.
        assert row.cant_tell_rate == 0.0 and row.cant_tell_rate_ci[0] == 0.0
        assert 0.0 < present(row.cant_tell_rate_ci[1]) == pytest.approx(1 - present(row.match_ratio_ci[0]))
    # The mean error of 0 [0, 0] is what is left at an edge, and the note says so.
    assert res.count.by_variant[0].mean_abs_error_ci == [0.0, 0.0] and res.count.edge_note


def test_no_skipped_ranking_still_has_a_skip_rate_interval_above_zero():
    proto = synthetic_protocol(V2, objects=(), n_captions=20, n_evaluators=10, overlap=3)
    table = simulate_study(RaterSimulator(dict(zip(V2, (0.6, 0.5), strict=True)), skip_rate=0.0, seed=1), proto)
    pref = analyze(table, proto, n_boot=100, seed=0).preference
    assert pref.ranking_skip_rate == 0.0
    low, high = pref.ranking_skip_rate_ci
    assert low == 0.0 and 0.01 < present(high) < 0.15
    # Ties not allowed and none given: the tie rate is 0 by construction, nothing estimated.
    assert all(q.tie_rate_ci == [0.0, 0.0] for q in pref.pairs)


def _pairs_with_always_left(n_left: int, seed: int = 0):
    """A pairs study of four equal variants, 8 raters of 9 rankings each, `n_left` of whom pick the
    left image every time; the pairs' data as the analysis builds it, with each untied ranking's
    left win."""
    variants = [f"v{i}" for i in range(4)]
    proto = synthetic_protocol(variants, objects=(), n_captions=24, n_evaluators=8, overlap=3, design="pairs")
    table = simulate_bradley_terry_pairs(proto, {v: 1.0 for v in variants}, seed=seed)
    rank = table["task"] == "rank"
    spammers = sorted(set(table["evaluator_id"][rank].tolist()))[:n_left]
    always = rank & np.isin(table["evaluator_id"], spammers)
    table["rank"][always] = np.where(table["position"][always] == 0, 1, 2)
    return proto, table


def test_always_left_raters_widen_the_left_share_by_their_design_effect_and_df():
    proto, table = _pairs_with_always_left(2)
    bias = analyze(table, proto, n_boot=100, seed=0).tests.position_bias
    assert bias is not None and bias.left_win_rate is not None
    low, high = (present(x) for x in bias.left_win_rate_ci)
    # The same rate by hand: the plain Wilson interval of independent rankings, and the crossed
    # variance's with z (no df correction). Two raters' 18 left wins are one lump, not 18 trials.
    ids, codes = np.unique(table["evaluator_id"], return_inverse=True)
    p = _PairData.build(table, codes, [f"v{i}" for i in range(4)])
    rows = np.flatnonzero(p.done)
    left = np.where(p.a_left[rows], p.a_win[rows], p.b_win[rows]).astype(float)
    group = np.zeros(len(rows), dtype=np.int64)
    unit, ev = p.ranking_unit[rows], p.ranking_evaluator[rows]
    k, n = left.sum(), float(len(rows))
    est = np.array([k / n])
    plain = score_intervals(est, est * (1 - est) / n, est * (1 - est) / n, np.array([n]), 0.95)[0]
    spread = bs.ratio_corrections(unit, ev, group, left, np.ones(len(rows)), 1, 0.95)
    crossed_z = score_intervals(est, spread.var, est * (1 - est) / n, np.array([n]), 0.95)[0]
    assert bias.left_win_rate == pytest.approx(k / n)
    assert spread.var[0] > 1.5 * est[0] * (1 - est[0]) / n  # the always-left raters' design effect
    assert high - low > 1.2 * (plain[1] - plain[0])
    assert high - low > (crossed_z[1] - crossed_z[0]) + 0.01  # and t on the raters' few df
    assert (low, high) == pytest.approx(tuple(rate_intervals(unit, ev, group, left, np.ones(len(rows)), 1, 0.95)[0]))


def test_a_left_image_that_won_every_ranking_has_a_share_below_one():
    proto, table = _pairs_with_always_left(8)  # every rater: the bootstrap's [1, 1]
    bias = analyze(table, proto, n_boot=100, seed=0).tests.position_bias
    assert bias is not None and bias.left_win_rate == 1.0
    low, high = bias.left_win_rate_ci
    n = bias.n_rankings
    assert high == 1.0 and 0.5 < present(low) <= n / (n + Z * Z)
