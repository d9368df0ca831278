"""Do the headline 95% intervals hold in crowds that behave in ways no other bench simulates?

The crowd model is this file's own (not evalstudy.simulate's, not bench/coverage.py's). A
study: 4 variants; a count task of 3 objects x 5 asked counts (2-6) x 2 seeds, one image per
variant of each prompt-and-seed unit, 3 raters per image; a rank task of 30 captions, 3
raters per caption, the four images laid out by rows of a Williams square. Each rater's
tasks come in a random order (their session), and every answer is made as follows.

* An image of variant v asked for c objects shows k objects: c with probability RIGHT[v],
  else c + d, d from {-2, -1, +1, +2}; its clutter h = exp(unit effect + image effect) k / 4.
* A rater perceives k, miscounting with probability expit(-2 + a_r + log h), a_r ~ N(0,
  0.5^2) their skill, by -1 (60%) or +1, by 2 a sixth of the time; "can't tell" with
  probability expit(-3.5 + 0.5 log h).
* A ranking orders utilities QUALITY[v] + caption x variant effect N(0, 0.4^2) + the
  rater's taste per variant N(0, 0.3^2) + N(0, 1) noise; 3% of rankings are skipped.

Behaviours, each a crowd of its own with one change from that reference (`plain`):

* `fatigue`: a rater's miscount logit grows by 2.5 and their rank noise by 1.5 s.d. from
  the first task of their session to the last (error grows with position);
* `skips`: informative "can't tell": logit -2.5 + 2 log h + 1.5 (image shows a wrong count)
  + 1 (cross-early), and rankings skipped with probability 0.5 exp(-gap / 0.25) (gap: the
  rater's top two utilities), so hard images and close rankings drop out;
* `anchoring`: 20% of raters answer the asked count c with probability 0.85 whatever the
  image shows (inflating the match ratio);
* `position`: the first screen slot's image gets +0.6 utility, and 10% of raters rank by
  screen order (slot 1 first);
* `power users`: 12% of raters get 12 times the others' share of tasks (as Prolific's
  returning participants do); they are also better counters (skill -1) and steadier rankers
  (noise 0.6), so load and behaviour go together;
* `subgroup`: 25% of raters prefer concat-early (+1.5 utility) and miscount
  cross-intermediate's images more (logit +1.5): a rater-by-variant interaction.

Estimands (the crowd's population values under the same protocol). A statistic of eq. 9 or
10 is a ratio of sums over a study's answers (`analyze`'s point estimate); its estimand is
the ratio of the sums' expectations over studies drawn by this protocol: fresh units,
images, raters (with the protocol's loads) and sessions. So a "can't tell" enters neither
the numerator nor the denominator of eq. 9 and 10 (the docs' definition: an average over
the images given a count), a skipped ranking enters no score, answers are weighted as the
protocol weights them (a power user's many answers count many times), and a position in a
session is drawn as the protocol draws it. The truth is computed by running the same
drawing code for TRUTH_STUDIES studies and dividing the summed sums (no formula); its
Monte Carlo s.e. (by the delta method over those studies) is printed. A paired difference's
truth is the difference of the two variants' truths; the preference score's is the ratio
of summed scores over summed unskipped rankings.

Per crowd and rater count, `analyze` (the entry point every report uses) gives the
intervals of eq. 9 (`mean_abs_error`), eq. 10 (`match_ratio`), the preference score and
the planned paired differences of all three (concat-intermediate - concat-early,
cross-intermediate - cross-early). Rows: coverage, its s.e. clustered by study (a family's
intervals of one study share its raters), misses with the truth below / above the
interval, mean width. The plain crowd's studies are analysed a second time with
`--more-n-boot` resamples (the protocols' default, 2,000), to show what the bench's fewer
resamples cost. A summary per family ends the table: the range and mean of its rows, and
the rows short of 0.93 by more than 1.96 s.e.

    nice -n 10 .venv/bin/python bench/crowd_behaviours.py [--studies 300] [--n-boot 300] [--more-n-boot 2000]
        [--only NAME] [--write]
    .venv/bin/python bench/crowd_behaviours.py --quick      # a few studies: the table's shape
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from bench.coverage import clustered_se  # noqa: E402
from evalstudy.analysis import AnalysisResult, analyze  # noqa: E402
from evalstudy.analysis.result import Interval  # noqa: E402
from evalstudy.design import williams_square  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

VARIANTS = ("concat-early", "concat-intermediate", "cross-early", "cross-intermediate")
RIGHT = np.array([0.55, 0.65, 0.62, 0.72])     # P(an image shows the asked count), per variant
QUALITY = np.array([0.0, 0.3, 0.15, 0.45])     # rank utility per variant
PAIRS = (("concat-intermediate", "concat-early"), ("cross-intermediate", "cross-early"))
OBJECTS = ("apple", "cup", "dog")
COUNTS = np.array([2, 3, 4, 5, 6])
SEEDS = 2
OVERLAP = 3
CAPTIONS = 30
TRUTH_STUDIES = 20_000
MEASURES = ("mean_abs_error", "match_ratio", "score")
RANK_FATIGUE = 0.6               # rank noise s.d. added over a session, per unit of `fatigue`


@dataclass(frozen=True)
class Crowd:
    name: str
    n_raters: int = 24
    fatigue: float = 0.0         # miscount logit added over a session (first task 0, last this)
    skips: bool = False          # informative "can't tell" and ranking skips
    anchor: float = 0.0          # share of raters answering the asked count
    first_slot: float = 0.0      # utility of the first screen slot
    by_order: float = 0.0        # share of raters ranking by screen order
    power: float = 0.0           # share of power users (12 times the load, better raters)
    subgroup: float = 0.0        # share preferring concat-early, miscounting cross-intermediate


BEHAVIOURS = (
    Crowd("plain"),
    Crowd("fatigue", fatigue=2.5),
    Crowd("skips", skips=True),
    Crowd("anchoring", anchor=0.2),
    Crowd("position", first_slot=0.6, by_order=0.1),
    Crowd("power users", power=0.12),
    Crowd("subgroup", subgroup=0.25),
)
RATER_COUNTS = (12, 36)
CROWDS = [replace(c, n_raters=n) for c in BEHAVIOURS for n in RATER_COUNTS]


# ---------------------------------------------------------------------------
# The crowd model
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Study:
    """One study's raw answers. Count answers (one per rater and image): unit, variant, asked
    count, answer (NaN: can't tell), rater. Rankings (one row per ranking, columns by
    variant): caption, rater, ranks (NaN rows: skipped), screen slot of each variant."""

    c_unit: np.ndarray
    c_variant: np.ndarray
    c_asked: np.ndarray
    c_answer: np.ndarray
    c_rater: np.ndarray
    r_caption: np.ndarray
    r_rater: np.ndarray
    r_ranks: np.ndarray      # (rankings, 4)
    r_slots: np.ndarray      # (rankings, 4)


def _pick(weight: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """(n_items, OVERLAP) distinct raters per item, drawn in proportion to `weight`."""
    keys = rng.random((n_items, len(weight))) ** (1.0 / weight)
    return np.argsort(-keys, axis=1)[:, :OVERLAP]


def _session_position(raters: np.ndarray, n_raters: int, rng: np.random.Generator) -> np.ndarray:
    """Each task's place in its rater's session, 0 (first) .. 1 (last), the order random.
    `raters`: the rater of each task (count answers and rankings together)."""
    order = np.lexsort((rng.random(len(raters)), raters))
    load = np.bincount(raters, minlength=n_raters)
    start = np.concatenate([[0], np.cumsum(load)[:-1]])
    index = np.empty(len(raters))
    index[order] = np.arange(len(raters)) - start[raters[order]]
    return index / np.maximum(load[raters] - 1, 1)


def draw_study(crowd: Crowd, rng: np.random.Generator) -> Study:
    n, m = crowd.n_raters, len(VARIANTS)
    kind = rng.random(n)
    power = kind < crowd.power
    anchored = rng.random(n) < crowd.anchor
    by_order = rng.random(n) < crowd.by_order
    sub = rng.random(n) < crowd.subgroup
    skill = rng.normal(0.0, 0.5, n) - np.where(power, 1.0, 0.0)
    noise = np.where(power, 0.6, 1.0)
    taste = rng.normal(0.0, 0.3, (n, m))
    taste[:, 0] += np.where(sub, 1.5, 0.0)
    weight = np.where(power, 12.0, 1.0)

    # Count task: units x variants images, OVERLAP raters each.
    n_units = len(OBJECTS) * len(COUNTS) * SEEDS
    asked_unit = np.tile(np.repeat(COUNTS, SEEDS), len(OBJECTS))
    wrong = rng.random((n_units, m)) >= RIGHT
    off = rng.choice([-2, -1, 1, 2], size=(n_units, m), p=[0.15, 0.4, 0.35, 0.1])
    shown = asked_unit[:, None] + np.where(wrong, off, 0)
    shown = np.where(shown < 1, asked_unit[:, None] + 1, shown)
    clutter = np.exp(rng.normal(0.0, 0.4, (n_units, 1)) + rng.normal(0.0, 0.3, (n_units, m))) * shown / 4
    raters = _pick(weight, n_units * m, rng)                          # (images, OVERLAP)
    image = np.repeat(np.arange(n_units * m), OVERLAP)
    c_rater = raters.ravel()
    c_unit, c_variant = image // m, image % m

    # Rank task.
    r_rater = _pick(weight, CAPTIONS, rng).ravel()
    r_caption = np.repeat(np.arange(CAPTIONS), OVERLAP)
    position = _session_position(np.concatenate([c_rater, r_rater]), n, rng)
    c_pos, r_pos = position[:len(c_rater)], position[len(c_rater):]

    k = shown[c_unit, c_variant]
    asked = asked_unit[c_unit]
    log_h = np.log(clutter[c_unit, c_variant])
    miss_logit = (-2.0 + skill[c_rater] + log_h + crowd.fatigue * c_pos
                  + np.where(sub[c_rater] & (c_variant == 3), 1.5, 0.0))
    miss = rng.random(len(k)) < special.expit(miss_logit)
    step = np.where(rng.random(len(k)) < 0.6, -1, 1) * np.where(rng.random(len(k)) < 1 / 6, 2, 1)
    answer = np.maximum(k + np.where(miss, step, 0), 0).astype(float)
    answer = np.where(anchored[c_rater] & (rng.random(len(k)) < 0.85), asked, answer)
    if crowd.skips:
        cant_logit = -2.5 + 2.0 * log_h + 1.5 * (k != asked) + 1.0 * (c_variant == 2)
    else:
        cant_logit = -3.5 + 0.5 * log_h
    answer = np.where(rng.random(len(k)) < special.expit(cant_logit), np.nan, answer)

    rows = williams_square(m)
    layout = np.array([rows[(j + i) % len(rows)] for j in range(CAPTIONS) for i in range(OVERLAP)])
    slots = np.argsort(layout, axis=1)                                # slot of each variant
    caption_effect = rng.normal(0.0, 0.4, (CAPTIONS, m))
    rank_noise = noise[r_rater] * (1.0 + RANK_FATIGUE * crowd.fatigue * r_pos)
    u = (QUALITY + caption_effect[r_caption] + taste[r_rater] + crowd.first_slot * (slots == 0)
         + rng.normal(0.0, 1.0, (len(r_rater), m)) * rank_noise[:, None])
    u = np.where(by_order[r_rater][:, None], -slots, u)
    ranks = (np.argsort(np.argsort(-u, axis=1), axis=1) + 1).astype(float)
    top = -np.sort(-u, axis=1)
    p_skip = 0.5 * np.exp(-(top[:, 0] - top[:, 1]) / 0.25) if crowd.skips else np.full(len(u), 0.03)
    ranks[rng.random(len(u)) < p_skip] = np.nan
    return Study(c_unit, c_variant, asked.astype(float), answer, c_rater, r_caption, r_rater, ranks, slots)


def to_table(s: Study) -> ResponseTable:
    """The study in the responses format the web app exports."""
    m = len(VARIANTS)
    n_c, n_r = len(s.c_unit), len(s.r_caption)
    obj = np.array(OBJECTS)[s.c_unit // (len(COUNTS) * SEEDS)]
    ranked_var = np.tile(np.arange(m), n_r)
    r_skip = np.repeat(np.isnan(s.r_ranks[:, 0]), m)
    cols = {
        "task": np.r_[np.full(n_c, "count"), np.full(n_r * m, "rank")],
        "item_id": np.r_[np.char.add(np.char.add("img-", s.c_unit.astype(str)),
                                     np.char.add("-", s.c_variant.astype(str))),
                         np.repeat(np.char.add("caption-", s.r_caption.astype(str)), m)],
        "evaluator_id": np.char.add("r", np.r_[s.c_rater, np.repeat(s.r_rater, m)].astype(str)),
        "variant": np.array(VARIANTS)[np.r_[s.c_variant, ranked_var]],
        "prompt": np.r_[np.char.add(np.char.add(s.c_asked.astype(int).astype(str), " "), obj),
                        np.repeat(np.char.add("caption ", s.r_caption.astype(str)), m)],
        "object": np.r_[obj, np.full(n_r * m, "")],
        "true_count": np.r_[s.c_asked, np.full(n_r * m, np.nan)],
        "answer_count": np.r_[s.c_answer, np.full(n_r * m, np.nan)],
        "rank": np.r_[np.full(n_c, np.nan), s.r_ranks.ravel()],
        "skipped": np.r_[np.zeros(n_c, dtype=bool), r_skip],
        "skip_reason": np.r_[np.full(n_c, ""), np.where(r_skip, "cannot decide", "")],
        "position": np.r_[np.full(n_c, np.nan), s.r_slots.ravel().astype(float)],
        "seconds": np.full(n_c + n_r * m, 6.0),
        "is_gold": np.zeros(n_c + n_r * m, dtype=bool),
        "seed": np.r_[(s.c_unit % SEEDS).astype(float), np.zeros(n_r * m)],
    }
    return table_from_columns(cols)


# ---------------------------------------------------------------------------
# Truths: ratios of summed sums over many studies of the same protocol
# ---------------------------------------------------------------------------

def study_sums(s: Study) -> np.ndarray:
    """(4 quantities, variants): summed abs error and matches over answers given a count,
    the answers given a count, summed scores over unskipped rankings, unskipped rankings."""
    m = len(VARIANTS)
    given = np.isfinite(s.c_answer)
    v = s.c_variant[given]
    err = np.abs(s.c_answer[given] - s.c_asked[given])
    ranked = np.isfinite(s.r_ranks[:, 0])
    return np.stack([np.bincount(v, weights=err, minlength=m),
                     np.bincount(v, weights=(err == 0).astype(float), minlength=m),
                     np.bincount(v, minlength=m).astype(float),
                     (m + 1 - s.r_ranks[ranked]).sum(axis=0),
                     np.full(m, float(ranked.sum()))])


def ratios(sums: np.ndarray) -> dict[str, np.ndarray]:
    """The three headline statistics per variant from summed study_sums."""
    return {"mean_abs_error": sums[0] / sums[2], "match_ratio": sums[1] / sums[2], "score": sums[3] / sums[4]}


def truths(crowd: Crowd, n_studies: int, rng: np.random.Generator) -> tuple[dict[tuple[str, str], float], float]:
    """(statistic, variant or pair) -> the crowd's value under this protocol, and the largest
    Monte Carlo s.e. among them (delta method over the studies)."""
    per = np.stack([study_sums(draw_study(crowd, rng)) for _ in range(n_studies)])   # (S, 5, m)
    value = ratios(per.sum(axis=0))
    out: dict[tuple[str, str], float] = {}
    worst = 0.0
    for key, (num, den) in {"mean_abs_error": (0, 2), "match_ratio": (1, 2), "score": (3, 4)}.items():
        # Each study's linearised contribution to the ratio, per variant.
        z = (per[:, num] - value[key] * per[:, den]) / per[:, den].mean(axis=0)          # (S, m)
        for v, name in enumerate(VARIANTS):
            out[(key, name)] = float(value[key][v])
        for a, b in PAIRS:
            ia, ib = VARIANTS.index(a), VARIANTS.index(b)
            out[(key, f"{a} - {b}")] = float(value[key][ia] - value[key][ib])
            worst = max(worst, float((z[:, ia] - z[:, ib]).std(ddof=1) / np.sqrt(n_studies)))
        worst = max(worst, float((z.std(axis=0, ddof=1) / np.sqrt(n_studies)).max()))
    return out, worst


# ---------------------------------------------------------------------------
# Intervals and the table
# ---------------------------------------------------------------------------

FAMILIES = (*MEASURES, *(f"difference: {k}" for k in MEASURES))


def intervals(res: AnalysisResult) -> dict[tuple[str, str], Interval]:
    """(family, variant or "a - b") -> the interval the results report."""
    out: dict[tuple[str, str], Interval] = {}
    for row in res.count.by_variant:
        out[("mean_abs_error", row.variant)] = row.mean_abs_error_ci
        out[("match_ratio", row.variant)] = row.match_ratio_ci
    for s in res.preference.by_variant:
        out[("score", s.variant)] = s.score_ci
    for t in res.tests.paired:
        if (t.a, t.b) in PAIRS and t.measure in MEASURES:
            out[(f"difference: {t.measure}", f"{t.a} - {t.b}")] = t.difference_ci
    return out


@dataclass(frozen=True)
class Row:
    """One crowd's coverage of one interval family at one number of resamples."""

    crowd: Crowd
    n_boot: int
    family: str
    n: int
    cover: float
    se: float
    below: float      # share with the truth below the interval
    above: float
    width: float
    truth_se: float

    def line(self) -> str:
        return (f"{self.crowd.name:<13}{self.crowd.n_raters:>7}{self.n_boot:>6}  {self.family:<28}{self.n:>6}"
                f"{self.cover:>8.3f}{self.se:>7.3f}{self.below:>8.3f}{self.above:>7.3f}{self.width:>8.3f}"
                f"{self.truth_se:>9.4f}")


def run_crowd(crowd: Crowd, studies: int, n_boots: tuple[int, ...], truth_studies: int, seed: int) -> list[Row]:
    """One crowd's rows: every study analysed once per number of resamples in `n_boots`."""
    index = CROWDS.index(crowd) if crowd in CROWDS else len(CROWDS)
    truth, truth_se = truths(crowd, truth_studies, np.random.default_rng([seed, index, 1]))
    rng = np.random.default_rng([seed, index])
    tally: dict[tuple[int, str], dict[str, list[float]]] = {
        (b, f): {"hit": [], "study": [], "lo": [], "hi": [], "w": []} for b in n_boots for f in FAMILIES}
    for s in range(studies):
        table = to_table(draw_study(crowd, rng))
        for n_boot in n_boots:
            for (fam, key), (low, high) in intervals(analyze(table, n_boot=n_boot, seed=s)).items():
                t = tally[(n_boot, fam)]
                x = truth[(fam.removeprefix("difference: "), key)]
                t["study"].append(s)
                if low is None or high is None:  # no interval: not covered, a miss on neither side
                    covered = below = above = False
                else:
                    covered, below, above = low <= x <= high, x < low, x > high
                    t["w"].append(high - low)
                t["hit"].append(float(covered))
                t["lo"].append(float(below))
                t["hi"].append(float(above))
    rows = []
    for (n_boot, fam), t in tally.items():
        hit = np.array(t["hit"])
        if len(hit):
            rows.append(Row(crowd, n_boot, fam, len(hit), float(hit.mean()), clustered_se(hit, np.array(t["study"])),
                            float(np.mean(t["lo"])), float(np.mean(t["hi"])), float(np.mean(t["w"])), truth_se))
    return rows


# The brief every coverage bench here answers to: a 95% interval should cover 0.93-0.97 (8
# or more raters); a row counts as short when even coverage + 1.96 s.e. stays under 0.93.
TARGET_LOW = 0.93


def summary(rows: list[Row]) -> list[str]:
    """Per family: the range and mean of its rows' coverage, and the rows that fall short."""
    lines = [f"{'family':<28}{'rows':>5}{'lowest':>8}{'highest':>8}{'mean':>7}{'s.e.':>7}  short (cover + 1.96 s.e. "
             f"< {TARGET_LOW})"]
    for fam in FAMILIES:
        got = [r for r in rows if r.family == fam]
        if not got:
            continue
        cover = np.array([r.cover for r in got])
        se = float(np.sqrt(sum(r.se ** 2 for r in got)) / len(got))  # rows are independent studies
        short = [f"{r.crowd.name} {r.crowd.n_raters}" for r in got if r.cover + 1.96 * r.se < TARGET_LOW]
        lines.append(f"{fam:<28}{len(got):>5}{cover.min():>8.3f}{cover.max():>8.3f}{cover.mean():>7.3f}{se:>7.3f}  "
                     f"{', '.join(short) or 'none'}")
    return lines


def main(args: argparse.Namespace) -> str:
    started = time.time()
    if args.quick:
        args.studies, args.n_boot, args.truth_studies, args.more_n_boot = 3, 50, 60, 100
    crowds = [c for c in CROWDS if not args.only or args.only in c.name]
    lines = [*result_header("Coverage of the headline 95% intervals in crowds with behaviours of their own "
                            "(bench/crowd_behaviours.py)"),
             f"studies per row: {args.studies}   bootstrap resamples: {args.n_boot} (the plain crowd's studies also "
             f"with {args.more_n_boot})   truth: {args.truth_studies} studies of the same protocol   design: "
             f"{len(OBJECTS)} objects x {len(COUNTS)} counts x {SEEDS} seeds x {len(VARIANTS)} variants (count), "
             f"{CAPTIONS} captions (rank), {OVERLAP} raters per image and caption",
             "",
             f"{'crowd':<13}{'raters':>7}{'boot':>6}  {'family':<28}{'n':>6}{'cover':>8}{'s.e.':>7}"
             f"{'miss lo':>8}{'hi':>7}{'width':>8}{'truth se':>9}"]
    warnings.simplefilter("ignore")
    rows: list[Row] = []
    for crowd in crowds:
        n_boots = (args.n_boot, args.more_n_boot) if crowd.name == "plain" and args.more_n_boot else (args.n_boot,)
        got = run_crowd(crowd, args.studies, n_boots, args.truth_studies, args.seed)
        rows += got
        lines += [r.line() for r in got]
        print("\n".join(r.line() for r in got), file=sys.stderr, flush=True)
    lines += ["", f"Over the crowds at {args.n_boot} resamples:",
              *summary([r for r in rows if r.n_boot == args.n_boot]),
              "", "cover: share of intervals holding the truth; s.e.: clustered by study (a family's intervals "
              "in one study share its raters and items; a family's mean over rows: the rows' s.e. combined); "
              "miss lo / hi: the truth below / above the interval; width: mean; truth se: the largest Monte Carlo "
              "s.e. of the crowd's truths.",
              result_footer(started)]
    return emit_result("crowd_behaviours", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=300, help="studies per crowd and rater count")
    parser.add_argument("--n-boot", type=int, default=300)
    parser.add_argument("--more-n-boot", type=int, default=2000,
                        help="the plain crowd's studies analysed again with this many resamples (0: not)")
    parser.add_argument("--truth-studies", type=int, default=TRUTH_STUDIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run the crowds whose name contains this")
    parser.add_argument("--quick", action="store_true",
                        help="3 studies per row, 50 (and 100) resamples: the table's shape")
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
