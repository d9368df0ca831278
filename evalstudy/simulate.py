"""Simulated evaluators, for checking the statistics and for planning a study.

The model
---------
Count task. The image that variant v makes for "n objects" shows n + d objects,
d = 0 with probability q_v (the variant's quality), otherwise d = -2, -1, +1, +2
with probabilities (1 - q_v) * OFFSET_PROBS; counts below 0 become 0. The image
is shared by all its evaluators, so d is the item effect. Evaluator e miscounts
by one (up or down alike) with probability p_e, drawn once per evaluator from a
Beta distribution with mean `count_noise`: the evaluator effect. An answer is
"can't tell" with probability `cant_tell_rate` and skipped with `count_skip_rate`.

Rank task. Evaluator e's utility for variant v's image of caption i is
q_v + a_iv + b_ev + eps + position_bias[screen position], with
a ~ N(0, item_sd^2) per image, b ~ N(0, rater_sd^2) per evaluator and variant,
eps ~ N(0, rank_noise^2) per judgment; the ranking sorts utilities. A ranking
is skipped with probability `skip_rate`. With `tie_margin` d > 0 (a protocol that
allows ties) the rater sees utilities only to within d: each judgment lays a grid of
step d at a uniformly random offset over the utilities, and images in the same cell
are tied (competition ranks, "1,2,2,4"). Two images whose utilities differ by D then
tie with probability max(0, 1 - |D| / d), which keeps the expected scores in closed
form; d = 0 draws nothing more than before.

Careless evaluators (a share `careless`) answer counts uniformly at random,
rank at random and answer fast; the exclusion rules should find them.

Everything the analysis estimates has a closed form under this model
(`expected_count`, `expected_scores`), which is what bench/coverage.py checks
the intervals against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from .design import SlotPlan, plan_assignments, repeat_item_id
from .grid import StudyItem, study_items
from .protocol import Protocol
from .responses import ResponseTable, table_from_columns

OFFSET_PROBS = {-2: 0.15, -1: 0.35, 1: 0.35, 2: 0.15}  # where a wrong image's count lands
SKIP_REASONS = ("none of the images fits the caption", "cannot decide", "image did not load")
NOISE_CONCENTRATION = 10.0  # Beta(a, b) with a + b = 10 for the evaluators' miscount rates
COUNT_SECONDS, RANK_SECONDS, CARELESS_SECONDS = 6.0, 15.0, 0.8  # medians of the timings


@dataclass
class RaterSimulator:
    variant_quality: dict[str, float]
    count_noise: float = 0.1
    rank_noise: float = 0.3
    skip_rate: float = 0.1
    seed: int = 0
    cant_tell_rate: float = 0.02
    count_skip_rate: float = 0.0
    item_sd: float = 0.15
    rater_sd: float = 0.1
    position_bias: tuple[float, ...] = ()
    careless: float = 0.0
    tie_margin: float = 0.0  # utility grid step within which images are tied; 0: no ties

    def __post_init__(self) -> None:
        for v, q in self.variant_quality.items():
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quality of {v!r} must be in [0, 1], got {q}")
        for name in ("count_noise", "skip_rate", "cant_tell_rate", "count_skip_rate", "careless"):
            x = getattr(self, name)
            if not 0.0 <= x < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {x}")
        for name in ("rank_noise", "item_sd", "rater_sd", "tie_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def variants(self) -> list[str]:
        return list(self.variant_quality)

    # -- the pieces of the model, vectorised -------------------------------------------------

    def draw_image_counts(self, true_count: ArrayLike, variant: Sequence[str] | np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
        """How many objects the images show (arrays of true counts and variant names)."""
        true_count = np.asarray(true_count, dtype=int)
        q = np.array([self.variant_quality[v] for v in np.atleast_1d(variant)])
        offsets = np.array(list(OFFSET_PROBS), dtype=int)
        probs = np.array(list(OFFSET_PROBS.values()))
        wrong = rng.random(true_count.shape) >= q
        d = offsets[rng.choice(len(offsets), size=true_count.shape, p=probs)]
        return np.maximum(true_count + np.where(wrong, d, 0), 0)

    def draw_raters(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per-evaluator traits: miscount rate, rank taste per variant, carelessness."""
        mean = self.count_noise
        if mean > 0:
            noise = rng.beta(mean * NOISE_CONCENTRATION, (1 - mean) * NOISE_CONCENTRATION, n)
        else:
            noise = np.zeros(n)
        return {"noise": noise,
                "taste": rng.normal(0.0, self.rater_sd, (n, len(self.variants))),
                "careless": rng.random(n) < self.careless}

    def _answers(self, image_count: ArrayLike, noise: np.ndarray, careless: np.ndarray, max_count: int,
                 rng: np.random.Generator) -> np.ndarray:
        """Answers (float, NaN = can't tell) of evaluators with miscount rates `noise`."""
        image_count = np.asarray(image_count, dtype=int)
        u = rng.random(image_count.shape)
        step = np.where(u < noise / 2, -1, np.where(u < noise, 1, 0))
        ans = np.maximum(image_count + step, 0).astype(float)
        random_ans = rng.integers(0, max_count + 2, image_count.shape)
        ans = np.where(careless, random_ans, ans)
        cant = rng.random(image_count.shape) < self.cant_tell_rate
        return np.where(cant & ~careless, np.nan, ans)

    def _rankings(self, utilities: np.ndarray, careless: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """Ranks (1 = best) from a (n, m) utility array; careless rows get random utilities.
        With a tie margin, images in one cell of the judgment's grid share the smallest
        rank of their group (competition ranks)."""
        u = np.where(np.asarray(careless)[:, None], rng.random(utilities.shape), utilities)
        if self.tie_margin > 0:
            offset = rng.random((u.shape[0], 1)) * self.tie_margin
            cell = np.floor((u + offset) / self.tie_margin)
            return 1 + (cell[:, None, :] > cell[:, :, None]).sum(axis=2)
        order = np.argsort(-u, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, u.shape[1] + 1)[None, :], axis=1)
        return ranks

    # -- one answer at a time (the API the web app's demo uses) ------------------------------

    def answer_count(self, true_count: int, variant: str, rng: np.random.Generator) -> int | None:
        """A typical evaluator's answer for a fresh image; None for "can't tell"."""
        image = self.draw_image_counts(np.array([true_count]), [variant], rng)
        a = self._answers(image, np.array([self.count_noise]), np.array([False]),
                          true_count, rng)[0]
        return None if math.isnan(a) else int(a)

    def answer_rank(self, variants: Sequence[str], rng: np.random.Generator) -> list[int] | None:
        """Ranks (1 = best) for the images of `variants` in screen order, tied where the
        tie margin says; None for a skip (draw its reason with `skip_reason`)."""
        if rng.random() < self.skip_rate:
            return None
        m = len(variants)
        q = np.array([self.variant_quality[v] for v in variants])
        sd = math.sqrt(self.item_sd ** 2 + self.rater_sd ** 2 + self.rank_noise ** 2)
        u = q + rng.normal(0.0, sd, m) + self._bias(m)
        return self._rankings(u[None, :], np.array([False]), rng)[0].tolist()

    def skip_reason(self, rng: np.random.Generator) -> str:
        return SKIP_REASONS[int(rng.integers(len(SKIP_REASONS)))]

    def _bias(self, m: int) -> np.ndarray:
        b = np.zeros(m)
        b[: min(m, len(self.position_bias))] = self.position_bias[:m]
        return b

    # -- what the analysis should find --------------------------------------------------------

    def expected_count(self, true_count: int, variant: str) -> dict[str, float]:
        """Population values for honest evaluators: mean |answer - true| over answers,
        match ratio ("can't tell" a miss), can't-tell rate. Exact by enumeration."""
        q = self.variant_quality[variant]
        p = self.count_noise  # the answer is linear in each evaluator's rate: use the mean
        image = {true_count: q}
        for d, pd in OFFSET_PROBS.items():
            c = max(true_count + d, 0)
            image[c] = image.get(c, 0.0) + (1 - q) * pd
        mae = match = 0.0
        for c, pc in image.items():
            for step, ps in ((-1, p / 2), (0, 1 - p), (1, p / 2)):
                a = max(c + step, 0)
                mae += pc * ps * abs(a - true_count)
                match += pc * ps * (a == true_count)
        return {"mean_abs_error": mae, "match_ratio": match * (1 - self.cant_tell_rate),
                "cant_tell_rate": self.cant_tell_rate}

    def expected_scores(self, variants: Iterable[str] | None = None) -> dict[str, float]:
        """Population preference scores (m + 1 - expected mid-rank) without position bias:
        m minus, over the other images w, P(w above v) + P(w tied with v) / 2."""
        variants = list(variants or self.variants)
        m = len(variants)
        sd = self._difference_sd()
        out = {}
        for v in variants:
            if self.tie_margin > 0:
                beaten_by = sum(self._pair_probabilities(w, v)[0] + self._pair_probabilities(w, v)[2] / 2
                                for w in variants if w != v)
            else:
                beaten_by = sum(sps.norm.cdf((self.variant_quality[w] - self.variant_quality[v]) / sd)
                                if sd > 0 else float(self.variant_quality[w] > self.variant_quality[v])
                                for w in variants if w != v)
            out[v] = m - beaten_by
        return out

    def expected_pairs(self, variants: Iterable[str] | None = None) -> dict[tuple[str, str], dict[str, float]]:
        """Population win and tie rates of every pair (a, b), a before b in `variants`,
        without position bias, as the analysis reports them (see analysis.pairs)."""
        variants = list(variants or self.variants)
        out = {}
        for k, a in enumerate(variants):
            for b in variants[k + 1:]:
                above, below, tie = self._pair_probabilities(a, b)
                out[(a, b)] = {"win_rate": above / (above + below) if above + below > 0 else math.nan,
                               "tie_rate": tie, "win_rate_ties_half": above + tie / 2}
        return out

    def _difference_sd(self) -> float:
        return math.sqrt(2 * (self.item_sd ** 2 + self.rater_sd ** 2 + self.rank_noise ** 2))

    def _pair_probabilities(self, a: str, b: str) -> tuple[float, float, float]:
        """P(a above b), P(b above a), P(tied) for one judgment: D = u_a - u_b is normal
        with mean q_a - q_b; a grid cell of width d at a uniform offset holds both with
        probability max(0, 1 - |D| / d)."""
        mu = self.variant_quality[a] - self.variant_quality[b]
        sd, d = self._difference_sd(), self.tie_margin
        if sd == 0:
            tie = max(0.0, 1 - abs(mu) / d) if d > 0 else float(mu == 0)
            return (1 - tie) * (mu > 0), (1 - tie) * (mu < 0), tie
        if d == 0:
            above = float(sps.norm.sf(-mu / sd))
            return above, 1 - above, 0.0

        def partial(lo: float, hi: float) -> tuple[float, float]:  # E[D; lo <= D <= hi] and P(lo <= D <= hi)
            al, be = (lo - mu) / sd, (hi - mu) / sd
            p = float(sps.norm.cdf(be) - sps.norm.cdf(al))
            return mu * p - sd * float(sps.norm.pdf(be) - sps.norm.pdf(al)), p

        e_pos, p_pos = partial(0.0, d)
        e_neg, p_neg = partial(-d, 0.0)
        tie = p_pos + p_neg - (e_pos - e_neg) / d
        above = float(sps.norm.sf((d - mu) / sd)) + e_pos / d
        return above, 1 - above - tie, tie


def synthetic_protocol(variants: Iterable[str], *, objects: Sequence[str] = ("circle", "square", "triangle"),
                       counts: Sequence[int] = (1, 2, 3, 4, 5),
                       images_per_prompt: int = 2, n_captions: int = 10, n_evaluators: int = 20,
                       overlap: int = 3, gold: int = 0, repeats: int = 0,
                       exclusions: dict | None = None, allow_ties: bool = False,
                       design: str = "ranking") -> Protocol:
    """A protocol for simulations: plural '<object>s', inline captions 'caption k'.
    No objects: no count task; no captions: no preference task. `design`: the preference
    task's ("pairs": two of the variants per rank task)."""
    doc = {
        "name": "simulated study",
        "variants": list(variants),
        "sampling": {"cfg_scale": 3.0, "steps": 25, "sampler": "simulated", "seed": 0},
        "quality_control": {"gold": [{"id": f"g{k}", "object": objects[k % len(objects)],
                                      "count": counts[k % len(counts)]} for k in range(gold)],
                            "repeats": repeats},
        "evaluators": {"n": n_evaluators, "overlap": overlap},
        "analysis": {"exclusions": exclusions or {}},
    }
    if objects:
        doc["count_task"] = {"objects": [{"name": o, "plural": o + "s"} for o in objects],
                             "counts": list(counts), "images_per_prompt": images_per_prompt}
    if n_captions:
        pref: dict[str, Any] = {"captions": [f"caption {k + 1}" for k in range(n_captions)]}
        if allow_ties:
            pref["allow_ties"] = True
        if design != "ranking":
            pref["design"] = design
        doc["preference_task"] = pref
    return Protocol.from_dict(doc)


def simulate_study(simulator: RaterSimulator, protocol: Protocol, *, n_evaluators: int | None = None,
                   overlap: int | None = None, base_dir: str | Path | None = None,
                   seed: int | None = None) -> ResponseTable:
    """Simulate every response of a study run as planned by `plan_assignments`.

    The evaluators are 'e001', 'e002', ...; `n_evaluators` and `overlap` default to
    the protocol's. The seed defaults to the simulator's.
    """
    rng = np.random.default_rng(simulator.seed if seed is None else seed)
    missing = sorted(set(protocol.variants) - set(simulator.variants))
    if missing:
        raise ValueError(f"no quality given for variant(s) {missing}")
    if simulator.tie_margin > 0 and protocol.preference_task is not None and not protocol.allow_ties:
        raise ValueError("the simulator ties images (tie_margin > 0) but the protocol does not "
                         "allow ties (preference_task.allow_ties)")
    n_ev = n_evaluators or protocol.evaluators.n
    k = overlap or protocol.evaluators.overlap
    items = study_items(protocol, base_dir)
    by_id: dict[str, StudyItem] = {it.item_id: it for it in items}
    count_ids = [it.item_id for it in items if it.task == "count" and not it.is_gold]
    gold_ids = [it.item_id for it in items if it.is_gold]
    rank_ids = [it.item_id for it in items if it.task == "rank"]
    variants = list(protocol.variants)
    m = len(variants)
    plans = plan_assignments(count_ids, rank_ids, n_ev, min(k, n_ev),
                             int(rng.integers(2 ** 31)), n_variants=m, gold_item_ids=gold_ids,
                             n_repeats=protocol.quality_control.repeats, design=protocol.design)
    raters = simulator.draw_raters(n_ev, rng)
    max_count = max((it.true_count or 0) for it in items if it.task == "count") if count_ids else 0

    # Item effects, drawn once per item.
    image_count = {}
    if count_ids:
        cnt_items = [by_id[i] for i in count_ids]
        shown_as = cast(list[str], [it.variant for it in cnt_items])  # a non-gold count item names its variant
        drawn = simulator.draw_image_counts(np.array([it.true_count for it in cnt_items]), shown_as, rng)
        image_count = dict(zip(count_ids, drawn.tolist(), strict=True))
    image_count.update({g: by_id[g].true_count for g in gold_ids})  # gold images are exact
    item_effect = {i: rng.normal(0.0, simulator.item_sd, m) for i in sorted(rank_ids)}

    count_rows, rank_rows = _showings(plans)
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant",
                                              "prompt", "object", "true_count", "answer_count",
                                              "rank", "skipped", "skip_reason", "position",
                                              "seconds", "is_gold", "image_id", "seed",
                                              "repeat_of")}
    names = [f"e{s + 1:03d}" for s in range(n_ev)]
    # The count answers draw from `rng` before the rankings, in this order.
    if count_rows:
        _count_columns(cols, count_rows, simulator, raters, by_id, image_count, names, max_count, rng)
    if rank_rows:
        _rank_columns(cols, rank_rows, simulator, raters, by_id, item_effect, names, variants, rng)
    return table_from_columns(cols, allow_ties=protocol.allow_ties)


def _showings(plans: Iterable[SlotPlan]) -> tuple[list[tuple], list[tuple]]:
    """Each plan's showings in order: count (slot, item id, is repeat) and rank (slot, item
    id, is repeat, positions shown); a second showing of an item is its repeat."""
    count_rows: list[tuple] = []
    rank_rows: list[tuple] = []
    for plan in plans:
        seen: set[tuple[str, str]] = set()
        for task, item in plan.items:
            repeat = (task, item) in seen
            seen.add((task, item))
            if task == "count":
                count_rows.append((plan.slot, item, repeat))
            else:
                pos = plan.repeat_positions[item] if repeat else plan.positions[item]
                rank_rows.append((plan.slot, item, repeat, pos))
    return count_rows, rank_rows


def _seconds(rng: np.random.Generator, careless: np.ndarray, ev_idx: np.ndarray, median: float) -> np.ndarray:
    """Seconds per showing: log-normal around `median`, near CARELESS_SECONDS for a careless rater."""
    t = median * np.exp(rng.normal(0.0, 0.5, len(ev_idx)))
    return np.where(careless[ev_idx], CARELESS_SECONDS * np.exp(rng.normal(0, 0.3, len(ev_idx))),
                    t).round(2)


def _count_columns(cols: dict[str, list], count_rows: list[tuple], simulator: RaterSimulator, raters: dict,
                   by_id: dict[str, StudyItem], image_count: dict, names: list[str], max_count: int,
                   rng: np.random.Generator) -> None:
    """Append one row per count showing to `cols`."""
    careless = raters["careless"]
    ev_idx = np.array([r[0] for r in count_rows])
    imgs = np.array([image_count[r[1]] for r in count_rows])
    answers = simulator._answers(imgs, raters["noise"][ev_idx], careless[ev_idx], max_count, rng)
    skipped = rng.random(len(count_rows)) < simulator.count_skip_rate
    secs = _seconds(rng, careless, ev_idx, COUNT_SECONDS)
    for n, (e, item_id, repeat) in enumerate(count_rows):
        it = by_id[item_id]
        cols["task"].append("count")
        cols["item_id"].append(repeat_item_id(item_id) if repeat else item_id)
        cols["evaluator_id"].append(names[e])
        cols["variant"].append(it.variant or "")
        cols["prompt"].append(it.prompt)
        cols["object"].append(it.object)
        cols["true_count"].append(it.true_count)
        cols["answer_count"].append(math.nan if skipped[n] else answers[n])
        cols["rank"].append(math.nan)
        cols["skipped"].append(bool(skipped[n]))
        cols["skip_reason"].append(SKIP_REASONS[2] if skipped[n] else "")
        cols["position"].append(math.nan)
        cols["seconds"].append(secs[n])
        cols["is_gold"].append(it.is_gold)
        cols["image_id"].append(item_id)
        cols["seed"].append(math.nan if it.seed is None else it.seed)
        cols["repeat_of"].append(item_id if repeat else "")


def _rank_columns(cols: dict[str, list], rank_rows: list[tuple], simulator: RaterSimulator, raters: dict,
                  by_id: dict[str, StudyItem], item_effect: dict, names: list[str], variants: list[str],
                  rng: np.random.Generator) -> None:
    """Append one row per image of each ranking shown to `cols`: every variant in the ranking
    design, the two shown in the pairs design."""
    careless = raters["careless"]
    ev_idx = np.array([r[0] for r in rank_rows])
    n_r = len(rank_rows)
    shown = np.array([r[3] for r in rank_rows])               # (n, w) variant index per position
    vs = np.sort(shown, axis=1)                               # (n, w) the variants shown, in order
    m = vs.shape[1]                                           # the width: all variants, or 2
    screen = np.argsort(shown, axis=1)                        # (n, w) position of each of vs
    q = np.array([simulator.variant_quality[v] for v in variants])
    a = np.take_along_axis(np.stack([item_effect[r[1]] for r in rank_rows]), vs, axis=1)
    b = np.take_along_axis(raters["taste"][ev_idx][:, [simulator.variants.index(v) for v in variants]], vs, axis=1)
    u = (q[vs] + a + b + rng.normal(0.0, simulator.rank_noise, (n_r, m))
         + simulator._bias(m)[screen])
    ranks = simulator._rankings(u, careless[ev_idx], rng)
    skipped = rng.random(n_r) < simulator.skip_rate
    reasons = rng.integers(len(SKIP_REASONS), size=n_r)
    secs = _seconds(rng, careless, ev_idx, RANK_SECONDS)
    for n, (e, item_id, repeat, _) in enumerate(rank_rows):
        it = by_id[item_id]
        for k in range(m):
            v = int(vs[n, k])
            cols["task"].append("rank")
            cols["item_id"].append(repeat_item_id(item_id) if repeat else item_id)
            cols["evaluator_id"].append(names[e])
            cols["variant"].append(variants[v])
            cols["prompt"].append(it.prompt)
            cols["object"].append("")
            cols["true_count"].append(math.nan)
            cols["answer_count"].append(math.nan)
            cols["rank"].append(math.nan if skipped[n] else ranks[n, k])
            cols["skipped"].append(bool(skipped[n]))
            cols["skip_reason"].append(SKIP_REASONS[reasons[n]] if skipped[n] else "")
            cols["position"].append(screen[n, k])
            cols["seconds"].append(secs[n])
            cols["is_gold"].append(False)
            cols["image_id"].append(f"{item_id}:{variants[v]}")
            cols["seed"].append(math.nan if it.seed is None else it.seed)
            cols["repeat_of"].append(item_id if repeat else "")


def simulate_bradley_terry_pairs(protocol: Protocol, strengths: dict[str, float], *, tie_parameter: float = 0.0,
                                 left_advantage: float = 1.0, n_evaluators: int | None = None,
                                 seed: int = 0) -> ResponseTable:
    """The rank rows of a pairs study (preference_task.design "pairs") answered by a crowd
    that follows Davidson's Bradley-Terry model exactly, as planned by `plan_assignments`:
    variant i is preferred to j with probability s_i / D, tied with nu sqrt(s_i s_j) / D
    (D = s_i + s_j + nu sqrt(s_i s_j)), the image on the left counted `left_advantage` times
    its strength. For checking that the analysis recovers known strengths (bench/
    pairs_recovery.py); the rater-level model above (`simulate_study`) simulates pairs too."""
    if not protocol.is_pairs:
        raise ValueError("simulate_bradley_terry_pairs simulates a protocol whose preference_task.design is \"pairs\"")
    if tie_parameter > 0 and not protocol.allow_ties:
        raise ValueError("tie_parameter > 0 needs a protocol that allows ties (preference_task.allow_ties)")
    missing = sorted(set(protocol.variants) - set(strengths))
    if missing or any(not strengths[v] > 0 for v in protocol.variants):
        raise ValueError(f"every variant needs a strength > 0 (missing: {missing})")
    rng = np.random.default_rng(seed)
    n_ev = n_evaluators or protocol.evaluators.n
    items = {it.item_id: it for it in study_items(protocol) if it.task == "rank"}
    plans = plan_assignments([], list(items), n_ev, min(protocol.evaluators.overlap, n_ev), seed,
                             n_variants=len(protocol.variants), design="pairs")
    variants = list(protocol.variants)
    s = np.array([strengths[v] for v in variants])
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                                              "true_count", "answer_count", "rank", "skipped", "skip_reason",
                                              "position", "seconds", "is_gold", "seed")}
    for plan in plans:
        for item_id, (left, right) in plan.positions.items():
            sl, sr = s[left] * left_advantage, s[right]
            tie = tie_parameter * math.sqrt(sl * sr)
            u = rng.random() * (sl + sr + tie)
            ranks = (1, 2) if u < sl else (2, 1) if u < sl + sr else (1, 1)
            for position, (v, rank) in enumerate(zip((left, right), ranks, strict=True)):
                cols["task"].append("rank")
                cols["item_id"].append(item_id)
                cols["evaluator_id"].append(f"e{plan.slot + 1:03d}")
                cols["variant"].append(variants[v])
                cols["prompt"].append(items[item_id].prompt)
                cols["object"].append("")
                cols["true_count"].append(math.nan)
                cols["answer_count"].append(math.nan)
                cols["rank"].append(rank)
                cols["skipped"].append(False)
                cols["skip_reason"].append("")
                cols["position"].append(position)
                cols["seconds"].append(RANK_SECONDS)
                cols["is_gold"].append(False)
                cols["seed"].append(items[item_id].seed)
    return table_from_columns(cols, allow_ties=protocol.allow_ties)
