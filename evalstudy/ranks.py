"""One ranking of n images: checking it, and the mid-ranks the analysis scores it with.

A stored ranking uses standard competition ranking ("1224"): rank 1 is the best;
images judged equally good share the smallest rank of their group and the next rank
skips, so "1, 2, 2, 4" says one best image, two tied second, one last. A ranking is
well-formed iff every rank is in 1..n and, for every image i,

    rank_i == 1 + #{j : rank_j < rank_i},

which without ties says it is a permutation of 1..n. Pairwise (n = 2) is the same
rule: (1, 2) left better, (2, 1) right better, (1, 1) about the same.

The analysis scores rank r of n as n + 1 - r and gives tied images their mid-rank
(the mean of the positions the group occupies), so a tie moves no total score.

Pure Python, no numpy: the web app checks an answer with it before storing it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

MIN_WIDTH = 2
MAX_WIDTH = 6  # evalstudy.protocol.MAX_RANKED_VARIANTS

# RankError.code values, for a caller that words its own message or counts refusals.
WRONG_WIDTH = "wrong_width"
OUT_OF_RANGE = "out_of_range"
TIE_NOT_ALLOWED = "tie_not_allowed"
MALFORMED_TIE = "malformed_tie"


class RankError(ValueError):
    """A ranking that cannot be stored. str(err) is a sentence a participant can read;
    ``code`` says which rule it broke (WRONG_WIDTH, OUT_OF_RANGE, TIE_NOT_ALLOWED,
    MALFORMED_TIE)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def check_ranks(ranks: Sequence[int], n: int, *, allow_ties: bool) -> None:
    """Raise RankError unless `ranks` (one rank per image, in the order the images are
    listed) is a well-formed ranking of `n` images: a permutation of 1..n, or, when
    `allow_ties`, competition ranks with ties. Returns None when it is."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_WIDTH <= n <= MAX_WIDTH:
        raise ValueError(f"a ranking ranks {MIN_WIDTH} to {MAX_WIDTH} images, not {n!r}")
    ranks = list(ranks)
    if len(ranks) != n:
        raise RankError(f"Rank all {n} images (this answer ranks {len(ranks)}).", WRONG_WIDTH)
    if any(isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= n for r in ranks):
        raise RankError(f"Each rank is a whole number from 1 (best) to {n}.", OUT_OF_RANGE)
    counts = Counter(ranks)
    if not allow_ties and len(counts) != n:
        raise RankError("Give every image a different rank: this study does not allow ties.",
                        TIE_NOT_ALLOWED)
    for r in ranks:
        if r != 1 + sum(k for value, k in counts.items() if value < r):
            raise RankError(
                "Images that are equally good share the best rank of their group, and the "
                f"next rank skips the places they take (e.g. {_example(n)}); "
                f"got {', '.join(map(str, ranks))}.", MALFORMED_TIE)


def _example(n: int) -> str:
    # 1, 2, 2, 4 for n = 4; 1, 1 for n = 2: the smallest tie that shows the rule.
    example = [1, 1] if n == 2 else [1, 2, 2] + list(range(4, n + 1))
    return ", ".join(map(str, example))


def mid_ranks(ranks: Sequence[float]) -> list[float]:
    """Each image's mid-rank: the mean of the positions its tie group occupies
    (1 + #{better} + (#{tied with it, itself included} - 1) / 2). Equals the
    competition rank where there is no tie; the mid-ranks of n images sum to
    n (n + 1) / 2 whatever the ties (scipy.stats.rankdata(method="average") applied
    to the ranks gives the same numbers)."""
    values = list(ranks)
    return [sum(1 for v in values if v < r) + (sum(1 for v in values if v == r) + 1) / 2
            for r in values]


def competition_ranks(keys: Sequence[float]) -> list[int]:
    """Competition ranks of `keys`, smaller key = better: 1 + #{j : key_j < key_i}.
    Equal keys are tied. (For a simulator or a converter; the result passes
    check_ranks(..., allow_ties=True).)"""
    values = list(keys)
    return [1 + sum(1 for v in values if v < k) for k in values]


def is_tied(ranks: Sequence[int]) -> bool:
    """Whether two images share a rank."""
    return len(set(ranks)) != len(ranks)
