"""analyze(): hand-computed cases, invariances, exclusions, tests against scipy."""

import dataclasses
import functools
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalstudy.analysis import analyze
from evalstudy.responses import ResponseTable, responses_from_rows, table_from_columns
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol
from tests.narrow import present

V = ["a-early", "a-intermediate"]


def crow(ev, item, variant, true, answer, seed=0, **kw):
    row = {"task": "count", "item_id": item, "evaluator_id": ev, "variant": variant,
           "prompt": f"{true} buses", "object": "bus", "true_count": true,
           "answer_count": "" if answer is None else answer, "rank": "", "skipped": 0,
           "skip_reason": "", "position": "", "seconds": 5, "is_gold": 0, "seed": seed}
    row.update(kw)
    return row


def rrows(ev, item, ranks, skipped=False, positions=(0, 1)):
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": v,
             "prompt": f"caption {item}", "object": "", "true_count": "", "answer_count": "",
             "rank": "" if skipped else r, "skipped": int(skipped),
             "skip_reason": "cannot decide" if skipped else "", "position": p, "seconds": 8,
             "is_gold": 0} for v, r, p in zip(V, ranks, positions, strict=True)]


@pytest.fixture(scope="module")
def small_table():
    rows = [
        crow("e1", "i1", "a-early", 2, 2), crow("e2", "i1", "a-early", 2, 3),
        crow("e1", "i2", "a-intermediate", 2, 2), crow("e2", "i2", "a-intermediate", 2, None),
        crow("e1", "i3", "a-early", 3, 1, seed=1), crow("e2", "i3", "a-early", 3, 3, seed=1),
        crow("e1", "i4", "a-intermediate", 3, 3, seed=1),
        crow("e2", "i4", "a-intermediate", 3, 3, seed=1),
        *rrows("e1", "r1", (2, 1)), *rrows("e2", "r1", (1, 2), positions=(1, 0)),
        *rrows("e1", "r2", (2, 1)), *rrows("e2", "r2", (0, 0), skipped=True),
    ]
    return responses_from_rows(rows)


def by(records, **keys):
    return next(r for r in records if all(getattr(r, k) == v for k, v in keys.items()))


def test_count_statistics_by_hand(small_table):
    res = analyze(small_table, n_boot=200)
    early = by(res.count.by_variant, variant="a-early")
    # errors 0, 1, 2, 0 -> 0.75; matches 2 of 4
    assert early.mean_abs_error == pytest.approx(0.75)
    assert early.match_ratio == pytest.approx(0.5)
    inter = by(res.count.by_variant, variant="a-intermediate")
    # "can't tell" is out of both (eq. 9 and 10 over the 3 counted images), beside them as
    # a rate, and a miss only in the sensitivity row (3/4)
    assert inter.mean_abs_error == 0.0
    assert inter.match_ratio == 1.0
    assert inter.cant_tell_rate == pytest.approx(0.25)
    assert inter.match_ratio_cant_tell_as_miss == pytest.approx(0.75)
    assert inter.n == 4 and inter.n_answered == 3
    cell = by(res.count.by_variant_object_count, variant="a-early", object="bus", count=3)
    assert cell.mean_abs_error == pytest.approx(1.0) and cell.match_ratio == 0.5


def test_preference_statistics_by_hand(small_table):
    res = analyze(small_table, n_boot=200)
    pref = {r.variant: r for r in res.preference.by_variant}
    # rank 1 scores 2, rank 2 scores 1; rankings: (2,1), (1,2), (2,1); one skip
    assert pref["a-early"].score == pytest.approx(4 / 3)
    assert pref["a-intermediate"].score == pytest.approx(5 / 3)
    assert pref["a-early"].n == 3 and pref["a-early"].n_shown == 4
    assert res.preference.ranking_skip_rate == pytest.approx(0.25)
    assert res.preference.skip_reasons == {"cannot decide": 1}
    # two variants: Plackett-Luce is the share of first places
    assert pref["a-intermediate"].pl_strength == pytest.approx(2 / 3, abs=1e-6)


def test_raters_per_variant_count_those_with_a_counted_answer_or_a_ranking():
    rows = [crow("e1", "i1", "a-early", 2, 2), crow("e2", "i1", "a-early", 2, 3),
            crow("e3", "i1", "a-early", 2, None),  # can't tell only: no counted answer
            crow("e1", "i2", "a-intermediate", 2, 2), crow("e2", "i2", "a-intermediate", 2, None),
            *rrows("e1", "r1", (2, 1)), *rrows("e2", "r1", (0, 0), skipped=True),
            *rrows("e3", "r2", (1, 2))]
    res = analyze(responses_from_rows(rows), n_boot=50)
    count = {r.variant: r.n_raters for r in res.count.by_variant}
    assert count == {"a-early": 2, "a-intermediate": 1}
    cell = by(res.count.by_variant_object_count, variant="a-early", object="bus", count=2)
    assert cell.n_raters == 2
    assert {r.variant: r.n_raters for r in res.preference.by_variant} == {v: 2 for v in V}


def test_the_few_raters_warning_names_its_threshold_and_stays_quiet_above_it():
    from evalstudy.analysis.result import FEW_RATERS, few_raters_warning
    assert f"Fewer than {FEW_RATERS} raters" in few_raters_warning([FEW_RATERS - 1, 50])
    assert few_raters_warning([FEW_RATERS, 50]) == ""
    assert few_raters_warning([None, None]) == "" and few_raters_warning([]) == ""


def test_result_is_strict_json_and_deterministic(small_table):
    a = analyze(small_table, n_boot=100, seed=3)
    json.dumps(a.to_dict(), allow_nan=False)
    assert a == analyze(small_table, n_boot=100, seed=3)
    assert {f.name for f in dataclasses.fields(a)} >= {
        "count", "preference", "tests", "agreement", "evaluators", "exclusions", "unfiltered", "data", "settings"}


@functools.cache
def _simulated_study():
    proto = synthetic_protocol(["c-early", "c-intermediate", "x-early", "x-intermediate"],
                               images_per_prompt=2, n_captions=12, n_evaluators=12, overlap=3,
                               gold=2, repeats=2,
                               exclusions={"min_gold_accuracy": 0.5, "min_median_seconds": 1.5})
    sim = RaterSimulator({"c-early": 0.5, "c-intermediate": 0.7, "x-early": 0.6,
                          "x-intermediate": 0.8}, careless=0.25, seed=11)
    return proto, simulate_study(sim, proto)


@pytest.fixture(scope="module")
def simulated():
    return _simulated_study()


def _relabelled(table: ResponseTable, seed: int) -> ResponseTable:
    ids = sorted(set(table["evaluator_id"].tolist()))
    new = ids[:]
    random.Random(seed).shuffle(new)
    mapping = {a: f"z{b}" for a, b in zip(ids, new, strict=True)}
    cols = dict(table.columns)
    cols["evaluator_id"] = np.array([mapping[e] for e in table["evaluator_id"].tolist()])
    order = np.random.default_rng(seed).permutation(len(table))
    return ResponseTable({k: v[order] for k, v in cols.items()})


def _strip_ids(res):
    res = res.to_dict()
    res.pop("evaluators")
    res["exclusions"] = {k: v for k, v in res["exclusions"].items() if k != "excluded"}
    return res


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10 ** 6))
def test_relabelling_evaluators_and_shuffling_rows_changes_nothing(seed):
    proto, table = _simulated_study()
    a = analyze(table, proto, n_boot=150)
    b = analyze(_relabelled(table, seed), proto, n_boot=150)
    assert _strip_ids(a) == _strip_ids(b)
    assert a.exclusions.n_excluded == b.exclusions.n_excluded


@settings(max_examples=15, deadline=None)
@given(truths=st.lists(st.integers(1, 5), min_size=2, max_size=12),
       n_ev=st.integers(1, 4))
def test_a_perfect_rater_has_error_zero_and_match_one(truths, n_ev):
    rows = [crow(f"e{e}", f"i{k}", V[k % 2], t, t, seed=k)
            for k, t in enumerate(truths) for e in range(n_ev)]
    res = analyze(responses_from_rows(rows), n_boot=50)
    for rec in res.count.by_variant + res.count.by_variant_object_count:
        assert rec.mean_abs_error == 0 and rec.match_ratio == 1
        assert rec.mean_abs_error_ci in ([0.0, 0.0], [None, None])


def test_exclusions_remove_careless_evaluators_and_keep_unfiltered_beside(simulated):
    proto, table = simulated
    res = analyze(table, proto, n_boot=200)
    ex = res.exclusions
    assert ex.applied and ex.n_excluded >= 1
    flagged = {r.evaluator_id for r in res.evaluators if r.excluded}
    assert flagged == {e.evaluator_id for e in ex.excluded}
    assert res.data.n_evaluators == 12 - ex.n_excluded
    assert res.unfiltered.data.n_evaluators == 12
    off = analyze(table, proto, n_boot=200, exclusions=False)
    assert off.count == off.unfiltered.count == res.unfiltered.count
    assert not off.exclusions.applied
    assert off.exclusions.excluded == ex.excluded  # still listed, not applied


def test_paired_tests_secondary_wilcoxon_is_on_prompt_and_seed_means(simulated):
    proto, table = simulated
    res = analyze(table, proto, n_boot=200, exclusions=False)
    rec = by(res.tests.paired, task="count", measure="mean_abs_error", a="c-intermediate")
    main = (table["task"] == "count") & ~table["is_gold"] & (table["repeat_of"] == "")
    means: dict[tuple, dict[str, list[float]]] = {}
    for v in ("c-intermediate", "c-early"):
        rows = main & (table["variant"] == v) & np.isfinite(table["answer_count"])
        for prompt, seed, err in zip(table["prompt"][rows], table["seed"][rows],
                                     np.abs(table["answer_count"][rows]
                                            - table["true_count"][rows]), strict=True):
            means.setdefault((prompt, seed), {}).setdefault(v, []).append(err)
    d = np.array([np.mean(m["c-intermediate"]) - np.mean(m["c-early"])
                  for m in means.values() if len(m) == 2])
    assert rec.n_pairs == len(d)
    assert rec.mean_paired_difference == pytest.approx(d.mean())
    nz = d[d != 0]
    if len(np.unique(np.abs(nz))) == len(nz):
        assert rec.p_wilcoxon_items == pytest.approx(sps.wilcoxon(nz, method="exact").pvalue)
    assert rec.p_holm >= rec.p_value
    lo, hi = rec.difference_ci
    assert lo <= rec.difference <= hi


def test_friedman_is_scipys_on_item_mean_ranks(simulated):
    proto, table = simulated
    res = analyze(table, proto, n_boot=100, exclusions=False)
    rank = (table["task"] == "rank") & ~table["skipped"] & (table["repeat_of"] == "")
    items = sorted(set(table["item_id"][rank].tolist()))
    blocks = np.array([[table["rank"][rank & (table["item_id"] == i)
                                      & (table["variant"] == v)].mean()
                        for v in proto.variants] for i in items])
    ref = sps.friedmanchisquare(*blocks.T)
    fr = present(res.tests.friedman)
    assert fr.statistic == pytest.approx(ref.statistic)
    assert fr.p_value == pytest.approx(ref.pvalue)
    assert fr.w_between_captions == pytest.approx(ref.statistic / (len(items) * 3))


def test_position_bias_is_found_when_present_and_not_otherwise():
    proto = synthetic_protocol(["a", "b", "c", "d"], objects=(), n_captions=60,
                               n_evaluators=20, overlap=8)
    quality = {"a": 0.5, "b": 0.6, "c": 0.7, "d": 0.8}
    biased = simulate_study(RaterSimulator(quality, position_bias=(0.6, 0, 0, 0), seed=1), proto)
    fair = simulate_study(RaterSimulator(quality, seed=1), proto)
    p_biased = present(analyze(biased, proto, n_boot=50).tests.position_bias)
    p_fair = present(analyze(fair, proto, n_boot=50).tests.position_bias)
    assert p_biased.p_value == pytest.approx(1 / (1 + p_biased.n_permutations))
    assert p_fair.p_value is not None and p_fair.p_value > 0.01
    ranks = [present(r) for r in p_biased.mean_rank_by_position]  # every position was shown
    assert ranks[0] < min(ranks[1:])


def test_auto_counter_agreement_when_the_column_is_present():
    rows = [crow("e1", f"i{k}", V[k % 2], 1 + k % 5, 1 + k % 5, seed=k,
                 auto_count=1 + k % 5 + (k % 3 == 0)) for k in range(30)]
    ag = present(analyze(responses_from_rows(rows), n_boot=50).agreement.auto_counter)
    assert ag.n == 30
    assert ag.mean_abs_difference == pytest.approx(10 / 30)
    assert ag.quadratic_weighted_kappa is not None and 0 < ag.quadratic_weighted_kappa < 1


def test_agreement_alpha_is_one_when_evaluators_agree():
    rows = [crow(f"e{e}", f"i{k}", V[k % 2], 1 + k % 5, 1 + (k * 7) % 5, seed=k)
            for k in range(20) for e in range(3)]
    ag = analyze(responses_from_rows(rows), n_boot=50).agreement
    assert present(ag.count_alpha_interval).alpha == pytest.approx(1.0)


def test_count_error_alpha_does_not_move_with_the_spread_of_the_true_counts():
    """The same raters' errors on a design of 5 objects only and on one of 1 to 10: the
    counts' alpha rises with the spread of the true counts, the errors' alpha is the same."""
    def errors(e, k):  # image k is miscounted by one by everyone now and then, plus noise
        return int(k % 4 == 0) + int((e + 2 * k) % 5 == 0)

    def agreement(true_of):
        rows = [crow(f"e{e}", f"i{k}", V[k % 2], true_of(k), true_of(k) + errors(e, k), seed=k)
                for k in range(24) for e in range(3)]
        return analyze(responses_from_rows(rows), n_boot=50).agreement

    narrow, wide = agreement(lambda k: 5), agreement(lambda k: 1 + k % 10)
    assert present(narrow.count_alpha_errors).alpha == pytest.approx(present(wide.count_alpha_errors).alpha)
    assert present(narrow.count_alpha_errors).alpha == pytest.approx(present(narrow.count_alpha_interval).alpha)
    assert present(wide.count_alpha_interval).alpha > present(wide.count_alpha_errors).alpha + 0.3


def test_unknown_variant_for_the_protocol_is_an_error(small_table):
    proto = synthetic_protocol(["x-early", "x-intermediate"], n_captions=2)
    with pytest.raises(ValueError, match="not in the protocol"):
        analyze(small_table, proto, n_boot=50)


def test_the_result_is_typed_and_its_json_reads_back(small_table):
    from evalstudy.analysis import SCHEMA_VERSION, AnalysisResult, SchemaError

    res = analyze(small_table, n_boot=100)
    assert isinstance(res, AnalysisResult) and res.schema_version == SCHEMA_VERSION
    early = next(r for r in res.count.by_variant if r.variant == "a-early")
    assert early.mean_abs_error == pytest.approx(0.75) and len(early.mean_abs_error_ci) == 2
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["count"]["by_variant"][0]["mean_abs_error_ci"] == list(
        res.count.by_variant[0].mean_abs_error_ci)
    assert AnalysisResult.from_dict(doc) == res
    with pytest.raises(SchemaError, match="version"):
        AnalysisResult.from_dict({**doc, "schema_version": 1})
    renamed = json.loads(json.dumps(doc))
    renamed["preference"]["skip_rate"] = renamed["preference"].pop("ranking_skip_rate")
    with pytest.raises(SchemaError, match="skip_rate"):
        AnalysisResult.from_dict(renamed)


def _count_crowd(offset_of_rater0: int, rng) -> ResponseTable:
    """12 raters x 20 prompt-and-seed units x variants a and b, every rater answers every
    image: off by one now and then, and rater 0 off by `offset_of_rater0` on variant a's images."""
    cols: dict[str, list] = {k: [] for k in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                                              "true_count", "answer_count", "seed", "rank", "skipped",
                                              "skip_reason", "position", "seconds", "is_gold")}
    for r in range(12):
        for u in range(20):
            true = 2 + u % 4
            for v in ("a", "b"):
                answer = true + (rng.random() < 0.3) * rng.choice([-1, 1])
                if r == 0 and v == "a":
                    answer = true + offset_of_rater0
                for k, x in (("task", "count"), ("item_id", f"img-{u}-{v}"), ("evaluator_id", f"r{r}"),
                             ("variant", v), ("prompt", f"{true} cats p{u}"), ("object", "cat"),
                             ("true_count", true), ("answer_count", answer), ("seed", u),
                             ("rank", np.nan), ("skipped", False), ("skip_reason", ""),
                             ("position", np.nan), ("seconds", 5.0), ("is_gold", False)):
                    cols[k].append(x)
    return table_from_columns({k: np.array(v) for k, v in cols.items()})


def test_a_rater_who_alone_moves_a_variants_mean_error_is_noted():
    from evalstudy.analysis.count import RATER_INFLUENCE_NOTE
    rng = np.random.default_rng(0)
    noted = analyze(_count_crowd(4, rng), n_boot=50).count.rater_note
    assert noted == RATER_INFLUENCE_NOTE.format(variants="a")
    assert analyze(_count_crowd(0, rng), n_boot=50).count.rater_note == ""
