"""Rankings with no finite strength estimate (separation): a variant, or a group of them,
ranked above the rest every time. The strengths are the likelihood's limit, the intervals
agree with them, and the result says so (audit of 2026-12, F2)."""

import numpy as np
import pytest

from evalstudy import rank_models
from evalstudy.analysis import analyze
from evalstudy.analysis.preference import DAVIDSON_SEPARATION_NOTE, SEPARATION_NOTE
from evalstudy.responses import table_from_columns

COLUMNS = ("task", "item_id", "evaluator_id", "variant", "prompt", "object", "true_count", "answer_count",
           "rank", "skipped", "skip_reason", "position", "seconds", "is_gold")


def _add_row(rows: dict[str, list], rater: int, caption: int, variant: int, rank) -> None:
    """One ranked image: variant ``v<variant>`` at screen position ``variant``, ranked ``rank``."""
    for k, x in (("task", "rank"), ("item_id", f"c{caption}"), ("evaluator_id", f"e{rater}"),
                 ("variant", f"v{variant}"), ("prompt", f"c{caption}"), ("object", ""),
                 ("true_count", np.nan), ("answer_count", np.nan), ("rank", rank),
                 ("skipped", False), ("skip_reason", ""), ("position", variant), ("seconds", 1.0),
                 ("is_gold", False)):
        rows[k].append(x)


def _rankings(n_raters, n_captions, always, rng, m=3):
    """Random rankings of m variants, except that v0 is always first ("first"), always last
    ("last"), or placed at random like the others (None)."""
    rows: dict[str, list] = {k: [] for k in COLUMNS}
    for r in range(n_raters):
        for c in range(n_captions):
            rank = rng.permutation(m) + 1
            if always == "first":
                rank = np.concatenate([[1], rng.permutation(m - 1) + 2])
            elif always == "last":
                rank = np.concatenate([[m], rng.permutation(m - 1) + 1])
            for v in range(m):
                _add_row(rows, r, c, v, rank[v])
    return table_from_columns({k: np.array(v) for k, v in rows.items()})


def test_the_win_graph_is_strongly_connected_exactly_when_every_variant_beats_every_other_by_a_chain():
    cycle = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool)  # 0 > 1 > 2 > 0
    chain = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)  # 0 > 1 > 2, never back
    connected, level = rank_models.win_graph(np.stack([cycle, chain]))
    assert connected.tolist() == [True, False]
    assert level.tolist() == [[0, 0, 0], [2, 1, 0]]


@pytest.mark.parametrize("always", ["first", "last"])
def test_separated_strengths_are_the_limit_and_inside_their_intervals(always):
    result = analyze(_rankings(8, 5, always, np.random.default_rng(4)), n_boot=200)
    pref = result.preference
    assert pref.strength_note == SEPARATION_NOTE
    for row in pref.by_variant:
        low, high = row.pl_strength_ci
        assert low is not None and high is not None and row.pl_strength is not None
        assert low <= row.pl_strength <= high, row
    v0 = pref.by_variant[0]
    assert v0.pl_strength == (1.0 if always == "first" else 0.0)


def test_the_limit_is_the_top_groups_own_fit():
    """v0 always last: v1 and v2 keep the Plackett-Luce fit of their own order, which for two
    variants is the share of rankings that put each first (Bradley-Terry's closed form)."""
    orderings = rank_models.all_orderings(3)
    counts = np.zeros((1, 6))
    counts[0, [3, 5]] = [3.0, 1.0]  # (1, 2, 0) three times, (2, 1, 0) once
    assert orderings[3].tolist() == [1, 2, 0] and orderings[5].tolist() == [2, 1, 0]
    gamma = rank_models.plackett_luce_mm(counts, orderings)[0]
    assert gamma == pytest.approx([0.0, 0.75, 0.25], abs=1e-8)


def test_a_study_with_every_order_seen_has_no_note():
    result = analyze(_rankings(8, 5, None, np.random.default_rng(4)), n_boot=200)
    assert result.preference.strength_note == ""


def _pairwise_with_ties(outcomes):
    """A pairwise study with ties, one ranking per (rater, caption): outcomes a list of
    (rank of v0, rank of v1) per ranking, 8 raters by 5 captions cycling through it."""
    rows: dict[str, list] = {k: [] for k in COLUMNS}
    for n in range(40):
        r, c = divmod(n, 5)
        rank = outcomes[n % len(outcomes)]
        for v in range(2):
            _add_row(rows, r, c, v, rank[v])
    return table_from_columns({k: np.array(v) for k, v in rows.items()}, allow_ties=True)


def test_ties_without_a_loss_have_no_finite_davidson_fit_and_say_so():
    """v1 never beats v0, but ties join them both ways, so the win graph is strongly connected:
    only Davidson's own criterion (rank_models.davidson_separation) sees that P(v1 wins) -> 0."""
    result = analyze(_pairwise_with_ties([(1, 2), (1, 1), (1, 2)]), n_boot=100)
    assert result.preference.strength_note == DAVIDSON_SEPARATION_NOTE
    both_ways = analyze(_pairwise_with_ties([(1, 2), (1, 1), (2, 1), (1, 2)]), n_boot=100)
    assert both_ways.preference.strength_note == ""
