"""Pre-registered primary comparisons: the protocol's plan, the group-sequential rule,
robustness of each conclusion, and the prediction-powered intervals."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from evalstudy import sequential
from evalstudy.analysis import analyze
from evalstudy.analysis.data import _CountData, _evaluator_codes
from evalstudy.analysis.ppi import judge_only_rows, ppi_section
from evalstudy.protocol import Protocol, ProtocolError, load_protocol
from evalstudy.responses import read_responses, table_from_columns
from tests.narrow import present

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "fixtures" / "protocols"

# The fixture protocols' hashes before primary comparisons existed: they must not move.
FIXTURE_HASHES = {
    "demo.json": "350025f473a48fe3bbe5acccae0b8b46f89a0bcc8593f80e67b9f6364ee266d7",
    "paper.json": "eae39bdd45d4f7e8a7ff0dda6cf77a30f181d8456167b23ee2c8478b45f12869",
}

PRIMARY = {"comparisons": [{"a": "concat-intermediate", "b": "concat-early",
                            "measure": "match_ratio", "effect": 0.1}],
           "looks": [10, 20, 40]}


@pytest.fixture
def demo_doc():
    return json.loads((PROTOCOLS / "demo.json").read_text())


# --------------------------------------------------------------------------- the protocol

@pytest.mark.parametrize("name", sorted(FIXTURE_HASHES))
def test_fixture_protocols_keep_their_hashes(name):
    p = load_protocol(PROTOCOLS / name)
    assert p.analysis.primary is None and p.analysis.judge_images_per_cell == 0
    assert not {"primary", "judge_images_per_cell"} & set(p.to_dict()["analysis"])
    assert p.content_hash() == FIXTURE_HASHES[name]


def test_primary_comparisons_are_part_of_the_hashed_protocol(demo_doc):
    before = Protocol.from_dict(demo_doc).content_hash()
    demo_doc["analysis"]["primary"] = copy.deepcopy(PRIMARY)
    demo_doc["analysis"]["judge_images_per_cell"] = 4
    p = Protocol.from_dict(demo_doc)
    assert present(p.analysis.primary).looks == (10, 20, 40)
    assert present(p.analysis.primary).comparisons[0].effect == 0.1
    assert present(p.analysis.primary).alpha == p.analysis.alpha
    assert Protocol.from_dict(p.to_dict()) == p
    assert p.content_hash() != before
    demo_doc["analysis"]["primary"]["comparisons"][0]["effect"] = 0.2
    assert Protocol.from_dict(demo_doc).content_hash() != p.content_hash()


@pytest.mark.parametrize("change, message", [
    (lambda pr: pr.update(looks=[20, 10]), "must increase"),
    (lambda pr: pr["comparisons"][0].update(measure="speed"), "expected one of"),
    (lambda pr: pr["comparisons"][0].update(effect=0), "must be > 0"),
    (lambda pr: pr["comparisons"][0].update(a="nope"), "not one of the variants"),
    (lambda pr: pr["comparisons"][0].update(b="concat-intermediate"), "with itself"),
    (lambda pr: pr.pop("looks"), "looks"),
])
def test_a_bad_primary_plan_is_refused_with_its_place(demo_doc, change, message):
    pr = copy.deepcopy(PRIMARY)
    change(pr)
    demo_doc["analysis"]["primary"] = pr
    with pytest.raises(ProtocolError, match=message) as err:
        Protocol.from_dict(demo_doc)
    assert "analysis.primary" in str(err.value)


# --------------------------------------------------------------------------- the boundaries

def test_one_look_is_the_fixed_design():
    assert sequential.boundaries([1.0], 0.05)[0] == pytest.approx(1.959964, abs=1e-6)


def test_boundaries_spend_alpha_as_the_spending_function_says():
    t = np.array([0.25, 0.5, 0.75, 1.0])
    c = sequential.boundaries(t, 0.05)
    assert np.all(np.diff(c) < 0)
    rng = np.random.default_rng(0)
    b = np.cumsum(rng.normal(size=(400_000, 4)) * np.sqrt(np.diff(np.r_[0.0, t])), axis=1)
    crossed = np.abs(b / np.sqrt(t)) >= c
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    spent = np.diff(np.r_[0.0, sequential.obf_spending(t, 0.05)])
    for k in range(4):  # Monte Carlo s.e. at most 0.00026
        assert (first == k).mean() == pytest.approx(spent[k], abs=0.0012)
    assert (first >= 0).mean() == pytest.approx(0.05, abs=0.0012)


@pytest.mark.parametrize("fractions, alpha", [
    ((2 / 40, 1.0), 0.05),                        # a first look at 2 of 40 evaluators
    (tuple(np.arange(1, 11) / 10), 0.05 / 6),     # ten looks, six primary comparisons
    ((3 / 40, 1.0), 0.01 / 2),
])
def test_an_early_first_look_gets_finite_boundaries_that_spend_alpha(fractions, alpha):
    """The error spent by an early look is far below 1e-16 (1.8e-18 at t = 0.05): written as
    2 - 2 Phi(.) it rounded to 0, the first boundary to infinity, and the analysis crashed."""
    from tools.obf_boundaries import spent

    t = np.array(fractions)
    spending = sequential.obf_spending(t, alpha)
    assert spending[0] > 0 and spending[-1] == pytest.approx(alpha, rel=1e-12)
    c = sequential.boundaries(t, alpha)
    assert np.all(np.isfinite(c)) and np.all(np.diff(c) < 0)
    assert spent(c, t)[-1] == pytest.approx(alpha, rel=1e-3)
    out, _ = sequential.monitor([sequential.LookInput(2, 0.3, 0.1, math.inf)], (2, 40), alpha, effect=0.2)
    assert out[0].decision == sequential.CONTINUE and math.isfinite(out[0].boundary)


def test_monitor_stops_at_the_first_crossing_and_counts_futility():
    looks = (10, 20, 40)
    strong = [sequential.LookInput(10, 0.5, 0.1, math.inf)]
    out, _ = sequential.monitor(strong, looks, 0.05, effect=0.2)
    assert [o.decision for o in out] == [sequential.STOP_DIFFERENCE]
    flat = [sequential.LookInput(10, 0.0, 0.3, math.inf), sequential.LookInput(20, 0.0, 0.2, math.inf)]
    out, needed = sequential.monitor(flat, looks, 0.05, effect=0.05)
    assert out[-1].decision == sequential.STOP_FUTILITY and needed is not None and needed > 40
    middling = [sequential.LookInput(10, 0.1, 0.1, math.inf)]
    out, needed = sequential.monitor(middling, looks, 0.05, effect=0.2)
    assert out[-1].decision == sequential.CONTINUE and needed is not None and 10 < needed < 40


# --------------------------------------------------------------------------- robustness

def _count_table(answers_a, answers_b, truth=2):
    """A count study of variants x-intermediate and x-early: answers_*[e][u], evaluator e's
    answer to unit u's image of that variant (NaN: can't tell)."""
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                            "true_count", "answer_count", "rank", "skipped", "skip_reason",
                            "position", "seconds", "is_gold", "seed")}
    for variant, answers in (("x-intermediate", answers_a), ("x-early", answers_b)):
        for e, row in enumerate(answers):
            for u, ans in enumerate(row):
                for c, v in (("task", "count"), ("item_id", f"{variant}/{u}"), ("evaluator_id", f"r{e:02d}"),
                             ("variant", variant), ("prompt", f"prompt {u % 5}"), ("object", "circle"),
                             ("true_count", truth), ("answer_count", ans), ("rank", np.nan),
                             ("skipped", False), ("skip_reason", ""), ("position", np.nan),
                             ("seconds", 5.0), ("is_gold", False), ("seed", u)):
                    cols[c].append(v)
    return table_from_columns({k: np.array(v) for k, v in cols.items()})


def _robust_protocol(looks=(10, 20)):
    return Protocol.from_dict({
        "name": "robustness", "variants": ["x-early", "x-intermediate"],
        "sampling": {"cfg_scale": 3.0, "steps": 25, "sampler": "s", "seed": 0},
        "evaluators": {"n": 20, "overlap": 20},
        "count_task": {"objects": [{"name": "circle", "plural": "circles"}], "counts": [2],
                       "images_per_prompt": 2},
        "analysis": {"primary": {"comparisons": [{"a": "x-intermediate", "b": "x-early",
                                                  "measure": "match_ratio", "effect": 0.1}],
                                 "looks": list(looks)}}})


def test_removing_the_named_evaluators_flips_the_sign_and_one_fewer_does_not():
    rng = np.random.default_rng(4)
    n_ev, n_units = 20, 12
    # Most raters count both variants' images alike (paired: one answer copied); three
    # raters match every intermediate image and miss every early one.
    base = np.where(rng.random((n_ev, n_units)) < 0.6, 2.0, 3.0)
    a, b = base.copy(), base.copy()
    a[17:] = 2.0
    b[17:] = 3.0
    t = _count_table(a, b)
    res = analyze(t, _robust_protocol(), n_boot=200)
    comp = present(res.primary).comparisons[0]
    assert comp.estimate is not None and comp.estimate > 0
    sign = next(f for f in comp.robustness if f.by == "evaluators" and f.criterion == "sign")
    assert sign.confirmed == 3 and sorted(sign.removed) == ["r17", "r18", "r19"]

    def refit_difference(removed):
        keep = ~np.isin(t["evaluator_id"], removed)
        paired = analyze(t.subset(keep), n_boot=100).tests.paired
        return next(p.difference for p in paired if p.measure == "match_ratio")

    assert refit_difference(sign.removed) <= 0
    assert refit_difference(sign.removed[:-1]) > 0


def _uneven_study(seed, n_ev=8, n_units=14):
    """Raters of differing accuracy who answered differing numbers of units (the rest: can't
    tell): find8-style studies in which the influence order misleads the greedy search."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((n_ev, n_units)) < rng.uniform(0.5, 0.9, (n_ev, 1)), 2.0, 3.0)
    b = np.where(rng.random((n_ev, n_units)) < rng.uniform(0.4, 0.8, (n_ev, 1)), 2.0, 3.0)
    for e in range(n_ev):
        k = int(rng.integers(2, n_units + 1))
        a[e, k:] = np.nan
        b[e, k:] = np.nan
    return a, b


def test_small_panels_get_the_fewest_evaluators_not_the_greedy_bound(monkeypatch):
    """Seed 20: along the influence order no set of up to half (4 of 8) flips the sign, yet
    some 4 do; the exhaustive search finds them and no 3 do."""
    from itertools import combinations

    from evalstudy.analysis import primary
    from evalstudy.analysis.data import _RankData

    a, b = _uneven_study(20)
    t = _count_table(a, b)
    variants = ["x-early", "x-intermediate"]
    ev, ids = _evaluator_codes(t)
    rows = primary._Rows(_CountData.build(t, ev, variants, ["circle"]), _RankData.build(t, ev, variants),
                         "match_ratio")

    def sign_fragility():
        return next(f for f in primary.robustness(rows, ids, 1, 0, 0.95)
                    if f.by == "evaluators" and f.criterion == "sign")

    def difference(removed):  # match ratio, intermediate - early, from the answers themselves
        keep = [e for e in range(len(a)) if f"r{e:02d}" not in removed]
        ratio = [np.sum(x[keep] == 2.0) / np.sum(~np.isnan(x[keep])) for x in (a, b)]
        return ratio[0] - ratio[1]

    found = sign_fragility()
    assert difference([]) > 0
    assert found.search == "exhaustive" and found.confirmed == 4 and len(found.removed) == 4
    assert difference(found.removed) <= 0
    assert all(difference(list(drop)) > 0 for drop in combinations(ids, 3))
    monkeypatch.setattr(primary, "EXHAUSTIVE_MAX", 0)
    greedy = sign_fragility()
    assert greedy.search == "greedy" and greedy.confirmed is None


def test_the_looks_replay_the_first_evaluators_in_arrival_order():
    rng = np.random.default_rng(5)
    a = np.where(rng.random((20, 12)) < 0.9, 2.0, 3.0)
    b = np.where(rng.random((20, 12)) < 0.5, 2.0, 3.0)
    t = _count_table(a, b)
    arrival = [f"r{e:02d}" for e in range(19, -1, -1)]  # the last rows came first
    res = analyze(t, _robust_protocol((10, 20)), n_boot=100, arrival=arrival)
    first = present(res.primary).comparisons[0].looks[0]
    alone = analyze(t.subset(np.isin(t["evaluator_id"], arrival[:10])), n_boot=100)
    expected = next(p.difference for p in alone.tests.paired if p.measure == "match_ratio")
    assert first.n_evaluators == 10 and first.estimate == pytest.approx(expected)


# --------------------------------------------------------------------------- prediction-powered

def _ppi_study(rng, judge: str, n_ev=8, n_units=40, extra=40):
    """Two variants whose images show their count, or (hard images) look like one more;
    people read the apparent count 90% of the time, else one off either way. Judges: good
    (reads the apparent count 95% of the time, else one more), biased (the good judge, +1
    on counts 4 and 5), noise (any of 1..6). `extra` judge-only images per count and
    variant. Returns the table and the true match ratios."""
    hard_share = {"x-intermediate": 0.2, "x-early": 0.4}
    truth = {v: (1 - h) * 0.9 + h * 0.05 for v, h in hard_share.items()}
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                            "true_count", "answer_count", "rank", "skipped", "skip_reason",
                            "position", "seconds", "is_gold", "seed", "auto_count")}
    fixed = {"rank": np.nan, "position": np.nan, "skip_reason": "", "skipped": False,
             "is_gold": False, "seconds": 5.0, "task": "count", "object": "circle"}

    def add(**kw):
        for c in cols:
            cols[c].append(kw[c] if c in kw else fixed[c])

    for variant, h in hard_share.items():
        for u in range(n_units + extra * 5):
            count = 1 + u % 5
            apparent = count + int(rng.random() < h)
            good = apparent + int(rng.random() >= 0.95)
            auto = {"good": good, "biased": good + int(count >= 4),
                    "noise": int(rng.integers(1, 7))}[judge]
            meta = dict(item_id=f"{variant}/{u}", variant=variant, prompt=f"{count} circles",
                        true_count=count, seed=u, auto_count=auto)
            if u >= n_units:  # read by the judge only
                add(evaluator_id="", answer_count=np.nan, **meta)
                continue
            for e in rng.choice(n_ev, 3, replace=False):
                off = 0 if rng.random() < 0.9 else (1 if rng.random() < 0.5 else -1)
                add(evaluator_id=f"r{e}", answer_count=max(apparent + off, 0), **meta)
    return table_from_columns({k: np.array(v) for k, v in cols.items()}), truth


def _ppi(t):
    human = t.subset(t["evaluator_id"] != "")
    ev_code, _ = _evaluator_codes(human)
    c = _CountData.build(human, ev_code, ["x-early", "x-intermediate"], ["circle"])
    return ppi_section(c, judge_only_rows(t, ["x-early", "x-intermediate"]),
                       [("x-intermediate", "x-early")], 0.95)


@pytest.mark.parametrize("judge", ["good", "biased", "noise"])
def test_prediction_powered_intervals_cover_and_the_good_judge_narrows_them(judge):
    rng = np.random.default_rng({"good": 1, "biased": 2, "noise": 3}[judge])
    hits, n, ratio = 0, 0, []
    for _ in range(60):
        t, truth = _ppi_study(rng, judge)
        out = _ppi(t)
        for rec in out.by_variant:
            if rec.measure != "match_ratio":
                continue
            lo, hi = rec.ci
            hits += lo <= truth[rec.variant] <= hi
            n += 1
            ratio.append((rec.ci[1] - rec.ci[0]) / (rec.human_ci[1] - rec.human_ci[0]))
    assert hits / n >= 0.88  # 120 intervals: the bench measures coverage to 0.01
    if judge == "good":
        assert np.mean(ratio) < 0.9
    else:
        assert np.mean(ratio) < 1.05  # the weight falls back towards the human-only mean


def test_judge_only_rows_are_read_and_enter_only_the_prediction_powered_section(tmp_path):
    t, _ = _ppi_study(np.random.default_rng(0), "good", n_units=20, extra=1)
    path = tmp_path / "responses.csv"
    t.write_csv(path)
    t = read_responses(path)  # the judge-only rows (no evaluator) pass validation
    assert (t["evaluator_id"] == "").sum() == 2 * 5
    res = analyze(t, n_boot=100)
    humans_only = analyze(t.subset(t["evaluator_id"] != ""), n_boot=100)
    assert res.count.to_dict() == humans_only.count.to_dict()
    assert res.prediction_powered is not None and humans_only.prediction_powered is None
    agree = {a.variant: a for a in res.prediction_powered.judge_agreement}
    assert set(agree) == {"x-early", "x-intermediate"}
    exact = agree["x-early"].exact_agreement
    assert exact is not None and 0 <= exact <= 1
    assert "primary" not in humans_only.to_dict()


def test_an_empty_seed_column_is_named_with_the_tests_it_drops(tmp_path):
    path = tmp_path / "r.csv"
    header = ("task,item_id,evaluator_id,variant,prompt,object,true_count,answer_count,rank,"
              "skipped,skip_reason,position,seconds,is_gold,seed")
    path.write_text(header + "\ncount,i1,e1,a,p,circle,2,2,,0,,,3,0,\n")
    with pytest.warns(UserWarning, match="seed column is empty.*paired comparisons"):
        read_responses(path)


# --------------------------------------------------------------------------- few raters

def test_uneven_loads_count_as_few_raters_and_warn():
    from evalstudy.analysis.data import kish_raters
    from evalstudy.analysis.result import few_raters_warning
    loads = np.round(np.exp(np.linspace(0.0, np.log(150.0), 24))).astype(int)  # 1 .. 150
    evaluator = np.repeat(np.arange(24), loads)
    effective = kish_raters(np.zeros(len(evaluator), dtype=int), evaluator, np.ones(len(evaluator)), 1)[0]
    assert 7 < effective < 10
    assert kish_raters(np.zeros(48, dtype=int), np.arange(48) % 24, np.ones(48), 1)[0] == pytest.approx(24)

    class Row:  # a stored row: 24 raters, about 9 effective
        n_raters, n_raters_effective = 24, effective

    assert "Fewer than" in few_raters_warning([Row()])
    assert few_raters_warning([24]) == ""


# --------------------------------------------------------------------------- the rule, simulated

def _sequential_studies(rng, n_studies, effect, looks=(10, 20, 30, 40)):
    """Studies whose evaluators each bring one paired difference (t-distributed, 5 df: heavy
    tails); every look's estimate is the mean of the first n_k, its SE the sample one."""
    out = []
    for _ in range(n_studies):
        d = effect + rng.standard_t(5, looks[-1])
        data = [sequential.LookInput(n, float(d[:n].mean()), float(d[:n].std(ddof=1) / np.sqrt(n)), n - 1)
                for n in looks]
        outcomes, _ = sequential.monitor(data, looks, 0.05, effect=0.5, adjust=False)  # the decisions only
        out.append((outcomes[-1].decision, outcomes[-1].n_evaluators,
                    abs(data[-1].estimate / data[-1].se) >= 2.0227))  # fixed design: t(39) at 0.05
    return out


def test_no_effect_stops_with_a_difference_at_most_alpha_of_the_time_over_all_looks():
    out = _sequential_studies(np.random.default_rng(7), 4000, 0.0)
    rate = np.mean([d == sequential.STOP_DIFFERENCE for d, _, _ in out])
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 4000)  # s.e. 0.0034
    assert rate >= 0.03  # the boundaries spend alpha, not much less


def test_with_the_planned_effect_power_is_near_the_fixed_design_and_fewer_evaluators_are_paid():
    out = _sequential_studies(np.random.default_rng(8), 1500, 0.5)
    power = np.mean([d == sequential.STOP_DIFFERENCE for d, _, _ in out])
    fixed = np.mean([f for _, _, f in out])
    assert power >= fixed - 0.05
    assert np.mean([n for _, n, _ in out]) < 36


def test_a_stored_result_with_primary_and_judge_sections_reads_back_unchanged():
    from evalstudy.analysis import AnalysisResult
    rng = np.random.default_rng(6)
    t, _ = _ppi_study(rng, "good", n_units=20, extra=2)
    doc = Protocol.from_dict({
        "name": "ppi", "variants": ["x-early", "x-intermediate"],
        "sampling": {"cfg_scale": 3.0, "steps": 25, "sampler": "s", "seed": 0},
        "evaluators": {"n": 8, "overlap": 3},
        "count_task": {"objects": [{"name": "circle", "plural": "circles"}], "counts": [1, 2, 3, 4, 5],
                       "images_per_prompt": 2},
        "analysis": {"primary": {"comparisons": [{"a": "x-intermediate", "b": "x-early",
                                                  "measure": "match_ratio", "effect": 0.1}],
                                 "looks": [4, 8]}}})
    res = analyze(t, doc, n_boot=100)
    assert res.primary is not None and res.prediction_powered is not None
    stored = json.loads(json.dumps(res.to_dict()))
    assert AnalysisResult.from_dict(stored).to_dict() == stored


def test_removing_the_named_items_flips_the_sign_and_one_fewer_does_not():
    rng = np.random.default_rng(9)
    base = np.where(rng.random((20, 12)) < 0.6, 2.0, 3.0)
    a, b = base.copy(), base.copy()
    a[:, 9:] = 2.0  # three prompt-and-seed pairs carry the whole difference
    b[:, 9:] = 3.0
    t = _count_table(a, b)
    comp = present(analyze(t, _robust_protocol(), n_boot=100).primary).comparisons[0]
    sign = next(f for f in comp.robustness if f.by == "items" and f.criterion == "sign")
    assert sign.confirmed == 3
    seeds = [int(name.rsplit("seed ", 1)[1]) for name in sign.removed]
    assert sorted(seeds) == [9, 10, 11]

    def refit_difference(removed_seeds):
        keep = ~np.isin(t["seed"], removed_seeds)
        paired = analyze(t.subset(keep), n_boot=100).tests.paired
        return next(p.difference for p in paired if p.measure == "match_ratio")

    assert refit_difference(seeds) <= 0
    assert refit_difference(seeds[:-1]) > 0


def test_the_boundaries_spend_the_two_sided_obrien_fleming_function_exactly():
    """The convention docs/statistics.md names (two-sided |Z|, z_(1-alpha/2)), checked with
    scipy's multivariate normal CDF rather than by simulation (tools/obf_boundaries.py)."""
    from evalstudy.sequential import boundaries, obf_spending
    from tools.obf_boundaries import spent

    t = np.array([0.25, 0.5, 0.75, 1.0])
    assert spent(boundaries(t, 0.05), t) == pytest.approx(obf_spending(t, 0.05), abs=2e-5)
