"""The analysis of a pairs study (preference_task.design "pairs", evalstudy.analysis.pairdesign):
the pair table, Bradley-Terry-Davidson strengths, the planned win margins, position bias."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from evalstudy.analysis import AnalysisResult, analyze
from evalstudy.responses import ResponseError, responses_from_rows
from evalstudy.simulate import RaterSimulator, simulate_bradley_terry_pairs, simulate_study, synthetic_protocol
from tests.narrow import present

VARIANTS = ("a", "b", "c")


def _rows(judgments):
    """Responses rows from (evaluator, item, left variant, right variant, outcome), outcome 'L'
    (left better), 'R' or '=' (tie)."""
    rows = []
    for ev, item, left, right, outcome in judgments:
        ranks = {"L": (1, 2), "R": (2, 1), "=": (1, 1)}[outcome]
        for position, (variant, rank) in enumerate(zip((left, right), ranks, strict=True)):
            rows.append({"task": "rank", "item_id": item, "evaluator_id": ev, "variant": variant,
                         "prompt": f"caption {item}", "object": "", "true_count": "", "answer_count": "",
                         "rank": rank, "skipped": 0, "skip_reason": "", "position": position,
                         "seconds": 10, "is_gold": 0, "seed": 0})
    return rows


def _protocol(variants=VARIANTS, ties=False, comparisons=()):
    proto = synthetic_protocol(list(variants), objects=(), n_captions=6, n_evaluators=4, overlap=2,
                               design="pairs", allow_ties=ties)
    if comparisons:
        from dataclasses import replace
        proto = replace(proto, analysis=replace(proto.analysis, comparisons=tuple(comparisons)))
    return proto


def _hand_case():
    """a beats b 4:2, b beats c 4:2, a beats c 8:2: the Bradley-Terry maximum-likelihood
    strengths are exactly (4, 2, 1) / 7 (each variant's expected wins, sum_j n_ij s_i / (s_i + s_j),
    equal its wins: a 6 * 4/6 + 10 * 4/5 = 12, b 6 * 2/6 + 6 * 2/3 = 6, c 6/3 + 10/5 = 4)."""
    plan = [("a", "b", 4, 2), ("b", "c", 4, 2), ("a", "c", 8, 2)]
    judgments = []
    k = 0
    for x, y, wins_x, wins_y in plan:
        for outcome in ["x"] * wins_x + ["y"] * wins_y:
            # Alternate sides; 4 raters, a caption per judgment.
            left, right = (x, y) if k % 2 == 0 else (y, x)
            winner = x if outcome == "x" else y
            judgments.append((f"e{k % 4}", f"rank:{k}:0", left, right, "L" if winner == left else "R"))
            k += 1
    return judgments


def test_the_hand_computable_case():
    table = responses_from_rows(_rows(_hand_case()))
    res = analyze(table, _protocol(comparisons=[("a", "c"), ("c", "b")]), n_boot=200)
    pref = res.preference
    assert pref.design == "pairs" and pref.m == 2 and pref.n_rankings == 22
    strengths = {s.variant: s.bt_strength for s in pref.by_variant}
    for v, expected in zip(VARIANTS, (4 / 7, 2 / 7, 1 / 7), strict=True):
        assert strengths[v] == pytest.approx(expected, abs=1e-6), v
    assert all(s.score is None and s.pl_strength is None for s in pref.by_variant)
    assert [s.rank_counts for s in pref.by_variant] == [[12, 4], [6, 6], [4, 12]]
    pairs = {(p.a, p.b): p for p in pref.pairs}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    ac = pairs[("a", "c")]
    assert (ac.n, ac.a_wins, ac.b_wins, ac.ties) == (10, 8, 2, 0)
    assert ac.win_rate == pytest.approx(0.8) and ac.tie_rate == 0.0
    low, high = present(ac.win_rate_ci[0]), present(ac.win_rate_ci[1])
    assert low < 0.8 < high
    # Planned comparisons: the win margin from the pair's own rankings, signed a over b.
    margins = {(t.a, t.b): t for t in res.tests.paired}
    assert margins[("a", "c")].measure == "win_margin"
    assert margins[("a", "c")].difference == pytest.approx((8 - 2) / 10)
    assert margins[("c", "b")].difference == pytest.approx((2 - 4) / 6)
    assert res.tests.friedman is None and res.tests.posthoc is None
    # The left image won 11 of the 22 (the winners alternate sides with the judgments above).
    bias = res.tests.position_bias
    left_won = sum(1 for *_, outcome in _hand_case() if outcome == "L")
    assert bias is not None and bias.n_rankings == 22 and bias.left_win_rate == pytest.approx(left_won / 22)
    assert bias.first_choice_by_position == [left_won, 22 - left_won]
    assert AnalysisResult.from_dict(res.to_dict()) == res


def test_the_command_lines_table_of_a_pairs_study_has_strengths_and_no_score_column():
    from evalstudy.__main__ import _preference_lines

    res = analyze(responses_from_rows(_rows(_hand_case())), _protocol(), n_boot=50)
    head, *rows = _preference_lines(res, width=4)[:4]
    assert "BT-Davidson strength" in head and "score" not in head.split("(")[0]
    for row, v in zip(rows, VARIANTS, strict=True):
        by = next(s for s in res.preference.by_variant if s.variant == v)
        # variant, raters, rankings, then the strength: no empty score cells before it.
        assert row.split()[:4] == [v, str(by.n_raters), str(by.n), f"{by.bt_strength:.3f}"]


def test_ties_are_counted_and_the_tie_parameter_reported():
    judgments = _hand_case() + [(f"e{k % 4}", f"rank:t{k}:0", "a", "b", "=") for k in range(4)]
    res = analyze(responses_from_rows(_rows(judgments), allow_ties=True), _protocol(ties=True), n_boot=200)
    ab = next(p for p in res.preference.pairs if (p.a, p.b) == ("a", "b"))
    assert (ab.n, ab.a_wins, ab.b_wins, ab.ties) == (10, 4, 2, 4) and ab.tie_rate == pytest.approx(0.4)
    assert res.preference.has_ties and res.preference.bt_tie_parameter is not None
    assert res.preference.bt_tie_parameter > 0


def test_a_pairs_table_is_read_and_a_mixed_one_refused():
    rows = _rows(_hand_case())
    table = responses_from_rows(rows)
    assert len(table) == 44
    triple = [dict(rows[0], variant="c", position=2, rank=3), *rows[:2]]
    with pytest.raises(ResponseError, match="every ranking must rank the same variants, or, in a pairs study"):
        responses_from_rows(rows + [dict(r, evaluator_id="x") for r in triple])


def test_a_ranking_protocol_refuses_a_pairs_table():
    table = responses_from_rows(_rows(_hand_case()))
    ranking = synthetic_protocol(list(VARIANTS), objects=(), n_captions=6, n_evaluators=4, overlap=2)
    with pytest.raises(ValueError, match="design is \"ranking\""):
        analyze(table, ranking, n_boot=100)
    # Without a protocol the table says what it is.
    assert analyze(table, None, n_boot=100).preference.design == "pairs"


def test_a_strong_left_preference_is_found():
    proto = _protocol(variants=[f"v{i}" for i in range(6)])
    proto = synthetic_protocol([f"v{i}" for i in range(6)], objects=(), n_captions=30, n_evaluators=20,
                               overlap=4, design="pairs")
    table = simulate_bradley_terry_pairs(proto, {f"v{i}": 1.0 for i in range(6)}, left_advantage=3.0, seed=4)
    bias = analyze(table, proto, n_boot=200).tests.position_bias
    assert bias is not None and bias.left_win_rate is not None
    assert bias.left_win_rate > 0.65 and present(bias.left_win_rate_ci[0]) > 0.5
    assert bias.p_value is not None and bias.p_value < 0.01
    fair = analyze(simulate_bradley_terry_pairs(proto, {f"v{i}": 1.0 for i in range(6)}, seed=4),
                   proto, n_boot=200).tests.position_bias
    assert fair is not None and fair.p_value is not None and fair.p_value > 0.01


def test_known_bradley_terry_strengths_are_recovered():
    """A crowd answering by Davidson's model with 8 known strengths: the fitted order is the
    true one (Spearman >= 0.9) and most strength intervals hold the true strength (the
    coverage over many studies is bench/pairs_recovery.py's)."""
    variants = [f"m{i}" for i in range(8)]
    true = np.array([2.0 ** (i / 2) for i in range(8)])
    true /= true.sum()
    proto = synthetic_protocol(variants, objects=(), n_captions=60, n_evaluators=30, overlap=8,
                               design="pairs", allow_ties=True)
    table = simulate_bradley_terry_pairs(proto, dict(zip(variants, true, strict=True)), tie_parameter=0.4, seed=2)
    res = analyze(table, proto, n_boot=400)
    fitted = np.array([s.bt_strength for s in res.preference.by_variant])
    assert sps.spearmanr(fitted, true).statistic >= 0.9
    cover = [lo <= t <= hi for t, (lo, hi) in zip(true, (s.bt_strength_ci for s in res.preference.by_variant),
                                                strict=True)]
    assert sum(cover) >= 6
    assert res.preference.bt_tie_parameter == pytest.approx(0.4, abs=0.2)
    assert len(res.preference.pairs) == 28


def test_the_rater_simulator_simulates_a_pairs_study_with_eight_variants():
    variants = [f"m{i}" for i in range(8)]
    proto = synthetic_protocol(variants, objects=("circle",), counts=(1, 2), n_captions=16, n_evaluators=12,
                               overlap=3, design="pairs", repeats=2)
    sim = RaterSimulator({v: 0.1 * i for i, v in enumerate(variants)}, seed=3)
    table = simulate_study(sim, proto)
    rank = table["task"] == "rank"
    first = rank & (table["repeat_of"] == "")
    keys = [f"{e}/{i}" for e, i in zip(table["evaluator_id"][first], table["item_id"][first], strict=True)]
    assert set(np.unique(keys, return_counts=True)[1].tolist()) == {2}
    res = analyze(table, proto, n_boot=100)
    assert res.preference.design == "pairs" and res.count.by_variant
    assert math.isfinite(res.preference.ranking_skip_rate or math.nan)
    assert any(e.n_repeats for e in res.evaluators)


def test_a_pair_won_every_time_has_a_win_rate_interval_below_one():
    # a beats b in all 12 of their rankings (each by its own rater, of its own caption); the
    # other pairs split. An interval [1, 1] would claim certainty from 12 rankings: Wilson's
    # lower end with the rankings independent is 12 / (12 + q^2), q the t quantile on the
    # crossed variance's df, there its largest: (12 captions - 1) + (12 raters - 1).
    judgments = []
    for k in range(12):
        left, right = ("a", "b") if k % 2 == 0 else ("b", "a")
        judgments.append((f"e{k}", f"ab{k}", left, right, "L" if left == "a" else "R"))
        judgments.append((f"e{k}", f"bc{k}", "b", "c", "L" if k % 3 else "R"))
        judgments.append((f"e{k}", f"ac{k}", "c", "a", "R" if k % 4 else "L"))
    res = analyze(responses_from_rows(_rows(judgments)), _protocol(), n_boot=200)
    ab = next(p for p in present(res.preference.pairs) if (p.a, p.b) == ("a", "b"))
    assert ab.win_rate == 1.0
    q = sps.t.ppf(0.975, 22)
    assert ab.win_rate_ci[0] == pytest.approx(12 / (12 + q * q), rel=1e-9)
    assert ab.win_rate_ci[1] == pytest.approx(1.0)
    assert res.preference.edge_note == ""


def _a_sweeps_b(ties: int = 0):
    """a beats b in every one of 12 rankings but ``ties`` (each ranking by its own rater, of its
    own caption); the other pairs split."""
    judgments = []
    for k in range(12):
        left, right = ("a", "b") if k % 2 == 0 else ("b", "a")
        judgments.append((f"e{k}", f"ab{k}", left, right, "=" if k < ties else ("L" if left == "a" else "R")))
        judgments.append((f"e{k}", f"bc{k}", "b", "c", "L" if k % 3 else "R"))
        judgments.append((f"e{k}", f"ac{k}", "c", "a", "R" if k % 4 else "L"))
    return judgments


def test_a_pair_won_every_time_has_a_win_margin_interval_below_one():
    # The planned comparison of a and b: margin 1 from 12 rankings. Every resample of captions
    # and raters gives 1 too, so the bootstrap's interval was [1, 1]; the margin is 2 q - 1 of
    # the win share q, whose Wilson interval (rankings independent here) starts at 12 / (12 + t^2).
    res = analyze(responses_from_rows(_rows(_a_sweeps_b())), _protocol(comparisons=[("a", "b"), ("b", "a")]),
                  n_boot=200)
    margins = {(t.a, t.b): t for t in res.tests.paired}
    ab, ba = margins[("a", "b")], margins[("b", "a")]
    q = sps.t.ppf(0.975, 22)
    assert ab.difference == 1.0
    assert ab.difference_ci[0] == pytest.approx(2 * 12 / (12 + q * q) - 1, rel=1e-9)
    assert ab.difference_ci[1] == pytest.approx(1.0)
    # The same comparison the other way round is its mirror image.
    assert ba.difference == -1.0
    assert ba.difference_ci == pytest.approx([-1.0, -present(ab.difference_ci[0])])


@pytest.mark.parametrize("ties", [0, 3])
def test_the_win_margin_interval_is_the_pair_tables_ties_half_rate_mapped(ties):
    # One rule for the margin and the pair table's ties-half win rate (a tie half a win):
    # margin = 2 q - 1, and so is its interval.
    res = analyze(responses_from_rows(_rows(_a_sweeps_b(ties)), allow_ties=True),
                  _protocol(ties=True, comparisons=[("a", "b")]), n_boot=200)
    ab_pair = next(p for p in present(res.preference.pairs) if (p.a, p.b) == ("a", "b"))
    ab = next(t for t in res.tests.paired if (t.a, t.b) == ("a", "b"))
    assert ab.difference == pytest.approx(2 * present(ab_pair.win_rate_ties_half) - 1)
    low, high = (present(x) for x in ab_pair.win_rate_ties_half_ci)
    assert ab.difference_ci == pytest.approx([2 * low - 1, 2 * high - 1])
    assert present(ab.difference_ci[0]) < present(ab.difference) <= present(ab.difference_ci[1])


def test_pair_win_rate_intervals_cover_with_ten_rankings_per_pair():
    # 16 variants, 120 pairs, 10 rankings each, ties allowed (bench/pairs_recovery.py's setting):
    # the crossed bootstrap's intervals covered 0.915 of these 720 pairs, Wilson's on the
    # effective number of rankings 0.960 (bench/pairs_crowds.py measures more crowds).
    variants = [f"m{i:02d}" for i in range(16)]
    truth = 2.0 ** (3 * np.arange(16) / 15)
    proto = synthetic_protocol(variants, objects=(), n_captions=120, n_evaluators=40, overlap=10, design="pairs",
                               allow_ties=True)
    cover = []
    for seed in range(6):
        table = simulate_bradley_terry_pairs(proto, dict(zip(variants, truth, strict=True)), tie_parameter=0.4,
                                             seed=seed)
        res = analyze(table, proto, n_boot=200, seed=seed)
        for p in present(res.preference.pairs):
            sa, sb = truth[variants.index(p.a)], truth[variants.index(p.b)]
            lo, hi = present(p.win_rate_ci[0]), present(p.win_rate_ci[1])
            cover.append(lo <= sa / (sa + sb) <= hi)
    assert len(cover) == 6 * 120
    assert np.mean(cover) >= 0.935
