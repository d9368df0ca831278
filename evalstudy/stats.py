"""Statistical building blocks, each a pure function of arrays.

Agreement: Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability"), Kendall's W, quadratic weighted kappa. Tests: Wilcoxon
signed-rank (exact null by enumeration of sign flips, with mid-ranks), Friedman,
Holm's step-down correction, Nemenyi's post-hoc test. Position bias: a permutation
test within items. The rank models (Plackett-Luce, Davidson) are in evalstudy.rank_models.

A test returns a frozen result record (`WilcoxonResult`, `FriedmanResult`, `NemenyiResult`,
`PositionTestResult`), read by attribute, as scipy's tests return theirs: the analysis copies
the numbers into its own versioned records (evalstudy.analysis.result), so these are never
stored and have no JSON form of their own.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _matrix(x: ArrayLike, rows: str, columns: str) -> np.ndarray:
    """x as a float (rows x columns) matrix; ValueError naming the layout otherwise."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"expected a {rows} x {columns} matrix, got shape {a.shape}")
    return a


def _same_length(**arrays: ArrayLike) -> None:
    """ValueError naming the arguments when 1-D inputs that pair up differ in length."""
    lengths = {name: len(np.atleast_1d(np.asarray(a))) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("lengths differ: " + ", ".join(f"{k} has {n}" for k, n in lengths.items()))


# ---------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------

def krippendorff_alpha(reliability_data: ArrayLike, level: str = "interval") -> float:
    """Alpha for a coders x units matrix (Krippendorff's layout), NaN = missing."""
    data = _matrix(reliability_data, "coders", "units")
    coders, units = np.nonzero(np.isfinite(data))
    return krippendorff_alpha_long(units, data[coders, units], level)


def krippendorff_alpha_long(unit: ArrayLike, value: ArrayLike, level: str = "interval") -> float:
    """Alpha from long data: one (unit, value) pair per coder's judgment.

    Units with fewer than two values are not pairable and drop out. Returns NaN
    when no disagreement is expected (fewer than two pairable values, or all equal).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    _same_length(unit=unit, value=value)
    unit = np.asarray(unit)
    value = np.asarray(value, dtype=float)
    keep = np.isfinite(value)
    unit, value = unit[keep], value[keep]
    _, u = np.unique(unit, return_inverse=True)
    cats, c = np.unique(value, return_inverse=True)
    m = np.bincount(u)
    pairable = m[u] >= 2
    if pairable.sum() < 2 or len(cats) < 2:
        return math.nan
    n_units, n_cats = len(m), len(cats)
    counts = np.zeros((n_units, n_cats))
    np.add.at(counts, (u[pairable], c[pairable]), 1.0)
    w = np.where(m >= 2, 1.0 / np.maximum(m - 1, 1), 0.0)
    # Coincidences: o_ck = sum_u (n_uc n_uk - [c == k] n_uc) / (m_u - 1)
    o = counts.T @ (counts * w[:, None])
    o -= np.diag((counts * w[:, None]).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    delta2 = _delta2(cats, n_c, level)
    d_o = (o * delta2).sum() / n
    d_e = (np.outer(n_c, n_c) * delta2).sum() / (n * (n - 1))
    if d_e == 0:
        return math.nan
    return float(1.0 - d_o / d_e)


def _delta2(cats: np.ndarray, n_c: np.ndarray, level: str) -> np.ndarray:
    ci, ki = np.meshgrid(cats, cats, indexing="ij")
    if level == "nominal":
        return (ci != ki).astype(float)
    if level == "interval":
        return (ci - ki) ** 2
    if level == "ratio":
        s = ci + ki
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(s == 0, 0.0, ((ci - ki) / np.where(s == 0, 1, s)) ** 2)
    # ordinal: (sum_{g=c}^{k} n_g - (n_c + n_k) / 2)^2 over categories in value order
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    idx = np.arange(len(cats))
    lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
    between = cum[hi + 1] - cum[lo]
    return (between - (n_c[lo] + n_c[hi]) / 2.0) ** 2


def _rank_rows(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based) within each row."""
    return sps.rankdata(x, axis=1)


def _tie_term(values: np.ndarray) -> float:
    """sum over rows and tie groups of (t^3 - t), t the size of a group of equal values."""
    x = np.sort(np.asarray(values, dtype=float), axis=1)
    if x.size == 0:
        return 0.0
    starts = np.ones(x.shape, dtype=bool)
    starts[:, 1:] = x[:, 1:] != x[:, :-1]
    t = np.bincount(np.cumsum(starts.ravel()) - 1).astype(float)
    return float((t ** 3 - t).sum())


def kendall_w(scores: ArrayLike) -> float:
    """Kendall's coefficient of concordance for an m judges x k objects array.

    Each judge's scores are turned into mid-ranks; the tie correction is applied.
    W = 12 S / (m^2 (k^3 - k) - m T).
    """
    x = _matrix(scores, "judges", "objects")
    m, k = x.shape
    if m < 2 or k < 2:
        return math.nan
    r = _rank_rows(x)
    totals = r.sum(axis=0)
    s = float(((totals - totals.mean()) ** 2).sum())
    denom = m ** 2 * (k ** 3 - k) - m * _tie_term(r)
    return math.nan if denom == 0 else 12.0 * s / denom


def quadratic_weighted_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's kappa with quadratic weights for two integer ratings of the same units;
    the categories are every integer from the smallest to the largest value seen (computed over
    the distinct values seen, which gives the same kappa). NaN is a
    missing rating (the unit drops out); anything else that is not an integer is an error."""
    _same_length(a=a, b=b)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    for name, x in (("a", a), ("b", b)):
        given = x[~np.isnan(x)]
        if not (np.isfinite(given) & (given == np.round(given))).all():
            raise ValueError(f"{name}: ratings must be integers (NaN for missing), got "
                             f"{given[~(np.isfinite(given) & (given == np.round(given)))][:3].tolist()}")
    keep: NDArray[np.bool_] = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep].astype(int), b[keep].astype(int)
    if len(a) == 0:
        return math.nan
    # The table over the distinct values seen, weights (x_i - x_j)^2: the same kappa as over
    # every integer in between (a value nobody gave has an empty row and column), without a
    # table sized by the largest value (one typed 100000 asked for 80 GB).
    values, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = len(values)
    if k < 2:
        return math.nan
    observed = np.zeros((k, k))
    np.add.at(observed, (codes[:len(a)], codes[len(a):]), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    x = values.astype(float)
    weights = (x[:, None] - x[None, :]) ** 2
    denom = (weights * expected).sum()
    return math.nan if denom == 0 else float(1.0 - (weights * observed).sum() / denom)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def holm(p_values: ArrayLike) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count); a p-value
    outside [0, 1] is an error."""
    p = np.asarray(p_values, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[(p < 0) | (p > 1)].tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for j, idx in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[idx]))
        out[idx] = running
    return out.tolist()


def _signed_rank_null(doubled_ranks: np.ndarray) -> np.ndarray:
    """P(T2 = t) for t = 0..sum, T2 = sum of the doubled ranks that get a + sign,
    every sign pattern equally likely (the exact permutation distribution)."""
    total = int(doubled_ranks.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for r in doubled_ranks.astype(int):
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[: total + 1 - r]
        dist = 0.5 * (dist + shifted)
    return dist


@dataclass(frozen=True)
class WilcoxonResult:
    """`wilcoxon_signed_rank`'s answer.

    n_pairs: finite differences (pairs present); n_nonzero: those not 0, the test's n.
    statistic: T+, the sum of the mid-ranks of the positive differences (NaN with no
    non-zero difference). p_value: two-sided (NaN likewise). method: "exact" (the sign-flip
    distribution), "normal" (the tie-corrected normal approximation) or None (no test).
    z: the standardized T+ of the normal approximation; None unless method is "normal".
    """

    n_pairs: int
    n_nonzero: int
    statistic: float
    p_value: float
    method: str | None
    z: float | None = None


def wilcoxon_signed_rank(differences: ArrayLike, exact_max_n: int = 50) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of symmetry about 0.

    Zero differences are dropped (Wilcoxon's convention); ties get mid-ranks.
    With at most `exact_max_n` non-zero differences the p-value is exact: the
    share of the 2^n sign flips whose rank sum is at least as far from its mean
    as observed (ties included, so it is an exact permutation test). Beyond that
    a normal approximation with the tie-corrected variance, no continuity
    correction. `statistic` is T+, the sum of the ranks of positive differences.
    NaN is a missing pair and drops out; an infinite difference is an error.
    """
    d = np.asarray(differences, dtype=float)
    if np.isinf(d).any():
        raise ValueError(f"differences must be finite (NaN for a missing pair), got "
                         f"{int(np.isinf(d).sum())} infinite value(s)")
    d = d[np.isfinite(d)]
    n_pairs = len(d)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return WilcoxonResult(n_pairs=n_pairs, n_nonzero=0, statistic=math.nan, p_value=math.nan, method=None)
    ranks = sps.rankdata(np.abs(d))
    t_plus = float(ranks[d > 0].sum())
    mean = float(ranks.sum()) / 2.0
    if n <= exact_max_n:
        doubled = np.rint(2 * ranks).astype(int)
        dist = _signed_rank_null(doubled)
        t2 = np.arange(len(dist))
        far = np.abs(t2 - 2 * mean) >= abs(2 * t_plus - 2 * mean) - 1e-9
        return WilcoxonResult(n_pairs=n_pairs, n_nonzero=n, statistic=t_plus,
                              p_value=float(min(1.0, dist[far].sum())), method="exact")
    _, t = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((t ** 3 - t).sum()) / 48.0
    z = (t_plus - mean) / math.sqrt(var) if var > 0 else 0.0
    return WilcoxonResult(n_pairs=n_pairs, n_nonzero=n, statistic=t_plus,
                          p_value=float(2 * sps.norm.sf(abs(z))), method="normal", z=z)


@dataclass(frozen=True)
class FriedmanResult:
    """`friedman`'s answer.

    n_blocks, k: the array's blocks (rows) and treatments (columns). statistic: the
    tie-corrected chi-square on k - 1 df; p_value: its upper tail (both NaN with fewer than
    one block or two treatments, or when every block is all ties). mean_ranks: per
    treatment, its mean within-block rank (1 = smallest value; NaN where no test).
    """

    n_blocks: int
    k: int
    statistic: float
    p_value: float
    mean_ranks: tuple[float, ...]


def friedman(data: ArrayLike) -> FriedmanResult:
    """Friedman's test for a blocks x treatments array (values ranked within blocks,
    mid-ranks for ties, tie-corrected statistic, chi-square with k - 1 df).
    `mean_ranks` are the treatments' mean within-block ranks (1 = smallest value)."""
    x = _matrix(data, "blocks", "treatments")
    n, k = x.shape
    if n < 1 or k < 2:
        return FriedmanResult(n_blocks=n, k=k, statistic=math.nan, p_value=math.nan, mean_ranks=(math.nan,) * k)
    r = _rank_rows(x)
    totals = r.sum(axis=0)
    mean_ranks = tuple(float(v) for v in totals / n)
    chi2 = 12.0 / (n * k * (k + 1)) * float((totals ** 2).sum()) - 3.0 * n * (k + 1)
    correction = 1.0 - _tie_term(r) / (n * k * (k * k - 1))
    if correction <= 0:
        return FriedmanResult(n_blocks=n, k=k, statistic=math.nan, p_value=math.nan, mean_ranks=mean_ranks)
    chi2 /= correction
    return FriedmanResult(n_blocks=n, k=k, statistic=chi2, p_value=float(sps.chi2.sf(chi2, k - 1)),
                          mean_ranks=mean_ranks)


@dataclass(frozen=True)
class NemenyiComparison:
    """One pair of `nemenyi`: treatments i < j (indices into the mean ranks given),
    R_i - R_j, and the pair's p-value from the studentized range."""

    i: int
    j: int
    mean_rank_difference: float
    p_value: float


@dataclass(frozen=True)
class NemenyiResult:
    """`nemenyi`'s answer: the critical difference of mean ranks at the alpha given (two
    mean ranks further apart differ), and every pair, in itertools.combinations order."""

    critical_difference: float
    pairs: tuple[NemenyiComparison, ...]


def nemenyi(mean_ranks: ArrayLike, n_blocks: int, alpha: float = 0.05) -> NemenyiResult:
    """Nemenyi's all-pairs test after Friedman: |R_i - R_j| / sqrt(k(k+1)/(6n)) is
    compared with the studentized range (k groups, infinite df) divided by sqrt 2."""
    r = np.asarray(mean_ranks, dtype=float)
    k = len(r)
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
    se = math.sqrt(k * (k + 1) / (6.0 * n_blocks))
    q_crit = float(sps.studentized_range.ppf(1 - alpha, k, np.inf))
    pairs = []
    for i, j in itertools.combinations(range(k), 2):
        z = abs(r[i] - r[j]) / se
        pairs.append(NemenyiComparison(i=i, j=j, mean_rank_difference=float(r[i] - r[j]),
                                       p_value=float(sps.studentized_range.sf(z * math.sqrt(2), k, np.inf))))
    return NemenyiResult(critical_difference=q_crit / math.sqrt(2) * se, pairs=tuple(pairs))


# ---------------------------------------------------------------------------
# Position bias
# ---------------------------------------------------------------------------

PERMUTATION_CHUNK = 200  # permutations per block: bounds memory at chunk x rankings x layouts


@dataclass(frozen=True)
class PositionTestResult:
    """`position_permutation_test`'s answer: the F-type statistic (a sum of squares of
    ranks), its permutation p-value, (1 + #{T_perm >= T}) / (1 + n_permutations), both NaN
    with fewer than two rankings or two variants, and the permutations and rankings used."""

    statistic: float
    p_value: float
    n_permutations: int
    n_rankings: int


def _caption_means(values: np.ndarray, caption: np.ndarray, n_captions: int) -> np.ndarray:
    """Each row's caption mean of `values` (N, ...), captions given as codes 0..C-1."""
    sums = np.zeros((n_captions, *values.shape[1:]))
    np.add.at(sums, caption, values)
    return (sums / np.bincount(caption, minlength=n_captions).reshape(-1, *[1] * (values.ndim - 1)))[caption]


def _by_codes(values: np.ndarray, code: np.ndarray, n_codes: int) -> np.ndarray:
    """Sums of the rows of `values` (N, ...) per code 0..n_codes-1."""
    sums = np.zeros((n_codes, *values.shape[1:]))
    np.add.at(sums, code, values)
    return sums


def position_permutation_test(ranks: ArrayLike, positions: ArrayLike, item: ArrayLike, evaluator: ArrayLike,
                              n_perm: int, rng: np.random.Generator) -> PositionTestResult:
    """Does the screen position change the rank? A permutation test that respects the design.

    ranks, positions: (N, m) per ranking and variant (rank 1 = best; screen position
    0..m-1); item, evaluator: (N,) codes of each ranking's caption and evaluator.

    Model: rank of variant v in ranking k = caption effect (per variant) + evaluator effect
    (per variant) + position effect + noise. Statistic: the F-type quadratic form for the
    m - 1 position contrasts in that least-squares fit, T = b' G^+ b, with b_p the sum of
    the residual ranks (after the exact two-way fit per variant) of the images shown at p,
    and G their covariance up to the noise variance: the position indicators' Gram matrix
    after the same fit. Null distribution: the layouts (which variant went where) permuted
    among the rankings of each caption, `n_perm` times, T recomputed with the permuted
    layouts' own G; p = (1 + #{T_perm >= T}) / (1 + n_perm).

    Why G is recomputed: the Williams plan balances layouts within every evaluator and
    every caption, so the observed position indicators are nearly orthogonal to both
    fits and b keeps the noise's full variance; a permutation within captions breaks the
    balance within evaluators, and the evaluator fit then absorbs part of the permuted
    b's variance. Sums of residuals alone (G ignored) therefore make the permuted
    statistics too small and the test liberal (rejection rate 0.066 at alpha 0.05 under
    no bias); normalising each by its own G puts observed and permuted statistics on one
    scale. Measured sizes across crowds: bench/position_test.py.
    """
    ranks = np.asarray(ranks, dtype=float)
    positions = np.asarray(positions, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    evaluator = np.asarray(evaluator, dtype=np.int64)
    n, m = ranks.shape
    if n < 2 or m < 2:
        return PositionTestResult(statistic=math.nan, p_value=math.nan, n_permutations=int(n_perm),
                                  n_rankings=int(n))
    # The fit splits into caption means (H_C) and the evaluator indicators with their
    # caption means removed (E~ = (I - H_C) E), orthogonal to them; E~'E~ (evaluators x
    # evaluators) is all a permutation within captions needs to see, since it keeps every
    # caption's layouts and so everything H_C gives.
    _, cap = np.unique(item, return_inverse=True)
    _, ev = np.unique(evaluator, return_inverse=True)
    cap, ev = cap.ravel(), ev.ravel()
    n_cap, n_ev = int(cap.max()) + 1, int(ev.max()) + 1
    per_cap = np.bincount(cap, minlength=n_cap).astype(float)
    ev_onehot_by_cap = _by_codes(np.eye(n_ev)[ev], cap, n_cap)         # (C, E) rankings
    etilde_gram = np.diag(np.bincount(ev, minlength=n_ev).astype(float)) - (
        ev_onehot_by_cap.T @ (ev_onehot_by_cap / per_cap[:, None]))   # E~'E~
    inv_gram = np.linalg.pinv(etilde_gram, rcond=1e-10, hermitian=True)  # singular: 1 is in H_C
    centred = ranks - _caption_means(ranks, cap, n_cap)                # (I - H_C) y
    beta = inv_gram @ _by_codes(centred, ev, n_ev)                     # (E, m)
    resid = centred - beta[ev] + _caption_means(beta[ev], cap, n_cap)  # exact two-way fit

    layouts, layout_code = np.unique(positions, axis=0, return_inverse=True)
    layout_code = layout_code.ravel()
    n_layouts = len(layouts)
    # onehot[l, v, p] = 1 where layout l shows variant v at position p
    onehot = np.zeros((n_layouts, m, m))
    onehot[np.arange(n_layouts)[:, None], np.arange(m)[None, :], layouts] = 1.0
    by_layout = np.einsum("kv,lvp->klp", resid, onehot)                # (N, L, m)
    # Position contrasts: an orthonormal basis of the vectors over positions summing to 0
    # (a layout puts every variant somewhere, so the constant is in the fit).
    contrast = np.linalg.svd(np.eye(m) - 1.0 / m)[0][:, : m - 1]       # (m, m - 1)
    # What a permutation within captions keeps: every caption's count of each layout, so
    # the layout indicators' H_C products (k_cap) and their caption-mean part of E~'x.
    layouts_by_cap = _by_codes(np.eye(n_layouts)[layout_code], cap, n_cap)  # (C, L)
    k_cap = layouts_by_cap.T @ (layouts_by_cap / per_cap[:, None])     # (L, L)
    ev_from_cap = ev_onehot_by_cap.T @ (layouts_by_cap / per_cap[:, None])  # (E, L)
    # The fit's Gram of "variant v at position p" is sum_v A_v' (K + u' E u) A_v with A_v =
    # onehot[:, v, :] (L, m): the K part is the same for every permutation (computed once),
    # and the u part is taken as (u A_v)' E (u A_v), never forming an (L, L) matrix per
    # permutation (imported files with random layouts have L near the number of rankings).
    gram_cap = np.einsum("lvp,lk,kvq->pq", onehot, k_cap, onehot)       # (m, m)

    def statistics(codes: np.ndarray) -> np.ndarray:                   # codes (B, N)
        n_b = len(codes)
        b = by_layout[np.arange(n)[None, :], codes].sum(axis=1) @ contrast       # (B, m-1)
        # E~' x_l for the indicator x_l of the rankings given layout l: (B, E, L)
        flat = (np.arange(n_b)[:, None] * n_ev + ev[None, :]) * n_layouts + codes
        counts = np.bincount(flat.ravel(), minlength=n_b * n_ev * n_layouts)
        u = counts.reshape(n_b, n_ev, n_layouts) - ev_from_cap[None]
        # x_l' H x_l' over layouts, then the Gram of "variant v at position p" after the fit
        u_a = np.einsum("bel,lvp->bevp", u, onehot)                       # (B, E, m, m)
        fit = np.einsum("bevp,ef,bfvq->bpq", u_a, inv_gram, u_a, optimize=True)
        gram = n * np.eye(m)[None] - gram_cap[None] - fit
        g = contrast.T @ gram @ contrast                                 # (B, m-1, m-1)
        # pinv: a layout the fit explains entirely (e.g. one ranking per caption) adds 0
        return np.einsum("bi,bij,bj->b", b, np.linalg.pinv(g, rcond=1e-10, hermitian=True), b)

    observed = float(statistics(layout_code[None, :])[0])
    _, group = np.unique(item, return_inverse=True)
    order = np.argsort(group, kind="stable")  # slots of each caption's rankings
    exceed = 0
    for start in range(0, n_perm, PERMUTATION_CHUNK):
        b = min(PERMUTATION_CHUNK, n_perm - start)
        # Sorting by caption + U(0, 1) shuffles within each caption.
        shuffled = np.argsort(group[None, :] + rng.random((b, n)), axis=1)
        perm = np.empty((b, n), dtype=np.int64)
        perm[:, order] = shuffled
        exceed += int((statistics(layout_code[perm]) >= observed * (1 - 1e-12) - 1e-12).sum())
    return PositionTestResult(statistic=observed, p_value=(1 + exceed) / (1 + n_perm),
                              n_permutations=int(n_perm), n_rankings=int(n))
