"""Inputs at the edges (audit of 2026-12, F5): every answer a tie, a variant with no counted
answer, perfect separation, few raters. The result says what it cannot estimate instead of
printing a number that is not an estimate, or dropping a row."""

import numpy as np

from evalstudy.__main__ import _preference_lines
from evalstudy.analysis import analyze
from evalstudy.analysis.preference import DAVIDSON_SEPARATION_NOTE
from evalstudy.analysis.result import EDGE_NOTE, FEW_RATERS
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol
from tests.narrow import present

V2 = ["c-intermediate", "c-early"]


def _pairwise(n_raters, n_captions, seed, allow_ties=True):
    proto = synthetic_protocol(V2, objects=(), n_captions=n_captions, n_evaluators=n_raters, overlap=3,
                               allow_ties=allow_ties)
    sim = RaterSimulator(dict(zip(V2, (0.6, 0.5), strict=True)), skip_rate=0.0, seed=seed,
                         tie_margin=0.5 if allow_ties else 0.0)
    return proto, simulate_study(sim, proto)


def test_every_answer_a_tie_reports_no_tie_parameter_and_says_why():
    proto, table = _pairwise(10, 20, 1)
    table["rank"][:] = 1  # "about the same", every time
    pref = analyze(table, proto, n_boot=200, seed=0).preference
    assert pref.has_ties
    assert pref.strength_note == DAVIDSON_SEPARATION_NOTE
    assert "tie parameter is not reported" in pref.strength_note
    assert pref.bt_tie_parameter is None
    assert pref.bt_tie_parameter_ci == [None, None]
    # A tie rate of 1 is a rate like any other: an interval below 1 (data.rate_intervals), not
    # [1, 1], and nothing at an edge to flag (both scores are 1.5, inside [1, 2]).
    (pair,) = pref.pairs
    assert pair.tie_rate == 1.0 and pair.tie_rate_ci[1] == 1.0
    assert 0.5 < present(pair.tie_rate_ci[0]) < 1.0
    assert pref.edge_note == ""


def test_an_ordinary_tied_study_keeps_its_tie_parameter_and_has_no_edge_note():
    proto, table = _pairwise(10, 20, 1)
    pref = analyze(table, proto, n_boot=200, seed=0).preference
    nu = present(pref.bt_tie_parameter)
    low, high = (present(x) for x in pref.bt_tie_parameter_ci)
    assert 0 < low <= nu <= high < 1e3
    assert pref.strength_note == "" and pref.edge_note == ""


def test_a_comparison_whose_variant_has_no_counted_answer_keeps_its_row():
    proto = synthetic_protocol(V2, n_captions=0, n_evaluators=6, overlap=3)
    table = simulate_study(RaterSimulator(dict(zip(V2, (0.8, 0.6), strict=True)), seed=2), proto)
    early = (table["task"] == "count") & (table["variant"] == "c-early")
    table["answer_count"][early] = np.nan  # "can't tell", every time
    res = analyze(table, proto, n_boot=100, seed=0, exclusions=False)
    rows = {t.measure: t for t in res.tests.paired if t.task == "count"}
    assert set(rows) == {"mean_abs_error", "match_ratio"}
    for t in rows.values():
        assert (t.a, t.b) == ("c-intermediate", "c-early")
        assert t.p_value is None and t.p_holm is None and not t.significant
        assert t.difference is None and t.difference_ci == [None, None]
        assert t.method == "not computable: no counted answers for c-early"


def test_perfect_separation_notes_that_its_zero_width_intervals_are_not_certainty():
    proto, table = _pairwise(10, 20, 3, allow_ties=False)
    rank = table["task"] == "rank"
    table["rank"][rank] = np.where(table["variant"][rank] == "c-intermediate", 1, 2)
    pref = analyze(table, proto, n_boot=200, seed=0).preference
    (pair,) = pref.pairs
    # The win rate gets Wilson's interval on its rankings, below 1; the scores (2 and 1, each at an
    # end of [1, 2]) still have zero-width intervals, and those the note flags.
    low, high = (present(x) for x in pair.win_rate_ci)
    assert pair.win_rate in (0.0, 1.0) and 0.0 < high - low < 0.2
    assert pair.tie_rate_ci == [0.0, 0.0]  # ties not allowed: 0 by construction
    assert all(present(p.score_ci[0]) == present(p.score_ci[1]) for p in pref.by_variant)
    assert pref.edge_note == EDGE_NOTE
    assert "not certainty" in EDGE_NOTE


def test_the_command_lines_preference_table_warns_of_few_raters():
    proto, table = _pairwise(3, 6, 5)
    result = analyze(table, proto, n_boot=100, seed=0)
    assert max(present(p.n_raters_effective) for p in result.preference.by_variant) < FEW_RATERS
    text = "\n".join(_preference_lines(result, 16))
    assert f"Fewer than {FEW_RATERS} raters behind a row" in text
    proto, table = _pairwise(12, 20, 5)
    assert "Fewer than" not in "\n".join(_preference_lines(analyze(table, proto, n_boot=100, seed=0), 16))


def test_an_ordinary_study_without_ties_or_cant_tells_has_no_edge_note():
    # A tie rate of 0 [0, 0] where ties are not allowed, and a can't-tell rate of 0 [0, 0]
    # where nobody said "can't tell", are not the raters' unanimous claims.
    proto = synthetic_protocol(V2, n_captions=20, n_evaluators=10, overlap=3)
    sim = RaterSimulator(dict(zip(V2, (0.7, 0.6), strict=True)), cant_tell_rate=0.0, seed=6)
    result = analyze(simulate_study(sim, proto), proto, n_boot=100, seed=0)
    assert all(r.cant_tell_rate == 0.0 for r in result.count.by_variant)
    assert all(q.tie_rate == 0.0 for q in result.preference.pairs)
    assert result.count.edge_note == "" and result.preference.edge_note == ""
