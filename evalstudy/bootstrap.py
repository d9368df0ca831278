"""The crossed (two-way) bootstrap: items and evaluators resampled together.

A resample draws item multiplicities w (multinomial over the items) and,
independently, evaluator multiplicities v; a response of item i by evaluator e
then counts w_i * v_e times (Owen 2007, "The pigeonhole bootstrap"). Every
statistic here is a ratio of weighted sums within groups, so a resample never
needs the responses one by one: `crossed_sums` returns, for all resamples at
once, sum_r w_i(r) v_e(r) x_r per group, using a sparse (cells x evaluators)
matrix times the evaluator weights, then the item weights.

The product weights count the item x evaluator interaction twice over: their
variance is about V_items + V_evaluators + V_cells, while the variance of the
estimate is about V_items + V_evaluators - V_cells (Owen 2007; V_* are the
squared linearised contributions summed by item, by evaluator and by
item x evaluator cell). Uncorrected, the 95% intervals covered 98.5-99.8% of
the time in simulations. `shrink_factors` computes the factor
that brings the spread to the target (with small-sample corrections, see
there) and `intervals` (evalstudy.confidence) moves each percentile end towards (or away from) the
estimate by that factor: the shape of the bootstrap distribution is kept, its
scale fixed. Statistics that are not ratios of sums (Plackett-Luce strengths)
get the same factor from one-way resamples (items only, evaluators only) in
place of the linearisation. Groups of fewer than SMALL_GROUP resampling units (a cell of
five images) get a t interval with the same variance and df instead of percentiles
(`confidence.spread_intervals`): their bootstrap distribution is too lumpy to read tails from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy import stats as sps

CHUNK = 250  # resamples per block: bounds memory at cells x CHUNK floats
SMALL_GROUP = 10  # fewer resampling units than this: t intervals (see confidence.spread_intervals)


def draw_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) multiplicities of n units, each row a multinomial(n, 1/n) draw,
    tallied from n uniform picks per row (much faster than numpy's multinomial)."""
    if n == 0:
        return np.zeros((n_boot, 0))
    picks = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def crossed_sums(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, values: ArrayLike, n_groups: int,
                 w_units: np.ndarray,
                 v_evals: np.ndarray) -> np.ndarray:
    """(B, n_groups): sum over rows r in each group of w[b, unit_r] v[b, eval_r] values_r.

    unit, evaluator, group: integer codes per row; w_units (B, n_units) and
    v_evals (B, n_evals) are multiplicities from `draw_weights` (or ones).
    """
    unit = np.asarray(unit, dtype=np.int64)
    evaluator = np.asarray(evaluator, dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    n_boot = w_units.shape[0]
    out = np.zeros((n_boot, n_groups))
    keep = values != 0
    if not keep.any():
        return out
    unit, evaluator, group, values = unit[keep], evaluator[keep], group[keep], values[keep]
    n_units = w_units.shape[1]
    cell_key = group * n_units + unit
    cells, cell = np.unique(cell_key, return_inverse=True)
    cell_unit = cells % n_units
    cell_group = cells // n_units
    x = sparse.csr_matrix((values, (cell, evaluator)), shape=(len(cells), v_evals.shape[1]))
    g = sparse.csr_matrix((np.ones(len(cells)), (cell_group, np.arange(len(cells)))),
                          shape=(n_groups, len(cells)))
    for start in range(0, n_boot, CHUNK):
        stop = min(start + CHUNK, n_boot)
        y = x @ v_evals[start:stop].T          # (cells, b): evaluator-weighted cell sums
        y *= w_units[start:stop, cell_unit].T  # times the item weights
        out[start:stop] = (g @ y).T
    return out


def ratio_replicates(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per resample and group, NaN where a resample left a group empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _power_sums(group: NDArray[np.int64], key: ArrayLike, z: NDArray[np.float64], n_groups: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group, over the distinct keys (units or evaluators) with rows in it: the sums of
    s^2, s^3 and s^4, s a key's summed contributions z, and how many keys there are."""
    key = np.asarray(key, dtype=np.int64)
    width = int(key.max()) + 1 if len(key) else 1
    combined = group * width + key
    if n_groups * width <= 4_000_000:  # direct tables beat sorting when they are small
        sums = np.bincount(combined, weights=z, minlength=n_groups * width).reshape(n_groups, width)
        present = (np.bincount(combined, minlength=n_groups * width) > 0).reshape(n_groups, width).sum(axis=1)
        return (sums ** 2).sum(axis=1), present, (sums ** 3).sum(axis=1), (sums ** 4).sum(axis=1)
    uniq, inv = np.unique(combined, return_inverse=True)
    sums = np.bincount(inv, weights=z)
    owner = uniq // width
    return (np.bincount(owner, weights=sums ** 2, minlength=n_groups),
            np.bincount(owner, minlength=n_groups),
            np.bincount(owner, weights=sums ** 3, minlength=n_groups),
            np.bincount(owner, weights=sums ** 4, minlength=n_groups))


class _Parts(NamedTuple):
    """The linearised contributions z summed by unit, by evaluator and by cell, per group."""

    vu: np.ndarray  # sum over units of s_u^2
    ve: np.ndarray
    vc: np.ndarray
    nu: np.ndarray  # distinct units (evaluators) with rows in the group
    ne: np.ndarray
    ku: np.ndarray  # effective numbers, see linearised_variances
    ke: np.ndarray
    tu: np.ndarray  # sum over units of s_u^3
    te: np.ndarray
    nc: np.ndarray  # distinct unit x evaluator cells, and their effective number
    kc: np.ndarray


def _parts(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, z: ArrayLike, n_groups: int) -> _Parts:
    unit = np.asarray(unit, dtype=np.int64)
    evaluator = np.asarray(evaluator, dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    z = np.asarray(z, dtype=float)
    n_e = int(evaluator.max()) + 1 if len(evaluator) else 1
    vu, nu, tu, qu = _power_sums(group, unit, z, n_groups)
    ve, ne, te, qe = _power_sums(group, evaluator, z, n_groups)
    vc, nc, _, qc = _power_sums(group, unit * n_e + evaluator, z, n_groups)
    return _Parts(vu, ve, vc, nu, ne, _effective_number(vu, qu, nu), _effective_number(ve, qe, ne),
                  tu, te, nc, _effective_number(vc, qc, nc))


def _effective_number(v: NDArray[np.float64], q: NDArray[np.float64], n: np.ndarray) -> np.ndarray:
    """Satterthwaite's (sum sigma^2)^2 / sum sigma^4 with the observed s^2 in place of
    sigma^2 (v = sum s^2, q = sum s^4): a normal s has E s^4 = 3 sigma^4, hence the 3;
    capped at n."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(n, np.where(q > 0, 3 * v ** 2 / np.where(q > 0, q, 1.0), n))


def _acceleration(p: _Parts) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        v = p.vu + p.ve
        return np.where(v > 0, (p.tu + p.te) / (6.0 * np.where(v > 0, v, 1.0) ** 1.5), 0.0)


def acceleration(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, z: ArrayLike, n_groups: int) -> np.ndarray:
    """BCa's acceleration per group from the linearised contributions z:
    a = (sum_u s_u^3 + sum_e s_e^3) / (6 (sum_u s_u^2 + sum_e s_e^2)^(3/2)), s_u (s_e) a
    unit's (evaluator's) summed contributions: the skewness of the estimate's two
    first-order parts, as Efron's a = sum U^3 / (6 (sum U^2)^(3/2)) is for one sample.
    It is how fast the estimate's standard error grows with the estimate: a rater who
    always counts one too many makes the mean error's distribution skewed to the right,
    and a sample without one looks precise and low (see `intervals`)."""
    return _acceleration(_parts(unit, evaluator, group, z, n_groups))


def linearised_variances(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, z: ArrayLike, n_groups: int
                         ) -> tuple[np.ndarray, ...]:
    """(V_units, V_evaluators, V_cells, n_units, n_evaluators, k_units, k_evaluators, n_cells,
    k_cells) per group from the linearised contributions z. The n are the distinct units and
    evaluators; the k their effective numbers, min(n, 3 (sum s^2)^2 / sum s^4) over the
    units' (evaluators') summed contributions s: n when all contribute alike (normal
    contributions give 3 (sum s^2)^2 / sum s^4 near n), about 3 when one dominates (a
    rare very hard image, a rater who answered hundreds of items)."""
    p = _parts(unit, evaluator, group, z, n_groups)
    return p.vu, p.ve, p.vc, p.nu, p.ne, p.ku, p.ke, p.nc, p.kc


def centring_factors(key: ArrayLike, group: ArrayLike, weight: ArrayLike, n_groups: int) -> np.ndarray:
    """kappa = 1 - 2 sum a^3 / sum a^2 + sum a^2 per group, a the keys' (units' or
    evaluators') shares of the group's summed `weight` (a ratio's denominator).

    The linearised contributions are centred on the estimate, which is itself the
    share-weighted mean of the keys' own ratios, so sum_k s_k^2 estimates kappa times
    the variance it stands for: with keys b_k i.i.d. around the truth,
    E sum a_k^2 (b_k - sum a_j b_j)^2 = sigma^2 (sum a^2 - 2 sum a^3 + (sum a^2)^2)
    against the true sigma^2 sum a^2. With equal shares kappa is (n - 1) / n, the usual
    correction; with uneven loads it is much smaller: a rater with a third of the
    answers pulls the estimate a third of the way towards themselves and hides half of
    their own deviation (kappa near (1 - 1/3)^2). This is the leverage correction of
    cluster-robust variances (Bell and McCaffrey's CR2) in its first-order form. Without
    it the preference score's variance came out 0.78 of the study-to-study variance
    with raters' loads from 2 to hundreds (bench/coverage.py's model)."""
    group = np.asarray(group, dtype=np.int64)
    weight = np.asarray(weight, dtype=float)
    d2, _, d3, _ = _power_sums(group, key, weight, n_groups)  # sums of d^2, d^3 over the keys
    total = np.bincount(group, weights=weight, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = d2 / total ** 2  # sum a^2
        s3 = d3 / total ** 3  # sum a^3
        kappa = 1.0 - 2.0 * s3 / np.where(s2 > 0, s2, 1.0) + s2
    return np.where((total > 0) & (s2 > 0), kappa, np.nan)


def _unbiased(v: np.ndarray, n: np.ndarray, kappa: ArrayLike | None) -> np.ndarray:
    """A part's unbiased variance: v / kappa, kappa = (n - 1) / n where not given."""
    k = (n - 1) / n if kappa is None else np.asarray(kappa, dtype=float)
    return np.where(k > 0, v / np.where(k > 0, k, 1.0), np.nan)


def effective_df(v_units: ArrayLike, v_evals: ArrayLike, n_units: ArrayLike, n_evals: ArrayLike,
                 k_units: ArrayLike | None = None, k_evals: ArrayLike | None = None,
                 c_units: ArrayLike | None = None, c_evals: ArrayLike | None = None,
                 v_cells: ArrayLike | None = None, n_cells: ArrayLike | None = None,
                 k_cells: ArrayLike | None = None, target: ArrayLike | None = None) -> np.ndarray:
    """Satterthwaite degrees of freedom of the variance estimate T = Vu' + Ve' - Vc
    (`shrink_factors`' target), df = 2 T^2 / Var(T), at least 1, at most du + de.

    Each one-way part is a sum over its units (evaluators) with df = k (n - 1) / n, k the
    effective number of contributors (`linearised_variances`; n when not given): n - 1
    when they contribute alike, fewer when a few dominate, as a rare very hard image or
    a rater with hundreds of answers does. So Var(Vu') is about 2 Vu'^2 / du, and so on.

    The parts are not independent: Vu', Ve' and Vc are sums of squares of the same cell
    sums s_c, grouped by unit, by evaluator and not at all. With independent cells,
    Cov(Vu, Vc) = Cov(Ve, Vc) = Cov(Vu, Ve) = Var(Vc) (each is the sum over cells of
    Var(s_c^2)), so Var(T) = Var(Vu') + Var(Ve') - Var(Vc):
        df = T^2 / (Vu'^2 / du + Ve'^2 / de - Vc^2 / dc),
    dc from the cells as du from the units. Where each evaluator has one cell in a group
    (a cell of five images rated by different raters) Ve' is Vc again and their noise
    cancels, leaving the items' df; where cells are many and small (a variant's mean
    over hundreds of answers) the cell term vanishes and the numerator T, not
    Vu' + Ve', makes the df smaller than Welch's: the evaluators' part is then known
    only from a handful of raters. Measured in bench/coverage.py's crowds (200 studies
    each, 8 and 24 raters) with plain t intervals est +- t sqrt(T): Welch's df of
    Vu' + Ve' alone (the previous rule) covered 0.92-0.94 for the preference score and
    0.91-0.95 for a variant's mean error, this one 0.93-0.95 and 0.92-0.95; for cells of
    five images 0.93-0.94 and 0.94-0.96. Treating the three parts as independent (tried
    earlier) made those cells cover 0.98-1.00. The bootstrap's own shape (`intervals`)
    made the intervals of such small cells wider than the t interval (0.97-0.99), so
    groups of fewer than SMALL_GROUP units get the t interval itself (`confidence.spread_intervals`).
    Without the cells (`n_cells` None) the rule is Welch's for Vu' + Ve'.

    With 5 evaluators who answer every item, a paired difference between variants has
    almost no evaluator part left (each evaluator's bias cancels in the difference), and
    this df follows the items' part; a t with min(items, evaluators) - 1 = 4 df made its
    95% interval cover 100% of the time.
    """
    vu, ve = (np.asarray(a, dtype=float) for a in (v_units, v_evals))
    nu, ne = (np.asarray(a, dtype=float) for a in (n_units, n_evals))
    ku = nu if k_units is None else np.asarray(k_units, dtype=float)
    ke = ne if k_evals is None else np.asarray(k_evals, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        du = np.maximum(ku * (nu - 1) / nu, 1.0)
        de = np.maximum(ke * (ne - 1) / ne, 1.0)
        vu2 = _unbiased(vu, nu, c_units)
        ve2 = _unbiased(ve, ne, c_evals)
        denom = vu2 ** 2 / du + ve2 ** 2 / de
        if n_cells is None:
            total = vu2 + ve2
        else:
            vc = np.asarray(v_cells, dtype=float)
            nc = np.asarray(n_cells, dtype=float)
            kc = nc if k_cells is None else np.asarray(k_cells, dtype=float)
            dc = np.maximum(kc * (nc - 1) / nc, 1.0)
            total = (variance_target(vu2, ve2, vc, False) if target is None
                     else np.asarray(target, dtype=float))
            # The floor keeps the df at most du + de (the cancellation is approximate).
            denom = np.maximum(denom - vc ** 2 / dc, total ** 2 / (du + de))
        df = np.where(denom > 0, total ** 2 / np.where(denom > 0, denom, 1.0), du + de)
        return np.clip(df, 1.0, du + de)


def shrink_factors(v_units: ArrayLike, v_evals: ArrayLike, v_cells: ArrayLike, n_units: ArrayLike,
                   n_evals: ArrayLike, level: float, k_units: ArrayLike | None = None,
                   k_evals: ArrayLike | None = None, c_units: ArrayLike | None = None,
                   c_evals: ArrayLike | None = None, n_cells: ArrayLike | None = None,
                   k_cells: ArrayLike | None = None) -> np.ndarray:
    """Factor by which to scale the product-weight bootstrap's spread.

    target = Vu' + Ve' - Vc with Vu' = Vu / kappa_u and Ve' = Ve / kappa_e, kappa the
    centring factors (`centring_factors`: (n-1)/n with equal shares, as a bootstrap
    variance is (n-1)/n of the unbiased one; less with uneven loads), over the product
    weights' Vu + Ve + Vc; then times t_{df} / z for the level, df from `effective_df`
    (with the cells when `n_cells` is given), since with a handful of items per cell, or
    of raters, a normal quantile is too short. The target has the large groups' floor
    max(Vu', Ve') (see `variance_target`; `spread_corrections` gives groups of fewer than
    SMALL_GROUP units theirs). NaN where a group has fewer than two units or evaluators:
    no interval can be had there.
    """
    return _spread_terms(v_units, v_evals, v_cells, n_units, n_evals, level, k_units, k_evals,
                         c_units, c_evals, n_cells, k_cells)[0]


def variance_target(vu2: np.ndarray, ve2: np.ndarray, vc: np.ndarray, small: ArrayLike,
                    floor: ArrayLike | None = None) -> np.ndarray:
    """The estimate's variance, Vu' + Ve' - Vc (Owen 2007), with a floor where that
    difference of noisy parts comes out too small.

    Groups of SMALL_GROUP units or more: at least max(Vu', Ve'), so the interval is never
    narrower than a one-way bootstrap over items or over evaluators would make it.
    Smaller groups (a cell of five images): at least Vc. There Vu' rests on a handful of
    items, and the maximum of two noisy parts is biased upwards: in bench/coverage.py's
    crowds (8 and 24 raters, 100 studies each) the one-way floor bound in 55-71% of the
    cells and made the target 1.04-1.33 times the study-to-study variance of the estimate
    (median E[T] / Var over the cells), against 0.92-1.13 unfloored and 0.95-1.23 with
    this floor. For a weighted mean (contributions of one sign) Vc, the sum of squared cell
    contributions, is at most the variance in expectation: each cell's own noise, which no
    design cancels.

    `floor` (per group) replaces both: a paired difference between variants passes
    `difference_floor`'s bound, since neither default holds for it (see there).
    """
    with np.errstate(invalid="ignore"):
        if floor is None:
            floor = np.where(np.asarray(small, dtype=bool), vc, np.maximum(vu2, ve2))
        return np.maximum(vu2 + ve2 - vc, floor)


def difference_floor(var_a: ArrayLike, var_b: ArrayLike) -> np.ndarray:
    """(sqrt(Va) - sqrt(Vb))^2: the least variance a difference of two estimates with
    variances Va and Vb can have (Cauchy-Schwarz), the floor of a paired difference's
    variance target (`variance_target`).

    Why not the floors of a mean: for a paired difference (the same items and raters
    under both variants) the part every design leaves, the cells' noise, is no lower
    bound: what an item (a rater) shares between its two variants' answers cancels, so
    the covariances between the cells of one item are negative and the variance may be
    less than Vc. And the units' and evaluators' parts are then near zero, their
    estimates Vu' - Vc and Ve' - Vc noise of either sign (the evaluators' known from a
    handful of raters): the one-way floor max(Vu', Ve') cuts off the lower half of that
    noise. Measured in bench/coverage.py's crowds with 8 and 24 raters (400 studies
    each, every paired count difference): the floored target was 1.08-1.44 times the
    study-to-study variance of the difference and the intervals covered 0.961-0.976;
    unfloored, 0.91-1.18 and 0.949-0.964, with Satterthwaite's df (`effective_df`)
    following the noise of the target. This bound stopped an interval from collapsing
    in at most 1.1% of those studies (the total came out below it, or negative). 0 where
    either variance is undefined (NaN): no bound is known there."""
    with np.errstate(invalid="ignore"):
        d = (np.sqrt(np.asarray(var_a, dtype=float)) - np.sqrt(np.asarray(var_b, dtype=float))) ** 2
    return np.nan_to_num(d, nan=0.0)


def _spread_terms(v_units: ArrayLike, v_evals: ArrayLike, v_cells: ArrayLike, n_units: ArrayLike,
                  n_evals: ArrayLike, level: float, k_units: ArrayLike | None = None,
                  k_evals: ArrayLike | None = None, c_units: ArrayLike | None = None,
                  c_evals: ArrayLike | None = None, n_cells: ArrayLike | None = None,
                  k_cells: ArrayLike | None = None, small: ArrayLike | None = None,
                  floor: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shrink factor, variance target, df) per group; see `shrink_factors`."""
    vu, ve, vc = (np.asarray(a, dtype=float) for a in (v_units, v_evals, v_cells))
    nu, ne = (np.asarray(a, dtype=float) for a in (n_units, n_evals))
    small = np.zeros(vu.shape, dtype=bool) if small is None else np.asarray(small, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        vu2 = _unbiased(vu, nu, c_units)
        ve2 = _unbiased(ve, ne, c_evals)
        target = variance_target(vu2, ve2, vc, small, floor)
        product = vu + ve + vc
        c = np.sqrt(np.where(product > 0, target / np.where(product > 0, product, 1.0), 1.0))
        df = effective_df(vu, ve, nu, ne, k_units, k_evals, c_units, c_evals, vc, n_cells, k_cells,
                          target if n_cells is not None else None)
        q = (1.0 + level) / 2.0
        t_over_z = sps.t.ppf(q, np.where(df >= 1, df, 1)) / sps.norm.ppf(q)
    defined = (nu >= 2) & (ne >= 2)
    return (np.where(defined, c * t_over_z, np.nan), np.where(defined, target, np.nan),
            np.where(defined, df, np.nan))


def ratio_contributions(group: ArrayLike, num: ArrayLike, den: ArrayLike, n_groups: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(z, keep): each row's linearised contribution to its group's ratio
    sum(num) / sum(den), and the rows inside the denominator (the others make no unit count)."""
    group = np.asarray(group, dtype=np.int64)
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    s_num = np.bincount(group, weights=num, minlength=n_groups)
    s_den = np.bincount(group, weights=den, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(s_den > 0, s_num / np.where(s_den > 0, s_den, 1.0), 0.0)
        z = np.where(s_den[group] > 0, (num - r[group] * den) / np.where(
            s_den[group] > 0, s_den[group], 1.0), 0.0)
    return z, den > 0


class Spread(NamedTuple):
    """Per group: the shrink factor for the product-weight bootstrap's spread
    (`shrink_factors`), BCa's acceleration (`acceleration`), the estimate's variance
    (`variance_target`) with its degrees of freedom (`effective_df`), whether the
    group has fewer than SMALL_GROUP units (`confidence.spread_intervals`), and how many distinct
    evaluators have rows in it."""

    shrink: np.ndarray
    accel: np.ndarray
    var: np.ndarray
    df: np.ndarray
    small: np.ndarray
    n_evals: np.ndarray


def spread_corrections(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, z: ArrayLike, weight: ArrayLike,
                       n_groups: int, level: float, floor: ArrayLike | None = None) -> Spread:
    """`Spread` per group from one pass over the linearised contributions z; `weight`
    gives each row's share of its group's statistic for the centring factors (a ratio's
    denominator); `floor`, the variance target's floor where not the default
    (`variance_target`)."""
    p = _parts(unit, evaluator, group, z, n_groups)
    cu = centring_factors(unit, group, weight, n_groups)
    ce = centring_factors(evaluator, group, weight, n_groups)
    small = p.nu < SMALL_GROUP
    shrink, var, df = _spread_terms(p.vu, p.ve, p.vc, p.nu, p.ne, level, p.ku, p.ke, cu, ce,
                                    p.nc, p.kc, small, floor)
    return Spread(shrink, _acceleration(p), var, df, small, p.ne)


def ratio_corrections(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, num: ArrayLike, den: ArrayLike,
                      n_groups: int, level: float) -> Spread:
    """`spread_corrections` of the per-group ratios sum(num) / sum(den)."""
    unit, evaluator, group = (np.asarray(a, dtype=np.int64) for a in (unit, evaluator, group))
    z, keep = ratio_contributions(group, num, den, n_groups)
    den = np.asarray(den, dtype=float)
    return spread_corrections(unit[keep], evaluator[keep], group[keep], z[keep], den[keep], n_groups, level)


def ratio_shrink(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, num: ArrayLike, den: ArrayLike,
                 n_groups: int, level: float) -> np.ndarray:

    """Shrink factors for the per-group ratios sum(num) / sum(den)."""
    return ratio_corrections(unit, evaluator, group, num, den, n_groups, level).shrink
