"""The report's tables for a pairwise study with ties: Davidson strengths, every pair."""

from evalstudy.analysis import analyze
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol
from webapp.research import reports


def _tables(variants, ties):
    proto = synthetic_protocol(variants, objects=(), n_captions=10, n_evaluators=8, overlap=3,
                               allow_ties=ties)
    sim = RaterSimulator({v: 0.5 + 0.1 * k for k, v in enumerate(variants)},
                         tie_margin=0.3 if ties else 0.0, seed=1)
    result = analyze(simulate_study(sim, proto), proto, n_boot=100)
    section = reports.result_sections(result=result, auto={})[0]
    return {t.key: t for t in section["tables"]}, result


def test_a_pairwise_study_with_ties_reports_davidson_strengths_and_the_pair():
    tables, result = _tables(["new", "old"], ties=True)
    pref = tables["figure6"]
    assert "Bradley-Terry-Davidson strength" in pref.header
    assert all(row[6] != "\u2013" for row in pref.rows)  # a strength for every variant
    (pair,) = tables["pairs"].rows
    p = result.preference.pairs[0]
    assert pair[0] == "new vs old" and pair[2] == f"{p.a_wins} / {p.ties} / {p.b_wins}"
    assert "ties left out" in tables["pairs"].note


def test_full_rankings_keep_plackett_luce():
    tables, _ = _tables(["a", "b", "c"], ties=False)
    assert "Plackett-Luce strength" in tables["figure6"].header
    assert len(tables["pairs"].rows) == 3
