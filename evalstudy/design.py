"""Who sees what, in which order and in which screen positions. What a study shows (the
grid of prompts, captions and items, with the ids the responses use) is `evalstudy.grid`.

`plan_assignments` splits the items among evaluator slots: every item goes to
`overlap` distinct slots, and the loads of any two slots differ by at most one
item per task. Each slot gets its own order (a seed stored in the plan), and
the screen order of the variants of a ranking item comes from the rows of a
Williams square, so that every variant appears in every position equally often
and, for an even number of variants, precedes every other variant equally
often. In the pairs design (`design="pairs"`) a ranking item shows two of the
variants instead: `pair_schedule` walks a round-robin (1-factorization) of every
pair, slot after slot, so that every pair is shown equally often, every variant
appears equally often, and one evaluator's pairs are spread over the schedule
(see `plan_assignments`). A slot abandoned by its evaluator is handed to someone
else with `reassign_slot`.

Orders are sorts on sha256 keys (`stable_key`), not draws from a
library's random stream, so that a stored seed reproduces a plan on any machine.
The seed is the plan's secret: with it, the protocol (often public) gives every
slot's items, order and screen positions, so a study draws its own at random
(webapp's `study_create`) and keeps it from the evaluators.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .grid import stable_key
from .protocol import PREFERENCE_DESIGNS

REPEAT_SUFFIX = "#repeat"


@dataclass(frozen=True)
class SlotPlan:
    """One evaluator's work.

    `items` lists (task, item_id) in presentation order; an entry that occurs twice
    is a repeat, and its second showing is recorded under `repeat_item_id(item_id)`
    with `repeat_of` set. `positions[item_id]` lists the variant indices of a ranking
    item in screen order (left to right); `repeat_positions` holds a different order
    for the repeated showing.
    """

    slot: int
    seed: int
    items: tuple[tuple[str, str], ...]
    positions: dict[str, list[int]]
    repeats: tuple[tuple[str, str], ...] = ()
    repeat_positions: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"slot": self.slot, "seed": self.seed,
                "items": [list(e) for e in self.items],
                "positions": {k: list(v) for k, v in self.positions.items()},
                "repeats": [list(e) for e in self.repeats],
                "repeat_positions": {k: list(v) for k, v in self.repeat_positions.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> SlotPlan:
        return cls(slot=int(d["slot"]), seed=int(d["seed"]),
                   items=tuple((str(t), str(i)) for t, i in d["items"]),
                   positions={k: [int(x) for x in v] for k, v in d["positions"].items()},
                   repeats=tuple((str(t), str(i)) for t, i in d.get("repeats", [])),
                   repeat_positions={k: [int(x) for x in v]
                                     for k, v in d.get("repeat_positions", {}).items()})


def repeat_item_id(item_id: str) -> str:
    """The item id under which the second showing of `item_id` is recorded."""
    return item_id + REPEAT_SUFFIX


def williams_square(n: int) -> list[list[int]]:
    """A Williams design for n treatments: n rows for even n, 2n rows for odd n.

    Every treatment occurs once in every column of each n-row square, and every
    ordered pair (a, b) of distinct treatments occurs with b right after a equally
    often (once for even n, twice over the 2n rows for odd n).
    """
    if n < 1:
        raise ValueError(f"williams_square needs n >= 1, got {n}")
    first = [0]
    lo, hi = 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + i) % n for x in first] for i in range(n)]
    if n % 2 == 1:
        rows += [row[::-1] for row in rows]
    return rows


def _int_seed(*parts: object) -> int:
    return int(stable_key(*parts)[:8], 16)


def _balanced_slots(ids: list[str], overlap: int, n_slots: int, start: int) -> list[list[int]]:
    """Copy j of item i goes to slot (start + i*overlap + j) mod n_slots: consecutive
    slots, hence distinct ones, and a cyclic fill, hence loads within one."""
    return [[(start + i * overlap + j) % n_slots for j in range(overlap)] for i in range(len(ids))]


def _order(entries: list[tuple[str, str]], seed: int, n_repeats: int,
           repeatable: set[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Shuffle by `seed`; repeat `n_repeats` entries of the first half somewhere in
    the second half, so that a repeat always follows its original."""
    ordered = sorted(entries, key=lambda e: stable_key(seed, *e))
    half = len(ordered) // 2
    candidates = [e for e in ordered[:half] if e in repeatable]
    chosen = sorted(candidates, key=lambda e: stable_key(seed, "repeat", *e))[:n_repeats]
    for e in chosen:
        span = len(ordered) - half + 1
        ordered.insert(half + int(stable_key(seed, "at", *e)[:8], 16) % span, e)
    return ordered, chosen


def round_robin(n: int) -> list[list[tuple[int, int]]]:
    """A 1-factorization of the complete graph on n vertices (the circle method): rounds of
    disjoint pairs (i, j), i < j, together holding every pair exactly once. For even n,
    n - 1 rounds of n / 2 pairs, each round holding every vertex once; for odd n, n rounds
    of (n - 1) / 2 pairs, each vertex missing from exactly one round."""
    if n < 2:
        raise ValueError(f"round_robin needs n >= 2, got {n}")
    m = n + (n % 2)  # odd n: a dummy vertex n, whose partner sits the round out
    rounds = []
    for r in range(m - 1):
        pairs = [(r, m - 1)] + [((r + k) % (m - 1), (r - k) % (m - 1)) for k in range(1, m // 2)]
        rounds.append([(min(a, b), max(a, b)) for a, b in pairs if max(a, b) < n])
    return rounds


def _left_first(i: int, j: int, n: int) -> bool:
    """Whether i goes on the left at a pair's first showing: a near-regular tournament
    (i beats j when j - i mod n is 1 .. (n - 1) // 2, the opposite pairs of even n by
    i < n / 2), so that over one pass of the schedule every variant is on the left in half
    its pairs, give or take one, and no variant is always on one side."""
    d = (j - i) % n
    if 2 * d == n:
        return i < n // 2
    return 1 <= d <= (n - 1) // 2


def pair_schedule(n_variants: int) -> list[tuple[int, int]]:
    """Every unordered pair of n_variants once, as (left, right) of its first showing, in
    round-robin order (`round_robin`): a run of consecutive pairs, taken cyclically, shows
    every variant equally often within one (even n) or two (odd n) when it starts at a
    round's start, and within two (even n) or three (odd n) wherever it starts."""
    return [(i, j) if _left_first(i, j, n_variants) else (j, i)
            for rnd in round_robin(n_variants) for i, j in rnd]


def plan_assignments(count_item_ids: Iterable[str], rank_item_ids: Iterable[str], n_slots: int, overlap: int,
                     seed: int, *, n_variants: int | None = None, gold_item_ids: Iterable[str] = (),
                     n_repeats: int = 0, design: str = "ranking") -> list[SlotPlan]:
    """Plan the work of `n_slots` evaluators.

    Every count and rank item is given to `overlap` distinct slots; per task the
    loads of two slots differ by at most one item (gold items, which every slot
    sees, and repeats come on top). `n_variants`, the study's number of variants, is
    required with rank items.

    design "ranking": `positions` are rows of `williams_square(n_variants)` (every
    variant, the ranking width), spread so that each slot and each item use every row
    equally often, give or take one: a slot whose rank load is a multiple of the
    square's rows (n for even n, 2n for odd n) sees every variant in every screen
    position equally often.

    design "pairs": `positions` are two variant indices (left, right). The showings are
    taken slot after slot and given the pairs of `pair_schedule` in turn, cyclically,
    from a start drawn from the seed (the variants renamed by the seed, as the Williams
    rows are). Hence, with P = n (n - 1) / 2 pairs:
      * every unordered pair is shown floor(S / P) or ceil(S / P) times (S showings);
      * every variant appears equally often within one (even n) or two (odd n) over the
        plan (the walk enters at a round's start), and within two (even n) or three (odd
        n) in each slot (a run of consecutive pairs: `pair_schedule`);
      * a slot with L rank tasks sees no pair twice while L <= P, and no pair more than
        ceil(L / P) times;
      * the k-th showing of a pair puts it the other way round from the (k-1)-th, so its
        left / right orders differ by at most one;
      * a repeated item shows the same pair with the sides swapped.
    """
    count_ids, rank_ids, gold_ids = list(count_item_ids), list(rank_item_ids), list(gold_item_ids)
    _check_plan_inputs(count_ids, rank_ids, gold_ids, n_slots, overlap, n_variants, n_repeats, design)
    if design == "pairs":
        return _plan_pairs(count_ids, rank_ids, n_slots, overlap, seed, n_variants or 0, gold_ids, n_repeats)

    rows = _relabelled(williams_square(n_variants), seed) if rank_ids and n_variants else []
    per_slot, dealt = _deal(count_ids, rank_ids, n_slots, overlap, seed)
    row_of: list[dict[str, int]] = [{} for _ in range(n_slots)]
    slot_rows = [[0] * len(rows) for _ in range(n_slots)]
    for k, (item, slots) in enumerate(dealt):
        item_rows = [0] * len(rows)
        for s in slots:
            r = min(range(len(rows)),
                    key=lambda r: (item_rows[r], slot_rows[s][r], (r - k) % len(rows)))
            item_rows[r] += 1
            slot_rows[s][r] += 1
            row_of[s][item] = r

    _balance_rows(row_of, len(rows))
    positions = [{i: list(rows[r]) for i, r in row_of[s].items()} for s in range(n_slots)]
    # A repeat shows the next row of the square.
    repeat_positions = [{i: list(rows[(r + 1) % len(rows)]) for i, r in row_of[s].items()} for s in range(n_slots)]
    return _slot_plans(per_slot, positions, repeat_positions, gold_ids, seed, n_repeats)


def _deal(count_ids: list[str], rank_ids: list[str], n_slots: int, overlap: int, seed: int
          ) -> tuple[list[list[tuple[str, str]]], list[tuple[str, list[int]]]]:
    """Each count and rank item given to `overlap` slots, in orders drawn from `seed`, the
    rank items continuing the count items' cycle (so a slot's total differs from another's
    by at most one): per slot its (task, item id) entries, and the rank items with their
    slots in dealing order."""
    per_slot: list[list[tuple[str, str]]] = [[] for _ in range(n_slots)]
    count_sorted = sorted(count_ids, key=lambda i: stable_key(seed, "count", i))
    for item, slots in zip(count_sorted, _balanced_slots(count_sorted, overlap, n_slots, 0), strict=True):
        for s in slots:
            per_slot[s].append(("count", item))
    rank_sorted = sorted(rank_ids, key=lambda i: stable_key(seed, "rank", i))
    start = (len(count_sorted) * overlap) % n_slots
    dealt = list(zip(rank_sorted, _balanced_slots(rank_sorted, overlap, n_slots, start), strict=True))
    for item, slots in dealt:
        for s in slots:
            per_slot[s].append(("rank", item))
    return per_slot, dealt


def _slot_plans(per_slot: list[list[tuple[str, str]]], positions: list[dict[str, list[int]]],
                repeat_positions: list[dict[str, list[int]]], gold_ids: list[str], seed: int,
                n_repeats: int) -> list[SlotPlan]:
    """The SlotPlans of dealt items: each slot's entries and the gold items in the slot's own
    order, its repeats chosen, a repeated rank item's screen order from `repeat_positions`."""
    plans = []
    for s, entries_s in enumerate(per_slot):
        slot_seed = _int_seed(seed, "slot", s)
        entries = entries_s + [("count", g) for g in gold_ids]
        ordered, repeats = _order(entries, slot_seed, n_repeats, set(entries_s))
        repeat_pos = {i: repeat_positions[s][i] for t, i in repeats if t == "rank"}
        plans.append(SlotPlan(slot=s, seed=slot_seed, items=tuple(ordered), positions=positions[s],
                              repeats=tuple(repeats), repeat_positions=repeat_pos))
    return plans


def _check_plan_inputs(count_ids: list[str], rank_ids: list[str], gold_ids: list[str], n_slots: int,
                       overlap: int, n_variants: int | None, n_repeats: int, design: str) -> None:
    """ValueError, naming the argument, for a plan that cannot be made (see plan_assignments)."""
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    if not 1 <= overlap <= n_slots:
        raise ValueError(f"overlap must be between 1 and n_slots={n_slots}, got {overlap}")
    for name, ids in (("count", count_ids), ("rank", rank_ids), ("gold", gold_ids)):
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate {name} item ids")
    if set(gold_ids) & set(count_ids):
        raise ValueError("gold item ids must differ from the count item ids")
    if n_repeats < 0:
        raise ValueError(f"n_repeats must be >= 0, got {n_repeats}")
    if rank_ids and n_variants is None:
        raise ValueError("rank items need n_variants, the number of variants")
    if design not in PREFERENCE_DESIGNS:
        raise ValueError(f"design must be one of {PREFERENCE_DESIGNS}, got {design!r}")


def _plan_pairs(count_ids: list[str], rank_ids: list[str], n_slots: int, overlap: int, seed: int,
                n_variants: int, gold_ids: list[str], n_repeats: int) -> list[SlotPlan]:
    """`plan_assignments` for the pairs design (its docstring states the balance)."""
    if rank_ids and n_variants < 2:
        raise ValueError(f"the pairs design needs at least 2 variants, got {n_variants}")
    per_slot, _ = _deal(count_ids, rank_ids, n_slots, overlap, seed)

    positions: list[dict[str, list[int]]] = [{} for _ in range(n_slots)]
    if rank_ids:
        # The renaming hides which variants share the public schedule's pattern (see
        # _relabelled); the start, where the walk enters the schedule.
        label = sorted(range(n_variants), key=lambda v: stable_key(seed, "label", v))
        schedule = [(label[a], label[b]) for a, b in pair_schedule(n_variants)]
        per_round = n_variants // 2  # a round's pairs; the walk enters at a round's start
        at = (_int_seed(seed, "pairs") % (len(schedule) // per_round)) * per_round
        shown = [0] * len(schedule)
        for s in range(n_slots):
            for item in (i for t, i in per_slot[s] if t == "rank"):
                p = at % len(schedule)
                left, right = schedule[p]
                positions[s][item] = [left, right] if shown[p] % 2 == 0 else [right, left]
                shown[p] += 1
                at += 1

    # A repeat shows the same pair with the sides swapped.
    swapped = [{i: pair[::-1] for i, pair in positions[s].items()} for s in range(n_slots)]
    return _slot_plans(per_slot, positions, swapped, gold_ids, seed, n_repeats)


def _relabelled(rows: list[list[int]], seed: int) -> list[list[int]]:
    """The square with its variants renamed by a permutation drawn from ``seed``.

    A renamed Williams square is a Williams square (each variant in each column once per
    n rows, each ordered pair adjacent equally often), so every balance the plan promises
    holds as before. Without the renaming, position k of a ranking held variant
    ``v + first[k] (mod n)`` in protocol order: the screen order was a rotation of one
    public pattern, and an evaluator who knew (or guessed) one image's model knew the
    others'; with it, which variants share a pattern depends on the seed, which a study
    keeps secret (webapp: ``Study.plan_seed``, drawn at random).
    """
    n = len(rows[0])
    label = sorted(range(n), key=lambda v: stable_key(seed, "label", v))
    return [[label[v] for v in row] for row in rows]


def _balance_rows(row_of: list[dict[str, int]], n_rows: int) -> None:
    """Make every slot and every item use the rows as evenly as possible (in place).

    The showings form a bipartite multigraph, slots on one side, items on the other,
    each showing an edge coloured by its row. While a vertex uses row a at least twice
    more often than row b, the edges of rows a and b are recoloured so that every
    vertex splits them within one (an Euler-tour alternation, below). That never raises
    any vertex's sum of squared row counts and lowers the offending vertex's, so the
    loop ends, with an equitable colouring (which bipartite graphs always have: de
    Werra 1971). A plan whose rows are already within one everywhere is unchanged.
    """
    if n_rows < 2:
        return
    while True:
        pair = _unbalanced_pair(row_of, n_rows)
        if pair is None:
            return
        _split_evenly(row_of, *pair)


def _unbalanced_pair(row_of: list[dict[str, int]], n_rows: int) -> tuple[int, int] | None:
    counts: dict[tuple[str, object], list[int]] = {}
    for s, rows in enumerate(row_of):
        for item, r in rows.items():
            counts.setdefault(("slot", s), [0] * n_rows)[r] += 1
            counts.setdefault(("item", item), [0] * n_rows)[r] += 1
    for vertex in sorted(counts, key=str):
        c = counts[vertex]
        hi, lo = max(range(n_rows), key=c.__getitem__), min(range(n_rows), key=c.__getitem__)
        if c[hi] - c[lo] >= 2:
            return hi, lo
    return None


_Vertex = tuple[str, object]  # ("slot", index) or ("item", id); an index or id of None: a dummy
_Edge = tuple[_Vertex, _Vertex, tuple[int, str] | None]  # (slot, item, the showing; None: a dummy edge)


def _split_evenly(row_of: list[dict[str, int]], a: int, b: int) -> None:
    """Recolour the showings of rows a and b so that every slot and item has as many
    of one as of the other, give or take one. Odd-degree vertices are joined to a
    dummy on the other side (and the two dummies to each other if needed); the graph
    is then bipartite with even degrees, so each component has a closed Euler trail
    of even length, and alternating a, b along it balances every vertex exactly;
    dropping the dummy edges unbalances a vertex by at most one."""
    edges = _even_degree_graph(row_of, a, b)
    for trail in _closed_trails(edges):
        for position, k in enumerate(trail):
            showing = edges[k][2]
            if showing is not None:
                s, item = showing
                row_of[s][item] = a if position % 2 == 0 else b


def _even_degree_graph(row_of: list[dict[str, int]], a: int, b: int) -> list[_Edge]:
    """The bipartite graph slot -- item of the showings of rows a and b, with the dummy
    edges that make every degree even."""
    edges: list[_Edge] = []
    for s, rows in enumerate(row_of):
        for item, r in sorted(rows.items()):
            if r in (a, b):
                edges.append((("slot", s), ("item", item), (s, item)))
    degree: dict[_Vertex, int] = {}
    for u, v, _ in edges:
        degree[u] = degree.get(u, 0) + 1
        degree[v] = degree.get(v, 0) + 1
    dummy_item: _Vertex = ("item", None)
    dummy_slot: _Vertex = ("slot", None)
    for vertex in sorted(degree, key=str):
        if degree[vertex] % 2:
            if vertex[0] == "slot":
                edges.append((vertex, dummy_item, None))
            else:
                edges.append((dummy_slot, vertex, None))
    if sum(1 for e in edges if e[1] == dummy_item) % 2:
        edges.append((dummy_slot, dummy_item, None))
    return edges


def _closed_trails(edges: list[_Edge]) -> list[list[int]]:
    """One closed Euler trail per component of an even-degree graph (Hierholzer), each as
    the list of its edges' indices; components in the order of their smallest vertex."""
    incident: dict[_Vertex, list[int]] = {}
    for k, (u, v, _) in enumerate(edges):
        incident.setdefault(u, []).append(k)
        incident.setdefault(v, []).append(k)
    used = [False] * len(edges)
    trails = []
    for start in sorted(incident, key=str):
        stack: list[tuple[_Vertex, int | None]] = [(start, None)]
        trail: list[int] = []
        while stack:
            vertex, via = stack[-1]
            while incident[vertex] and used[incident[vertex][-1]]:
                incident[vertex].pop()
            if incident[vertex]:
                k = incident[vertex].pop()
                used[k] = True
                u, v, _ = edges[k]
                stack.append((v if u == vertex else u, k))
            else:
                stack.pop()
                if via is not None:
                    trail.append(via)
        trails.append(trail)
    return trails


def reassign_slot(plan: SlotPlan, attempt: int, completed: Iterable[tuple[str, str]] = ()) -> SlotPlan:

    """The plan for the next evaluator of an abandoned slot.

    `attempt` (1, 2, ...) counts hand-overs and seeds the new order. Entries in
    `completed` (the (task, item_id) pairs whose responses are kept) are dropped;
    a repeat whose original was completed is dropped too, since consistency is
    measured within one evaluator. Screen positions stay as planned.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts hand-overs from 1, got {attempt}")
    done = {(str(t), str(i)) for t, i in completed}
    remaining = [e for e in dict.fromkeys(plan.items) if e not in done]
    repeatable = {e for e in plan.repeats if e in remaining}
    seed = _int_seed(plan.seed, "reassign", attempt)
    ordered = sorted(remaining, key=lambda e: stable_key(seed, *e))
    half = len(ordered) // 2
    # Keep the planned repeats when the original now falls in the first half.
    kept = [e for e in ordered[:half] if e in repeatable]
    for e in kept:
        span = len(ordered) - half + 1
        ordered.insert(half + int(stable_key(seed, "at", *e)[:8], 16) % span, e)
    return SlotPlan(slot=plan.slot, seed=seed, items=tuple(ordered),
                    positions={i: p for i, p in plan.positions.items()
                               if ("rank", i) in remaining},
                    repeats=tuple(kept),
                    repeat_positions={i: p for i, p in plan.repeat_positions.items()
                                      if ("rank", i) in kept})
