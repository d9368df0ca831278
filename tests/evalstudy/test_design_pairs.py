"""The pairs design: two of the variants per rank task, balanced over the plan and spread
over each evaluator's tasks (evalstudy.design.plan_assignments(design="pairs"))."""
from collections import Counter
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy.design import pair_schedule, plan_assignments, reassign_slot, round_robin


def _plan(n_variants, n_rank, n_slots, overlap, seed=3, n_repeats=0, n_count=0):
    return plan_assignments([f"c{i}" for i in range(n_count)], [f"r{i}" for i in range(n_rank)], n_slots,
                            overlap, seed, n_variants=n_variants, n_repeats=n_repeats, design="pairs")


def _showings(plans):
    """(slot, item, [left, right]) of every first showing."""
    return [(p.slot, i, pos) for p in plans for i, pos in p.positions.items()]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 32])
def test_round_robin_holds_every_pair_once_in_rounds_of_disjoint_pairs(n):
    rounds = round_robin(n)
    pairs = [p for r in rounds for p in r]
    assert sorted(pairs) == list(combinations(range(n), 2))
    for r in rounds:
        members = [v for p in r for v in p]
        assert len(members) == len(set(members)) == (n if n % 2 == 0 else n - 1)
    assert sorted(frozenset(p) for p in pair_schedule(n)) == sorted(frozenset(p) for p in pairs)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 12), n_rank=st.integers(1, 60), n_slots=st.integers(1, 14), data=st.data())
def test_pairs_variants_and_sides_are_balanced_over_the_plan(n, n_rank, n_slots, data):
    overlap = data.draw(st.integers(1, n_slots))
    seed = data.draw(st.integers(0, 10**6))
    plans = _plan(n, n_rank, n_slots, overlap, seed)
    shows = _showings(plans)
    assert len(shows) == n_rank * overlap
    for _, _, pos in shows:
        assert len(pos) == 2 and pos[0] != pos[1] and set(pos) <= set(range(n))
    # Every unordered pair equally often, within one.
    by_pair = Counter(frozenset(pos) for _, _, pos in shows)
    counts = [by_pair[frozenset(p)] for p in combinations(range(n), 2)]
    assert max(counts) - min(counts) <= 1
    # Every variant equally often: within one for even n, two for odd n.
    by_variant = Counter(v for _, _, pos in shows for v in pos)
    spread = [by_variant[v] for v in range(n)]
    assert max(spread) - min(spread) <= (1 if n % 2 == 0 else 2)
    # Within a pair, left / right within one.
    sides = Counter(tuple(pos) for _, _, pos in shows)
    for a, b in combinations(range(n), 2):
        assert abs(sides[(a, b)] - sides[(b, a)]) <= 1


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 12), n_rank=st.integers(1, 80), n_slots=st.integers(1, 10), data=st.data())
def test_one_evaluators_pairs_are_spread(n, n_rank, n_slots, data):
    overlap = data.draw(st.integers(1, n_slots))
    plans = _plan(n, n_rank, n_slots, overlap, data.draw(st.integers(0, 10**6)))
    n_pairs = n * (n - 1) // 2
    for p in plans:
        load = len(p.positions)
        seen = Counter(frozenset(pos) for pos in p.positions.values())
        # No pair twice while the load allows, never more than ceil(load / pairs) times.
        assert max(seen.values(), default=0) <= -(-load // n_pairs)
        # Its variants: a run of the round-robin starting anywhere, within 2 (even n) or 3.
        variants = Counter(v for pos in p.positions.values() for v in pos)
        counts = [variants[v] for v in range(n)]
        assert max(counts) - min(counts) <= (2 if n % 2 == 0 else 3)


def test_an_evaluator_with_a_whole_schedule_sees_each_variant_on_both_sides():
    # 8 variants, 28 pairs: one slot of 28 rank tasks walks the schedule once.
    (plan,) = _plan(8, 28, 1, 1)
    assert len({frozenset(p) for p in plan.positions.values()}) == 28
    left = Counter(p[0] for p in plan.positions.values())
    assert all(3 <= left[v] <= 4 for v in range(8))  # 7 pairs each: 3 or 4 on the left


def test_repeats_show_the_same_pair_with_the_sides_swapped():
    plans = _plan(8, 30, 4, 2, n_repeats=3, n_count=10)
    for p in plans:
        rank_repeats = [i for t, i in p.repeats if t == "rank"]
        for i in rank_repeats:
            assert p.repeat_positions[i] == p.positions[i][::-1]
    assert any(p.repeat_positions for p in plans)


def test_pairs_plans_are_deterministic_from_the_seed_and_differ_between_seeds():
    a, b, c = _plan(8, 40, 5, 2, seed=11), _plan(8, 40, 5, 2, seed=11), _plan(8, 40, 5, 2, seed=12)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.positions for p in a] != [p.positions for p in c]


def test_reassigned_pairs_slot_keeps_its_pairs_and_drops_completed_work():
    (plan, *_) = _plan(8, 40, 4, 2, n_repeats=2)
    done = [("rank", i) for i in list(plan.positions)[:3]]
    new = reassign_slot(plan, 1, completed=done)
    assert set(new.positions) == set(plan.positions) - {i for _, i in done}
    for i, pos in new.positions.items():
        assert pos == plan.positions[i]


def test_the_ranking_design_is_unchanged_by_the_pairs_option():
    args = ([f"c{i}" for i in range(12)], [f"r{i}" for i in range(9)], 4, 2, 5)
    default = plan_assignments(*args, n_variants=4)
    ranking = plan_assignments(*args, n_variants=4, design="ranking")
    assert [p.to_dict() for p in default] == [p.to_dict() for p in ranking]
    assert all(sorted(pos) == [0, 1, 2, 3] for p in default for pos in p.positions.values())


def test_an_unknown_design_is_refused():
    with pytest.raises(ValueError, match="design must be one of"):
        plan_assignments([], ["r0"], 1, 1, 0, n_variants=4, design="triples")
