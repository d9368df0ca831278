"""The intervals of analyze(): inside each statistic's range, the paper's definitions, and a
crossed bootstrap whose two crossings both matter; the position-bias test's size.

The crowds here are drawn by this file's own generators, not by evalstudy.simulate, so the
checks do not lean on the model the package was built with.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy import stats
from evalstudy.analysis import analyze
from evalstudy.design import plan_assignments
from evalstudy.responses import responses_from_rows, table_from_columns

V = ["v-early", "v-intermediate"]


def _bounds(ci) -> tuple[float, float]:
    """An interval's two ends, which must both be known."""
    lo, hi = ci
    assert lo is not None and hi is not None, ci
    return lo, hi


# ---------------------------------------------------------------------------
# Every interval inside its statistic's range (hypothesis over small studies)
# ---------------------------------------------------------------------------

def _count_row(ev, item, variant, true, answer, seed):
    return {"task": "count", "item_id": item, "evaluator_id": ev, "variant": variant,
            "prompt": f"{true} cats", "object": "cat", "true_count": true,
            "answer_count": "" if answer is None else answer, "rank": "", "skipped": 0,
            "skip_reason": "", "position": "", "seconds": 4, "is_gold": 0, "seed": seed}


def _rank_rows(ev, item, ranks, positions, skipped):
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": v,
             "prompt": f"caption {item}", "object": "", "true_count": "", "answer_count": "",
             "rank": "" if skipped else r, "skipped": int(skipped),
             "skip_reason": "cannot decide" if skipped else "", "position": p, "seconds": 9,
             "is_gold": 0} for v, r, p in zip(V, ranks, positions, strict=True)]


@st.composite
def small_studies(draw):
    n_ev = draw(st.integers(2, 5))
    n_seeds = draw(st.integers(2, 4))
    rows = []
    for s in range(n_seeds):
        for true in (1, 3):
            for v in V:
                for e in range(n_ev):
                    if draw(st.booleans()) or e < 2:
                        answer = draw(st.one_of(st.none(), st.integers(0, 9)))
                        rows.append(_count_row(f"e{e}", f"{v}-{true}-{s}", v, true, answer, s))
    for c in range(draw(st.integers(0, 4))):
        for e in range(n_ev):
            first = draw(st.booleans())
            rows += _rank_rows(f"e{e}", f"r{c}", (1, 2) if first else (2, 1),
                               (e % 2, 1 - e % 2), draw(st.integers(0, 5)) == 0)
    return rows


def _walk_intervals(result, path=()):
    """(path, estimate, [low, high]) for every `<name>_ci` beside a `<name>`."""
    if isinstance(result, dict):
        for key, value in result.items():
            if key.endswith("_ci") and key[:-3] in result:
                yield path + (key[:-3],), result[key[:-3]], value
            else:
                yield from _walk_intervals(value, path + (key,))
    elif isinstance(result, list):
        for k, value in enumerate(result):
            yield from _walk_intervals(value, path + (k,))


def _errors(rows, **where):
    return [abs(r["answer_count"] - r["true_count"]) for r in rows
            if r["task"] == "count" and r["answer_count"] != ""
            and all(r[k] == v for k, v in where.items())]


@settings(max_examples=40, deadline=None)
@given(rows=small_studies())
def test_every_interval_lies_inside_its_statistics_range(rows):
    res = analyze(responses_from_rows(rows), n_boot=60, seed=1).to_dict()
    seen = 0
    for path, _est, ci in _walk_intervals(res):
        if ci[0] is None:
            continue
        seen += 1
        name = path[-1]
        assert ci[0] <= ci[1], path
        if name in ("match_ratio", "cant_tell_rate", "match_ratio_cant_tell_as_miss",
                    "ranking_skip_rate", "pl_strength", "bt_strength", "win_rate", "tie_rate",
                    "win_rate_ties_half", "a_rate", "b_rate"):
            assert 0.0 <= ci[0] and ci[1] <= 1.0, (path, ci)
        elif name == "bt_tie_parameter":
            assert 0.0 < ci[0], (path, ci)
        elif name == "score":
            assert 1.0 <= ci[0] and ci[1] <= 2.0, (path, ci)
        elif name == "difference":
            # a difference of rates lies in [-1, 1]; of mean errors, anywhere
            bound = math.inf if res_measure(res, path) == "mean_abs_error" else 1.0
            assert -bound <= ci[0] and ci[1] <= bound, (path, ci)
        elif name == "mean_abs_error":
            assert 0.0 <= ci[0], (path, ci)
        else:
            raise AssertionError(f"an interval this test does not know: {path}")
    assert seen or not rows


def res_measure(res, path):
    rec = res
    for key in path[:-1]:
        rec = rec[key]
    return rec["measure"]


def test_a_small_cells_interval_stays_below_its_largest_error():
    # The cell: answers {3, 1, 1, 2, 1, 1} to a true count of 1, errors {2, 0, 0, 1,
    # 0, 0}: mean 0.5, and no interval end past 2 (it was [0.0, 9.42]).
    rows = [_count_row(f"e{k}", f"i{k}", V[0], 1, a, seed=k)
            for k, a in enumerate((3, 1, 1, 2, 1, 1))]
    rows += [_count_row(f"e{k}", f"j{k}", V[1], 1, 1, seed=k) for k in range(6)]
    cell = analyze(responses_from_rows(rows), n_boot=500).count.by_variant_object_count[0]
    assert cell.mean_abs_error == pytest.approx(0.5)
    lo, hi = _bounds(cell.mean_abs_error_ci)
    assert 0.0 <= lo < 0.5 < hi <= 2.0


# ---------------------------------------------------------------------------
# The paper's eq. 9 and eq. 10 over one n
# ---------------------------------------------------------------------------

def test_eq9_and_eq10_share_one_n_and_cant_tell_is_beside_them():
    rng = np.random.default_rng(5)
    rows = []
    for k in range(120):
        true = int(rng.integers(1, 6))
        answer = None if rng.random() < 0.2 else max(0, true + int(rng.integers(-2, 3)))
        rows.append(_count_row(f"e{k % 7}", f"i{k}", V[k % 2], true, answer, seed=k // 2))
    res = analyze(responses_from_rows(rows), n_boot=50)
    for v in V:
        mine = [r for r in rows if r["variant"] == v]
        counted = [r for r in mine if r["answer_count"] != ""]
        n = len(counted)  # the paper's n: the images given a count
        eq9 = sum(abs(r["answer_count"] - r["true_count"]) for r in counted) / n
        eq10 = sum(r["answer_count"] == r["true_count"] for r in counted) / n
        rec = next(r for r in res.count.by_variant if r.variant == v)
        assert rec.n_answered == n
        assert rec.mean_abs_error == pytest.approx(eq9)
        assert rec.match_ratio == pytest.approx(eq10)
        assert rec.cant_tell_rate == pytest.approx(1 - n / len(mine))
        assert rec.match_ratio_cant_tell_as_miss == pytest.approx(eq10 * n / len(mine))


# ---------------------------------------------------------------------------
# Both crossings of the bootstrap matter
# ---------------------------------------------------------------------------

N_UNITS, N_RATERS, DIFFICULTY = 24, 8, {"v-early": 1.0, "v-intermediate": 1.6}


def _p_error(difficulty, noise, variant):
    return 1.0 - np.exp(-0.35 * DIFFICULTY[variant] * difficulty * noise)


def _crossed_study(rng):
    """Every rater counts every image; strong item effects (log-normal difficulty, shared
    by a prompt-and-seed's two images) and strong rater effects (log-normal carelessness).
    A miscount always adds one or two objects."""
    difficulty = np.exp(rng.normal(0.0, 0.8, N_UNITS))
    noise = np.exp(rng.normal(0.0, 0.8, N_RATERS))
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                            "true_count", "answer_count", "rank", "skipped", "skip_reason",
                            "position", "seconds", "is_gold", "seed")}
    for u in range(N_UNITS):
        true = 1 + u % 5
        for v in V:
            wrong = rng.random(N_RATERS) < _p_error(difficulty[u], noise, v)
            size = rng.integers(1, 3, N_RATERS)
            for e in range(N_RATERS):
                for c, x in (("task", "count"), ("item_id", f"{v}/{u}"), ("evaluator_id", f"r{e}"),
                             ("variant", v), ("prompt", f"{true} dogs"), ("object", "dog"),
                             ("true_count", true), ("answer_count", true + wrong[e] * size[e]),
                             ("rank", np.nan), ("skipped", False), ("skip_reason", ""),
                             ("position", np.nan), ("seconds", 5.0), ("is_gold", False),
                             ("seed", u)):
                    cols[c].append(x)
    return table_from_columns(cols)


def test_the_count_intervals_use_the_acceleration_of_their_skewed_errors(monkeypatch):
    """Miscounts only ever add objects, so a mean error is skewed to the right: with the
    BCa acceleration both ends of its interval sit higher than with the acceleration off
    (the analysis must pass it through, not only compute it)."""
    from evalstudy import bootstrap as bs

    table = _crossed_study(np.random.default_rng(12))
    with_accel = analyze(table, n_boot=400, seed=1).count.by_variant
    monkeypatch.setattr(bs, "_acceleration", lambda parts: np.zeros_like(parts.vu))
    without = analyze(table, n_boot=400, seed=1).count.by_variant
    for a, b in zip(with_accel, without, strict=True):
        assert a.mean_abs_error == b.mean_abs_error
        (a_lo, a_hi), (b_lo, b_hi) = _bounds(a.mean_abs_error_ci), _bounds(b.mean_abs_error_ci)
        assert a_lo > b_lo and a_hi > b_hi


def _crossed_truth():
    rng = np.random.default_rng(99)
    d = np.exp(rng.normal(0.0, 0.8, 2_000_000))
    s = np.exp(rng.normal(0.0, 0.8, 2_000_000))
    return {v: float(1.5 * _p_error(d, s, v).mean()) for v in V}


def test_both_crossings_of_the_bootstrap_are_needed_for_coverage_and_width():
    truth = _crossed_truth()
    rng = np.random.default_rng(2024)
    hits, widths = [], []
    estimates: dict[str, list[float]] = {v: [] for v in V}
    diff_hits = []
    for s in range(200):
        res = analyze(_crossed_study(rng), n_boot=300, seed=s)
        for rec in res.count.by_variant:
            lo, hi = _bounds(rec.mean_abs_error_ci)
            hits.append(lo <= truth[rec.variant] <= hi)
            widths.append(hi - lo)
            assert rec.mean_abs_error is not None
            estimates[rec.variant].append(rec.mean_abs_error)
        t = next(t for t in res.tests.paired if t.measure == "mean_abs_error")
        d_truth = truth[t.a] - truth[t.b]
        diff_hits.append(t.difference_ci[0] <= d_truth <= t.difference_ci[1])
    # The width the study-to-study spread predicts: 2 * 1.96 * its standard deviation.
    predicted = np.mean([2 * 1.96 * np.std(estimates[v], ddof=1) for v in V])
    assert 0.85 < np.mean(widths) / predicted < 1.25
    assert 0.90 <= np.mean(hits) <= 0.99
    assert 0.90 <= np.mean(diff_hits) <= 0.99


# ---------------------------------------------------------------------------
# The position-bias test has its nominal size under the Williams design
# ---------------------------------------------------------------------------

def _ranking_study(rng, n_captions=30, n_raters=10, overlap=4, m=4,
                   bias=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rankings laid out by the project's Williams plan; variants differ a lot, captions
    have heavy-tailed effects per variant, raters have strong tastes and some are noisy.
    `bias` is added to the utility of whatever is shown leftmost."""
    plans = plan_assignments([], [f"c{k}" for k in range(n_captions)], n_raters, overlap,
                             int(rng.integers(1 << 30)), n_variants=m)
    quality = np.linspace(0.0, 1.2, m)
    caption = 0.5 * rng.standard_t(3, (n_captions, m))
    taste = rng.normal(0.0, 0.7, (n_raters, m))
    noise = np.where(rng.random(n_raters) < 0.3, 2.0, 0.4)
    ranks, positions, items, raters = [], [], [], []
    for plan in plans:
        for item, layout in plan.positions.items():
            c = int(item[1:])
            pos = np.empty(m, dtype=int)
            pos[np.array(layout)] = np.arange(m)  # layout: variants left to right
            u = (quality + caption[c] + taste[plan.slot] + rng.normal(0, noise[plan.slot], m)
                 + bias * (pos == 0))
            r = np.empty(m)
            r[np.argsort(-u)] = np.arange(1, m + 1)
            ranks.append(r)
            positions.append(pos)
            items.append(c)
            raters.append(plan.slot)
    return np.array(ranks), np.array(positions), np.array(items), np.array(raters)


def test_position_bias_test_rejects_at_its_nominal_rate_when_there_is_no_bias():
    rng = np.random.default_rng(7)
    n_studies = 2000
    p = np.array([stats.position_permutation_test(*_ranking_study(rng), n_perm=99, rng=rng).p_value
                  for _ in range(n_studies)])
    # With 99 permutations p lies on (1 + k) / 100, so p <= alpha has probability alpha
    # exactly under the null; each rate must lie within 3 binomial standard errors of it
    # (0.0146 at 0.05, 0.0268 at 0.20). A test whose permuted statistics are on another
    # scale than the observed one shows it at every level: summing the residuals without
    # the fit's Gram matrix rejected 0.066 at 0.05 and 0.239 at 0.20 in this crowd.
    for alpha in (0.05, 0.20):
        rate = float(np.mean(p <= alpha + 1e-12))
        assert abs(rate - alpha) <= 3 * math.sqrt(alpha * (1 - alpha) / n_studies), (alpha, rate)


@pytest.mark.parametrize("layouts", ["williams", "random"])
def test_position_statistic_is_the_extra_sum_of_squares_of_the_position_effects(layouts):
    """T = b' G^+ b is the drop in the residual sum of squares when position effects join
    the caption x variant and evaluator x variant fit, computed here by least squares on
    the full design matrix (an imported file with random layouts has nearly as many
    layouts as rankings: the path that never forms a layouts x layouts matrix)."""
    rng = np.random.default_rng(21)
    ranks, positions, items, raters = _ranking_study(rng, n_captions=12, n_raters=6, overlap=3, m=4)
    if layouts == "random":
        positions = np.array([rng.permutation(4) for _ in range(len(ranks))])
    n, m = ranks.shape
    rows = np.repeat(np.arange(n), m)
    variant = np.tile(np.arange(m), n)
    y = ranks.ravel()
    n_cap, n_ev = items.max() + 1, raters.max() + 1
    base = np.zeros((n * m, (n_cap + n_ev) * m))
    base[np.arange(n * m), items[rows] * m + variant] = 1.0
    base[np.arange(n * m), (n_cap + raters[rows]) * m + variant] = 1.0
    pos = np.zeros((n * m, m))
    pos[np.arange(n * m), positions.ravel()] = 1.0

    def rss(x):
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        return float(((y - x @ beta) ** 2).sum())

    extra = rss(base) - rss(np.hstack([base, pos]))
    out = stats.position_permutation_test(ranks, positions, items, raters, n_perm=19, rng=rng)
    assert extra > 1e-6 and out.statistic == pytest.approx(extra, rel=1e-8, abs=1e-9)


def test_position_bias_test_finds_a_modest_bias():
    rng = np.random.default_rng(8)
    p = [stats.position_permutation_test(*_ranking_study(rng, bias=0.6), n_perm=199,
                                         rng=rng).p_value for _ in range(20)]
    assert np.mean(np.array(p) <= 0.05) >= 0.8
    assert not math.isnan(p[0])


def test_a_cell_whose_every_image_erred_may_still_have_a_smaller_mean_error():
    # Five images each counted by three raters, every one off by 1 or 2: no resample of the
    # cell's mean leaves [1, 2], but the population's mean error may (audit of 2026-12-07,
    # finding 3: an interval kept inside the observed errors covered 0.917 where the same t
    # interval bounded at 0 covered 0.950). The t interval's lower end goes below 1.
    rows = [_count_row(f"e{(k + r) % 6}", f"i{k}", V[0], 3, 3 + off, seed=k)
            for k, off in enumerate((1, 1, 2, 1, 2)) for r in range(3)]
    rows += [_count_row(f"e{(k + r) % 6}", f"j{k}", V[1], 3, 3, seed=k) for k in range(5) for r in range(3)]
    cell = analyze(responses_from_rows(rows), n_boot=200).count.by_variant_object_count[0]
    assert cell.mean_abs_error == pytest.approx(1.4)
    lo, hi = _bounds(cell.mean_abs_error_ci)
    assert 0.0 <= lo < 1.0 and 1.4 < hi


def test_a_difference_from_an_all_correct_variant_can_hold_zero():
    # The audit's constructed study (finding 2): 8 prompt-and-seed units, 3 of 6 raters each;
    # A is 24 of 24 right, B 23 of 24. The crossed t gives p = 0.39; an interval kept inside
    # the observed range low(A) - high(B) = 0 .. 1 was [0.002, 0.163], leaving out 0.
    rows = []
    rng = np.random.default_rng(0)
    k = 0
    for u in range(8):
        for e in rng.choice(6, 3, replace=False):
            # the default comparison is intermediate - early: A is V[1]
            rows.append(_count_row(f"r{e}", f"A:{u}", V[1], 3, 3, seed=u))
            rows.append(_count_row(f"r{e}", f"B:{u}", V[0], 3, 4 if k == 0 else 3, seed=u))
            k += 1
    res = analyze(responses_from_rows(rows), n_boot=200)
    (test,) = [t for t in res.tests.paired if t.measure == "match_ratio"]
    lo, hi = _bounds(test.difference_ci)
    assert test.difference == pytest.approx(1 / 24)
    assert -1.0 <= lo < 0.0 < 1 / 24 < hi <= 1.0


def test_plackett_luce_intervals_unbias_uneven_rater_loads(monkeypatch):
    """One rater with most of the rankings pulls the strengths towards their taste and
    hides half of their own deviation from a one-way bootstrap over raters: the PL interval
    must divide by the centring factor of the raters' shares (far below (n - 1) / n here),
    so it is wider than with (n - 1) / n in its place."""
    from evalstudy import bootstrap as bs

    rng = np.random.default_rng(8)
    rows = []
    loads = {"heavy": 40, **{f"e{k}": 3 for k in range(6)}}
    caption = 0
    for ev, n in loads.items():
        taste = rng.normal(0.0, 1.0)
        for _ in range(n):
            first = rng.random() < 1.0 / (1.0 + np.exp(-taste))
            rows += _rank_rows(ev, f"r{caption}", (1, 2) if first else (2, 1), (caption % 2, 1 - caption % 2), False)
            caption += 1
    table = responses_from_rows(rows)
    fitted = analyze(table, n_boot=400, seed=2).preference.by_variant
    real = bs.centring_factors

    def equal_shares(key, group, weight, n_groups):
        k = np.asarray(key)
        n = len(np.unique(k))
        return np.full(n_groups, (n - 1) / n) if n > 1 else real(key, group, weight, n_groups)

    monkeypatch.setattr(bs, "centring_factors", equal_shares)
    plain = analyze(table, n_boot=400, seed=2).preference.by_variant
    for a, b in zip(fitted, plain, strict=True):
        assert a.pl_strength == b.pl_strength
        (a_lo, a_hi), (b_lo, b_hi) = _bounds(a.pl_strength_ci), _bounds(b.pl_strength_ci)
        assert a_hi - a_lo > 1.2 * (b_hi - b_lo)


def _paired_count_study(rng, n_units=100, n_raters=8, per_image=3):
    """Both variants' images of a unit share its difficulty; each image is counted by its
    own 3 of 8 raters, whose skill scales every error rate: after pairing, the difference
    is mostly the answers' own noise."""
    d = rng.gamma(2.0, 0.5, n_units)
    skill = np.exp(rng.normal(0.0, 0.5, n_raters))
    unit, ev, var, err = [], [], [], []
    for u in range(n_units):
        for v, rate in ((0, 0.25), (1, 0.18)):
            for e in rng.choice(n_raters, per_image, replace=False):
                unit.append(u)
                ev.append(e)
                var.append(v)
                err.append(float(rng.random() < 1.0 - np.exp(-rate * d[u] * skill[e])))
    return [np.array(x) for x in (unit, ev, var, err)]


def test_a_paired_differences_variance_is_unbiased_not_floored_at_its_one_way_parts():
    """The one-way floor max(Vu', Ve') cuts off the lower half of the noise in a paired
    difference's near-zero evaluator part and made the variance about 1.27 times the
    study-to-study variance here; the unfloored target (with its Cauchy-Schwarz floor)
    is near 1."""
    from evalstudy import bootstrap as bs
    from evalstudy.analysis.significance import _difference_spread

    rng = np.random.default_rng(5)
    targets, estimates = [], []
    for _ in range(1000):
        unit, ev, var, err = _paired_count_study(rng)
        one = np.ones(len(err))
        own = bs.ratio_corrections(unit, ev, var, err, one, 2, 0.95).var
        targets.append(_difference_spread(unit, ev, var, err, one, 0, 1, 0.95, own).var[0])
        estimates.append(err[var == 0].mean() - err[var == 1].mean())
    assert 0.9 < np.mean(targets) / np.var(estimates) < 1.12
