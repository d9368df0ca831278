"""Plackett-Luce and Bradley-Terry checked against `choix` (Maystre's reference library of
Luce-model estimators), on rankings drawn from the model itself."""
import numpy as np
import pytest

choix = pytest.importorskip("choix")

from evalstudy import rank_models  # noqa: E402


def _draw_rankings(m: int, n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.ones(m) * 2)
    out = []
    for _ in range(n):
        left, order = list(range(m)), []
        while left:
            p = truth[left] / truth[left].sum()
            order.append(left.pop(rng.choice(len(left), p=p)))
        out.append(tuple(order))
    return out


def _strengths(log_params: np.ndarray) -> np.ndarray:
    g = np.exp(log_params - log_params.max())
    return g / g.sum()


@pytest.mark.parametrize("m", [3, 5])
def test_plackett_luce_strengths_and_likelihood_match_choix(m):
    rankings = _draw_rankings(m, 400, seed=m)
    orderings = rank_models.all_orderings(m)
    index = {tuple(o): k for k, o in enumerate(orderings.tolist())}
    counts = np.zeros(len(orderings))
    for r in rankings:
        counts[index[r]] += 1
    ours = rank_models.plackett_luce_mm(counts[None, :], orderings, tol=1e-12, max_iter=20000)[0]
    theirs = choix.ilsr_rankings(m, rankings, alpha=0.0, max_iter=1000, tol=1e-12)
    np.testing.assert_allclose(ours, _strengths(theirs), atol=1e-6)
    # choix's log-likelihood of its own estimate, against ours of ours.
    assert rank_models.plackett_luce_loglik(ours, counts, orderings) == pytest.approx(
        choix.log_likelihood_rankings(rankings, theirs), abs=1e-6)


def test_davidson_without_ties_is_bradley_terry_as_choix_fits_it():
    m = 4
    pairs = [(r[0], r[1]) for r in _draw_rankings(m, 600, seed=7)]  # (winner, loser) of each pair
    wins = np.zeros((1, m, m))
    for a, b in pairs:
        wins[0, a, b] += 1
    strengths, nu = rank_models.davidson_fit(wins, np.zeros((1, m, m)))
    theirs = choix.ilsr_pairwise(m, pairs, alpha=0.0, max_iter=1000, tol=1e-12)
    np.testing.assert_allclose(strengths[0], _strengths(theirs), atol=1e-6)
    assert nu[0] < 1e-6  # no tie was seen: the tie parameter goes to its bound
