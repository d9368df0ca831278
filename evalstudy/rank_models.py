"""Strength models of rankings, each fitted to many data sets at once (a bootstrap's
resamples): Plackett-Luce by Hunter's (2004) MM algorithm, and Bradley-Terry with ties
(Davidson 1970) on the pairs a ranking implies.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, sparse

# ---------------------------------------------------------------------------
# Separation: when is there a finite maximum?
# ---------------------------------------------------------------------------

def win_graph(beats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The strongly connected structure of B directed win graphs at once.

    beats: (B, m, m) or (m, m), true where i was placed above j at least once (a tie counts
    both ways). Returns `connected` (B,): the graph is strongly connected, every variant
    beats every other through some chain, which is when Plackett-Luce and Bradley-Terry
    strengths have a finite maximum-likelihood estimate (Ford 1957; Hunter 2004,
    assumption 1); and `level` (B, m): the longest chain of strictly higher components below
    each variant (0 for a bottom one), so that the supremum of the likelihood is approached
    by moving each component's strengths above those of lower levels without end."""
    b = np.asarray(beats, dtype=bool)
    if b.ndim == 2:
        b = b[None]
    m = b.shape[1]
    reach = _closure(b)
    connected = np.asarray(reach.all(axis=(1, 2)))
    above = reach & ~np.swapaxes(reach, 1, 2)  # i reaches j, j does not reach i
    level: np.ndarray = np.zeros(b.shape[:2], dtype=np.int64)
    for _ in range(m):
        level = np.where(above, level[:, None, :] + 1, 0).max(axis=2)
    return connected, level


def _closure(beats: np.ndarray) -> np.ndarray:
    """(B, m, m) reachability, i reaches j through a chain of wins (or itself), by squaring."""
    m = beats.shape[1]
    reach = beats | np.eye(m, dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(m)))):
        reach = np.matmul(reach.astype(np.int64), reach.astype(np.int64)) > 0
    return reach


# ---------------------------------------------------------------------------
# Plackett-Luce
# ---------------------------------------------------------------------------

def all_orderings(m: int) -> np.ndarray:
    """Every ordering of m variants (best first), in lexicographic order: (m!, m)."""
    return np.array(list(itertools.permutations(range(m))), dtype=int)


def plackett_luce_mm(counts: ArrayLike, orderings: ArrayLike, max_iter: int = 2000, tol: float = 1e-9,
                     init: ArrayLike | None = None) -> np.ndarray:
    """Plackett-Luce strengths by Hunter's (2004) MM algorithm, for many data sets at once.

    counts: (B, K) weights of the K orderings in each of B data sets (a bootstrap's
    resamples, or B = 1). orderings: (K, m), best first. Returns (B, m) strengths
    normalised to sum to 1, i.e. the probability that each variant is ranked first
    among all m. Data whose win graph is not strongly connected (a variant, or a group
    of them, always ranked above the rest: `plackett_luce_separation`) have no finite
    maximum; their strengths are the supremum's limit, the top group's own fit and exactly
    0 for the others (a variant that always wins gets 1). `init`
    (m,) or (B, m) starts the iteration elsewhere than at equal strengths (a
    bootstrap starts from the full data's fit, which saves most iterations).
    """
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    orderings = np.asarray(orderings, dtype=int)
    n_b, n_k = c.shape
    if orderings.ndim != 2 or orderings.shape[0] != n_k:
        raise ValueError(f"orderings must be (K, m) with K = {n_k} (the counts' columns), "
                         f"got shape {orderings.shape}")
    if not (np.isfinite(c) & (c >= 0)).all():
        raise ValueError("counts must be finite and >= 0")
    m = orderings.shape[1]
    # member[k, s, v] = 1 if variant v is still unranked at stage s of ordering k
    member = np.zeros((n_k, m - 1, m))
    for s in range(m - 1):
        for k in range(n_k):
            member[k, s, orderings[k, s:]] = 1.0
    member = member.reshape(n_k * (m - 1), m)
    # chosen[k * (m-1) + s, v] = 1 if v is chosen at stage s of ordering k
    chosen = np.zeros((n_k, m - 1, m))
    chosen[np.arange(n_k)[:, None], np.arange(m - 1)[None, :], orderings[:, :-1]] = 1.0
    chosen = chosen.reshape(n_k * (m - 1), m)
    gamma = np.full((n_b, m), 1.0 / m)
    if init is not None and np.isfinite(init).all() and (np.asarray(init) > 0).all():
        gamma = np.broadcast_to(np.asarray(init, dtype=float), (n_b, m)).copy()
        gamma /= gamma.sum(axis=1, keepdims=True)
    connected, level = plackett_luce_separation(c, orderings)
    if connected.all():
        return _mm(c, member, chosen, gamma, max_iter, tol)
    gamma[connected] = _mm(c[connected], member, chosen, gamma[connected], max_iter, tol)
    # No finite maximum: the supremum puts the top component's variants infinitely above the
    # rest, so the strengths (probabilities of being ranked first) are the top component's own
    # fit on the stages it decides, and exactly 0 for every other variant.
    top = level == level.max(axis=1, keepdims=True)
    for pattern in np.unique(top[~connected], axis=0):
        rows = np.flatnonzero(~connected & (top == pattern).all(axis=1))
        start = np.broadcast_to(pattern / pattern.sum(), (len(rows), m)).copy()
        gamma[rows] = _mm(c[rows], member * pattern, chosen * pattern, start, max_iter, tol)
    return gamma


def plackett_luce_separation(counts: ArrayLike, orderings: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """`win_graph` of each data set's weighted orderings (B, K) x (K, m): whether its
    Plackett-Luce strengths have a finite maximum, and each variant's level."""
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    orderings = np.asarray(orderings, dtype=int)
    place = np.argsort(orderings, axis=1)  # (K, m): each variant's place in ordering k
    above = (place[:, :, None] < place[:, None, :]).astype(float)  # (K, m, m)
    return win_graph(np.einsum("bk,kij->bij", c, above) > 0)


def _mm(c: np.ndarray, member: np.ndarray, chosen: np.ndarray, gamma: np.ndarray, max_iter: int,
        tol: float) -> np.ndarray:
    """Hunter's MM iteration from `gamma` (B, m), over the stages (K*(m-1)) that `member`
    (which variants are in play) and `chosen` (which one is picked) describe."""
    m = member.shape[1]
    gamma = gamma.copy()
    if len(gamma) == 0:
        return gamma
    wins = c @ chosen.reshape(-1, m - 1, m).sum(axis=1)  # (B, m): stages each variant won
    c_stage = np.repeat(c, m - 1, axis=1) * (chosen.sum(axis=1) > 0)  # (B, K*(m-1))
    # Iterate only the data sets that have not converged yet: in a bootstrap of a small
    # study a few resamples converge slowly, and they must not hold the other resamples'
    # arithmetic hostage.
    active = np.arange(len(gamma))
    for _ in range(max_iter):
        g = gamma[active]
        denom = g @ member.T  # (A, K*(m-1)): strength still in play at each stage
        cs = c_stage[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((cs > 0) & (denom > 0), cs / denom, 0.0)
            new = wins[active] / (ratio @ member)
        new = np.where(np.isfinite(new), new, 0.0)
        total = new.sum(axis=1, keepdims=True)
        new = np.divide(new, total, out=np.full_like(new, np.nan), where=total > 0)
        with np.errstate(invalid="ignore"):
            delta = np.nanmax(np.abs(new - g), axis=1, initial=0.0)
        gamma[active] = new
        active = active[~(delta < tol) & np.isfinite(new).any(axis=1)]
        if active.size == 0:
            break
    return gamma


def plackett_luce_loglik(gamma: ArrayLike, counts: ArrayLike, orderings: ArrayLike) -> float:
    """Log-likelihood of weighted orderings under strengths gamma (m,): the function
    `plackett_luce_mm` maximises, sum_k counts[k] sum_s log(gamma[o_s] / sum_{t>=s} gamma[o_t])
    over orderings o = orderings[k]. A plain loop, kept as the check on the fit: the tests
    maximise it with a general optimiser and compare with the MM strengths, and compare
    it with choix's log-likelihood of choix's own estimate. The analysis does not call it."""
    g = np.asarray(gamma, dtype=float)
    ll = 0.0
    for w, order in zip(np.asarray(counts, dtype=float), np.asarray(orderings), strict=True):
        if w == 0:
            continue
        for s in range(len(order) - 1):
            ll += w * (math.log(g[order[s]]) - math.log(g[order[s:]].sum()))
    return ll


# ---------------------------------------------------------------------------
# Bradley-Terry with ties (Davidson 1970)
# ---------------------------------------------------------------------------

DAVIDSON_LOG_BOUND = 30.0  # |log nu| at most this in the tie parameter's interval


def pair_outcomes(patterns: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """For K rankings given as rank vectors (K, m) (1 = best, equal ranks tied): win[k, i, j]
    = 1 when ranking k puts i above j, tie[k, i, j] = 1 when it ties them (symmetric).
    Each ranking is read as its m (m - 1) / 2 pairs: Davidson's model of a ranking with
    ties, and the pairwise win and tie rates, count every pair of its images once."""
    r = np.asarray(patterns, dtype=float)
    win = (r[:, :, None] < r[:, None, :]).astype(float)
    tie = (r[:, :, None] == r[:, None, :]).astype(float)
    idx = np.arange(r.shape[1])
    tie[:, idx, idx] = 0.0
    return win, tie


def _davidson_terms(theta: NDArray[np.float64], lam: NDArray[np.float64], w: NDArray[np.float64],
                    t: NDArray[np.float64], pairs: NDArray[np.intp]
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per data set and pair: log-likelihood terms and outcome probabilities."""
    i, j = pairs[:, 0], pairs[:, 1]
    a = np.stack([theta[:, i], theta[:, j], lam[:, None] + (theta[:, i] + theta[:, j]) / 2],
                 axis=2)                                    # (B, P, 3): i wins, j wins, tie
    log_d = np.logaddexp(np.logaddexp(a[..., 0], a[..., 1]), a[..., 2])
    obs = np.stack([w[:, i, j], w[:, j, i], t[:, i, j]], axis=2)   # (B, P, 3)
    ll = (obs * a).sum(axis=(1, 2)) - (obs.sum(axis=2) * log_d).sum(axis=1)
    return ll, np.exp(a - log_d[..., None]), obs


def _check_pairs(wins: ArrayLike, ties: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """wins and ties as (B, m, m) arrays; ValueError naming the argument unless both are square,
    of one shape, finite and >= 0, and ties symmetric."""
    w = np.asarray(wins, dtype=float)
    t = np.asarray(ties, dtype=float)
    if w.ndim == 2:
        w = w[None]
    if t.ndim == 2:
        t = t[None]
    for name, x, given in (("wins", w, wins), ("ties", t, ties)):
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"{name} must be (m, m) or (B, m, m), got shape {np.shape(given)}")
        if not (np.isfinite(x) & (x >= 0)).all():
            raise ValueError(f"{name} must be finite and >= 0")
    if w.shape != t.shape:
        raise ValueError(f"wins and ties differ in shape: {w.shape} and {t.shape}")
    if not np.array_equal(t, np.swapaxes(t, 1, 2)):
        raise ValueError("ties must be symmetric (ties[i, j] == ties[j, i])")
    return w, t


# The sufficient statistic of pair (i, j)'s outcomes (i wins, j wins, tie) on its coordinates
# (theta_i, theta_j, log nu): davidson_fit's model.
_LOCAL_STAT = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 1.0]])


def davidson_fit(wins: ArrayLike, ties: ArrayLike, max_iter: int = 500, gtol: float = 1e-10,
                 init: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Davidson's (1970) Bradley-Terry model with ties, by Newton's method with step
    halving, for many data sets at once.

    P(i beats j) = pi_i / D, P(j beats i) = pi_j / D, P(tie) = nu sqrt(pi_i pi_j) / D,
    D = pi_i + pi_j + nu sqrt(pi_i pi_j). wins: (B, m, m), wins[b, i, j] the weighted
    number of times i beat j; ties: (B, m, m) symmetric, the times i and j were tied.
    Returns strengths (B, m), normalised to sum to 1, and nu (B,).

    The model is an exponential family in (log pi, log nu), so the log-likelihood is
    concave; it is maximised over (log pi, log nu) free, the log-strengths centred to sum
    to 0, until the gradient's largest entry is below `gtol` times the data set's number of
    pairs compared. Where no finite maximum exists (`davidson_separation`: a variant that
    never loses, a data set without ties, ties and wins arranged so that nu can grow
    without end) the parameters run off towards the supremum and stop where the gradient
    is that small, which leaves the log-likelihood within about that much of its supremum:
    strengths near 0, nu near 0 or very large."""
    w, t = _check_pairs(wins, ties)
    n_b, m, _ = w.shape
    pairs = np.array(list(itertools.combinations(range(m), 2)), dtype=int)
    # Sufficient statistic of each outcome of pair (i, j) in (theta_0..theta_{m-1}, log nu): it
    # touches three coordinates only, (theta_i, theta_j, log nu), where it is `_LOCAL_STAT`'s row.
    # The gradient and the information are summed over the pairs on those three coordinates and
    # scattered into the m + 1 by a sparse map: a dense (B, pairs, m + 1, m + 1) array would
    # take gigabytes at 32 variants and 2000 resamples.
    coord = np.column_stack([pairs, np.full(len(pairs), m)])      # (P, 3)
    n_p = len(pairs)
    to_grad = sparse.csr_matrix((np.ones(n_p * 3), (np.arange(n_p * 3), coord.ravel())), shape=(n_p * 3, m + 1))
    cell = (coord[:, :, None] * (m + 1) + coord[:, None, :]).ravel()  # (P * 9,) into the flat information
    to_info = sparse.csr_matrix((np.ones(n_p * 9), (np.arange(n_p * 9), cell)), shape=(n_p * 9, (m + 1) ** 2))
    # The likelihood is flat along a common shift of the log-strengths: that direction gets
    # unit curvature, so a Newton step keeps their sum at 0 (the gradient has no part on it).
    shift = np.append(np.ones(m), 0.0) / math.sqrt(m)
    flat = np.outer(shift, shift)
    theta = np.zeros((n_b, m))
    lam = np.zeros(n_b)
    if init is not None:
        g0, nu0 = (np.asarray(x, dtype=float) for x in init)
        if np.isfinite(g0).all() and (g0 > 0).all() and np.isfinite(nu0).all() and (nu0 > 0).all():
            log_g0 = np.log(g0)
            theta = np.broadcast_to(log_g0 - log_g0.mean(axis=-1, keepdims=True), (n_b, m)).copy()
            lam = np.broadcast_to(np.log(nu0), (n_b,)).copy()
    ll, prob, obs = _davidson_terms(theta, lam, w, t, pairs)
    n_pair = obs.sum(axis=2)
    scale = np.maximum(n_pair.sum(axis=1), 1.0)
    active = np.arange(n_b)
    for _ in range(max_iter):
        pr, ob, npair = prob[active], obs[active], n_pair[active]
        mean = pr @ _LOCAL_STAT                                         # (b, P, 3)
        local_grad = ob @ _LOCAL_STAT - npair[..., None] * mean
        grad = (to_grad.T @ local_grad.reshape(len(active), -1).T).T    # (b, m + 1)
        done = np.abs(grad).max(axis=1) <= gtol * scale[active]
        active, grad, pr, mean, npair = (x[~done] for x in (active, grad, pr, mean, npair))
        if active.size == 0:
            break
        second = np.einsum("bpo,oc,od->bpcd", pr, _LOCAL_STAT, _LOCAL_STAT) - np.einsum(
            "bpc,bpd->bpcd", mean, mean)                                # (b, P, 3, 3)
        local_info = (npair[..., None, None] * second).reshape(len(active), -1)
        # A ridge of 1e-9 keeps the system solvable where a direction has no curvature left
        # (a variant compared with nobody); near a supremum at infinity the curvature and the
        # gradient fade together, so the steps stay about one unit long.
        info = ((to_info.T @ local_info.T).T.reshape(-1, m + 1, m + 1)
                + flat + 1e-9 * np.eye(m + 1))
        try:
            step = np.linalg.solve(info, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.array([np.linalg.lstsq(a, g, rcond=None)[0]
                             for a, g in zip(info, grad, strict=True)])
        # No step longer than 10 in any log-parameter: the direction is an ascent direction
        # whatever its length, and a near-flat one would otherwise cost many halvings.
        step *= np.minimum(1.0, 10.0 / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1e-300))
        start = np.concatenate([theta[active], lam[active, None]], axis=1)
        ll_start = ll[active]
        accepted = np.zeros(len(active), dtype=bool)
        size = 1.0
        for _halving in range(50):
            trial = start + size * step
            ll_t, prob_t, _ = _davidson_terms(trial[:, :-1], trial[:, -1], w[active], t[active], pairs)
            ok = ~accepted & (ll_t >= ll_start - 1e-13 * np.abs(ll_start))
            idx = active[ok]
            theta[idx], lam[idx], prob[idx], ll[idx] = trial[ok, :-1], trial[ok, -1], prob_t[ok], ll_t[ok]
            accepted |= ok
            if accepted.all():
                break
            size /= 2
        # No step along Newton's direction raises the likelihood: its maximum, up to rounding.
        active = active[accepted]
        if active.size == 0:
            break
    strengths = np.exp(theta - theta.max(axis=1, keepdims=True))
    strengths /= strengths.sum(axis=1, keepdims=True)
    return strengths, np.exp(lam)


def davidson_separation(wins: ArrayLike, ties: ArrayLike) -> np.ndarray:
    """Whether each data set's Davidson likelihood has a finite maximum, (B,) bool.

    The model is a multinomial logit on each pair's three outcomes, linear in
    x = (log pi, log nu); its maximum is finite unless some direction d raises, or keeps,
    the linear score of every observed outcome against each other outcome of its pair, and
    raises one (Albert and Anderson 1984; Haberman 1974): then the likelihood rises along d
    without end. Found by a linear program per data set (scipy's HiGHS): maximise the sum
    of those score differences, each held in [0, 1]; a finite maximum when it is 0. This
    covers more than `win_graph`: a strongly connected win graph can still let nu grow
    without end (i ties j, j ties k, i beats k...)."""
    w, t = _check_pairs(wins, ties)
    n_b, m, _ = w.shape
    finite = np.ones(n_b, dtype=bool)
    for b in range(n_b):
        rows: list[np.ndarray] = []
        for i, j in itertools.combinations(range(m), 2):
            score = np.zeros((3, m + 1))  # i wins, j wins, tie
            score[0, i] = score[1, j] = 1.0
            score[2, i] = score[2, j] = 0.5
            score[2, m] = 1.0
            for o, seen in enumerate((w[b, i, j], w[b, j, i], t[b, i, j])):
                if seen > 0:
                    rows.extend(score[o] - score[other] for other in range(3) if other != o)
        if not rows:
            continue
        a = np.array(rows)
        fit = optimize.linprog(-a.sum(axis=0), A_ub=np.vstack([-a, a]),
                               b_ub=np.concatenate([np.zeros(len(a)), np.ones(len(a))]),
                               bounds=[(None, None)] * (m + 1), method="highs")
        finite[b] = fit.status == 0 and -fit.fun <= 1e-9
    return finite


def davidson_loglik(strengths: ArrayLike, nu: float, wins: ArrayLike, ties: ArrayLike) -> float:

    """Log-likelihood of one data set under Davidson's model (for checks): a plain loop
    over the pairs."""
    g = np.asarray(strengths, dtype=float)
    w, t = np.asarray(wins, dtype=float), np.asarray(ties, dtype=float)
    ll = 0.0
    for i, j in itertools.combinations(range(len(g)), 2):
        tie = nu * math.sqrt(g[i] * g[j])
        d = g[i] + g[j] + tie
        ll += w[i, j] * math.log(g[i] / d) + w[j, i] * math.log(g[j] / d)
        if t[i, j]:
            ll += t[i, j] * math.log(tie / d)
    return ll
