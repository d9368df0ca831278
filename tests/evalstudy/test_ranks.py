"""One ranking: the width, range and tie rules, and mid-ranks against scipy."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import rankdata

from evalstudy.ranks import (
    MALFORMED_TIE,
    OUT_OF_RANGE,
    TIE_NOT_ALLOWED,
    WRONG_WIDTH,
    RankError,
    check_ranks,
    competition_ranks,
    is_tied,
    mid_ranks,
)

WIDTHS = range(2, 7)


def _well_formed_by_definition(ranks):
    n = len(ranks)
    return all(1 <= r <= n for r in ranks) and all(
        r == 1 + sum(1 for s in ranks if s < r) for r in ranks)


@pytest.mark.parametrize("n", WIDTHS)
def test_every_permutation_passes_with_or_without_ties(n):
    for perm in itertools.permutations(range(1, n + 1)):
        check_ranks(perm, n, allow_ties=False)
        check_ranks(perm, n, allow_ties=True)


@pytest.mark.parametrize("n", range(2, 6))
def test_exactly_the_competition_rankings_pass_when_ties_are_allowed(n):
    # Every vector in 1..n^n: passes iff it meets the contract's definition, and a
    # tie passes only where ties are allowed.
    for ranks in itertools.product(range(1, n + 1), repeat=n):
        ok = _well_formed_by_definition(ranks)
        if ok:
            check_ranks(ranks, n, allow_ties=True)
        else:
            with pytest.raises(RankError):
                check_ranks(ranks, n, allow_ties=True)
        if ok and not is_tied(ranks):
            check_ranks(ranks, n, allow_ties=False)
        else:
            with pytest.raises(RankError):
                check_ranks(ranks, n, allow_ties=False)


@pytest.mark.parametrize("ranks, n, allow_ties, code", [
    ((1, 2, 3), 4, False, WRONG_WIDTH),
    ((1, 2, 3, 4, 5), 4, True, WRONG_WIDTH),
    ((), 2, True, WRONG_WIDTH),
    ((0, 1, 2, 3), 4, False, OUT_OF_RANGE),
    ((1, 2, 3, 5), 4, False, OUT_OF_RANGE),
    ((1, 2.0, 3, 4), 4, False, OUT_OF_RANGE),
    ((1, True), 2, False, OUT_OF_RANGE),
    ((1, "2"), 2, False, OUT_OF_RANGE),
    ((1, 1), 2, False, TIE_NOT_ALLOWED),
    ((1, 2, 2, 4), 4, False, TIE_NOT_ALLOWED),
    ((1, 1, 2), 3, True, MALFORMED_TIE),      # the group of two takes places 1 and 2
    ((1, 2, 2, 3), 4, True, MALFORMED_TIE),   # dense ranking, not competition ranking
    ((2, 2, 3, 4), 4, True, MALFORMED_TIE),   # no best image
    ((1, 3, 3, 3), 4, True, MALFORMED_TIE),
    ((2, 2), 2, True, MALFORMED_TIE),         # "about the same" is (1, 1)
])
def test_refusals_say_which_rule_was_broken(ranks, n, allow_ties, code):
    with pytest.raises(RankError) as err:
        check_ranks(ranks, n, allow_ties=allow_ties)
    assert err.value.code == code
    message = str(err.value)
    assert message[0].isupper() and message.endswith(".")


def test_messages_name_the_width_and_show_a_tie():
    with pytest.raises(RankError, match="Rank all 3 images"):
        check_ranks([1, 2], 3, allow_ties=False)
    with pytest.raises(RankError, match=r"from 1 \(best\) to 5"):
        check_ranks([1, 2, 3, 4, 6], 5, allow_ties=False)
    with pytest.raises(RankError, match="does not allow ties"):
        check_ranks([1, 1, 3], 3, allow_ties=False)
    with pytest.raises(RankError, match=r"e\.g\. 1, 2, 2, 4, 5"):
        check_ranks([1, 2, 2, 3, 5], 5, allow_ties=True)


def test_pairwise_answers():
    for answer in ((1, 2), (2, 1), (1, 1)):
        check_ranks(answer, 2, allow_ties=True)
    with pytest.raises(RankError):
        check_ranks((1, 1), 2, allow_ties=False)


@pytest.mark.parametrize("n", [1, 7, 0, True])
def test_a_width_outside_2_to_6_is_a_programming_error(n):
    with pytest.raises(ValueError) as err:
        check_ranks([1] * (n if isinstance(n, int) else 1), n, allow_ties=True)
    assert not isinstance(err.value, RankError)


@given(st.integers(2, 6).flatmap(lambda n: st.lists(st.integers(0, 3), min_size=n, max_size=n)))
def test_competition_ranks_pass_and_mid_ranks_match_scipy(keys):
    ranks = competition_ranks(keys)
    check_ranks(ranks, len(keys), allow_ties=True)
    assert list(rankdata(keys, method="min")) == ranks
    mids = mid_ranks(ranks)
    assert mids == list(rankdata(ranks, method="average"))
    assert mids == list(rankdata(keys, method="average"))
    n = len(keys)
    assert sum(mids) == n * (n + 1) / 2


def test_mid_ranks_of_examples():
    assert mid_ranks([1, 2, 2, 4]) == [1.0, 2.5, 2.5, 4.0]
    assert mid_ranks([1, 1]) == [1.5, 1.5]
    assert mid_ranks([3, 1, 2]) == [3.0, 1.0, 2.0]
    assert mid_ranks([1, 1, 1, 1, 1, 1]) == [3.5] * 6
