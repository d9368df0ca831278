"""bench/pair_difference.py: paired studies (both variants' images of an item answered by
the same raters) and the table that decides which interval a rate difference gets."""
import numpy as np

from bench.pair_difference import METHODS, rows, simulate_pair, verdict
from bench.rate_bounds import CROWDS, solve_mu


def test_each_items_raters_answer_both_variants():
    crowd = CROWDS["raters"]
    item, rater, variant, answer = simulate_pair(crowd, (solve_mu(crowd, 0.8), solve_mu(crowd, 0.5)), 30, 10, 3,
                                                 np.random.default_rng(0))
    a, b = variant == 0, variant == 1
    assert a.sum() == b.sum() == 90
    assert sorted(zip(item[a], rater[a], strict=True)) == sorted(zip(item[b], rater[b], strict=True))
    # The two targets show in the answers (one study: loose).
    assert answer[a].mean() > answer[b].mean()


def test_at_both_rates_1_the_bootstrap_is_zero_width_and_the_score_interval_is_not():
    lines, tallies = rows(10, 50, ["iid"], ((8, 6, 3),))
    assert len(lines) == 1 + len(tallies)
    both_one = [t for (truth, t), line in zip(tallies, lines[1:], strict=True) if "1.00   1.00" in line]
    (t,) = both_one
    assert t["bootstrap"][2] == 0.0 and t["bootstrap"][3] == 1.0  # width 0, every interval of zero width
    assert set(t) == set(METHODS)
    assert t["newcombe"][0] == 1.0 and t["newcombe"][2] > 0.2 and t["newcombe"][3] == 0.0


def test_the_verdict_compares_coverage_where_the_bootstrap_is_not_degenerate():
    def row(old, new, zero):
        return 0.0, {"bootstrap": (old, 0.0, 0.1, zero), "newcombe": (new, 0.0, 0.1, 0.0)}
    # Higher on average, but 0.90 in a row where the bootstrap is never of zero width.
    assert verdict([row(0.95, 0.90, 0.0), row(0.5, 1.0, 0.6)])[-1].endswith("NOT met")
    # A low row where the bootstrap is degenerate does not count against it.
    assert verdict([row(0.95, 0.95, 0.0), row(0.5, 0.90, 0.6)])[-1].endswith(": met")
    assert verdict([row(0.95, 0.94, 0.0), row(0.96, 0.95, 0.0)])[-1].endswith("NOT met")  # lower mean
