"""bench/sequential.py's crowds are what its rows say they are."""

import numpy as np

from bench import coverage as cv
from bench import sequential as bs


def _mean_rank_gap(table) -> float:
    """Mean rank of B minus mean rank of A over the table's rankings (positive: A ahead)."""
    rank = table["task"] == "rank"
    return float(np.mean(table["rank"][rank & (table["variant"] == bs.B)])
                 - np.mean(table["rank"][rank & (table["variant"] == bs.A)]))


def test_the_no_effect_crowd_ranks_a_and_b_alike_and_the_planned_one_does_not():
    # The planned qualities put A 0.35 ahead on the utility scale: a mean-rank gap near 0.4
    # in 160 rankings a study. The null rows must draw A and B alike (a default argument bound
    # at import once made them draw the planned qualities whatever the row said).
    ia, ib = cv.VARIANTS.index(bs.A), cv.VARIANTS.index(bs.B)
    null_acc, null_q = cv.ACCURACY.copy(), cv.QUALITY.copy()
    null_acc[ia], null_q[ia] = null_acc[ib], null_q[ib]
    rng = np.random.default_rng(7)
    null = [_mean_rank_gap(bs.draw_study(bs.CROWDS[0], rng, null_acc, null_q)) for _ in range(4)]
    planned = [_mean_rank_gap(bs.draw_study(bs.CROWDS[0], rng, cv.ACCURACY, cv.QUALITY)) for _ in range(4)]
    assert abs(np.mean(null)) < 0.12 < np.mean(planned)


def test_the_drifting_crowd_flips_between_its_halves():
    rng = np.random.default_rng(8)
    late = bs._mirror(cv.ACCURACY, cv.QUALITY)
    tables = [bs.draw_study(bs.DRIFTING, rng, cv.ACCURACY, cv.QUALITY, late) for _ in range(4)]
    n = bs.LOOKS[-1]
    early = [t.subset(np.isin(t["evaluator_id"], [f"e{e:02d}" for e in range(n // 2)])) for t in tables]
    later = [t.subset(np.isin(t["evaluator_id"], [f"e{e:02d}" for e in range(n // 2, n)])) for t in tables]
    assert np.mean([_mean_rank_gap(t) for t in early]) > 0.2
    assert np.mean([_mean_rank_gap(t) for t in later]) < -0.2
