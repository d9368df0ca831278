"""The planned comparisons' test when raters judge several items: size and power of the
crossed t (what `tests.paired[].p_value` is now) against the item-level Wilcoxon
signed-rank (what it was; now `p_wilcoxon_items`).

Each study lays its showings out by the project's own plan (`simulate.simulate_study` on a
`synthetic_protocol`: `design.plan_assignments`, Williams rows, the real positions) and then
overwrites every answer with this file's crowd, not evalstudy.simulate's:

* rank task (pairwise A/B): utility = quality + a caption effect per variant N(0, 0.5^2) +
  the rater's own taste per variant N(0, s^2) + noise N(0, 1); the rater ranks by utility.
* count task (two variants, every prompt-and-seed pair shown for both): an image shows its
  true count, or with probability 0.3 one to two objects more or fewer (the same for both
  variants under the null); a rater miscounts it by one with probability
  expit(logit(0.15) + t), t the rater's own taste per variant N(0, s^2) (a rater who
  struggles with one variant's style). The measure is the mean absolute error.

Both tests are computed by the analysis' own functions on the analysis' own rows
(`analysis.significance.planned_difference` and `crossed_t_test`, `stats.wilcoxon_signed_rank`
on the items' mean differences), as `_tests_section` does. A last block runs `analyze`
end to end on some studies and counts the rows whose 95% interval and crossed p < 0.05
disagree.

    nice -n 10 .venv/bin/python bench/rater_clustering.py [--studies 1000] [--power-studies 300] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy import stats  # noqa: E402
from evalstudy.analysis import _CountData, _evaluator_codes, _RankData, analyze  # noqa: E402
from evalstudy.analysis.significance import crossed_t_test, planned_difference  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol  # noqa: E402

ALPHA = 0.05
VARIANTS = ["c-intermediate", "c-early"]
CAPTION_SD = 0.5
BASE_MISCOUNT = 0.15
WRONG_IMAGE = 0.3


@dataclass(frozen=True)
class Design:
    task: str
    n_raters: int
    n_captions: int  # rank: captions; count: ignored (the protocol's prompt grid)
    overlap: int

    def name(self) -> str:
        if self.task == "rank":
            return (f"rank A/B, {self.n_raters} raters x {self.n_captions} captions x {self.overlap} "
                    f"({self.n_captions * self.overlap / self.n_raters:g} each)")
        return f"count, {self.n_raters} raters, overlap {self.overlap}"


DESIGNS = (Design("rank", 20, 30, 3), Design("rank", 10, 30, 3), Design("count", 10, 0, 3))
TASTES = (0.0, 0.3, 0.6)


def _layout(design: Design, seed: int) -> dict[str, np.ndarray]:
    """The planner's showings for one study, as response columns to overwrite."""
    if design.task == "rank":
        protocol = synthetic_protocol(VARIANTS, objects=(), n_captions=design.n_captions,
                                      n_evaluators=design.n_raters, overlap=design.overlap)
    else:
        protocol = synthetic_protocol(VARIANTS, n_captions=0, n_evaluators=design.n_raters,
                                      overlap=design.overlap)
    # The planner's layout is what is kept: this rater's answers are overwritten by draw_study.
    layout_rater = RaterSimulator({v: 0.5 for v in VARIANTS}, skip_rate=0.0, cant_tell_rate=0.0)
    table = simulate_study(layout_rater, protocol, seed=seed)
    return {c: table[c].copy() for c in table.columns}


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1]


def draw_study(design: Design, taste_sd: float, effect: float, rng: np.random.Generator, seed: int) -> ResponseTable:
    """One study of `design`; `effect`: c-intermediate's advantage (rank: utility; count: it
    shows a wrong image `effect` less often)."""
    cols = _layout(design, seed)
    ev = _codes(cols["evaluator_id"])
    v = np.array([VARIANTS.index(x) for x in cols["variant"]])
    taste = rng.normal(0.0, taste_sd, (ev.max() + 1, 2))
    if design.task == "rank":
        item = _codes(cols["item_id"])
        caption = rng.normal(0.0, CAPTION_SD, (item.max() + 1, 2))
        u = np.where(v == 0, effect, 0.0) + caption[item, v] + taste[ev, v] + rng.normal(0, 1, len(v))
        # Rows of one ranking share evaluator and item; pairwise: the other row's utility.
        ranking = _codes(np.char.add(np.char.add(cols["evaluator_id"].astype(str), "\x1f"),
                                     cols["item_id"].astype(str)))
        best = np.full(ranking.max() + 1, -np.inf)
        np.maximum.at(best, ranking, u)
        cols["rank"] = np.where(u >= best[ranking], 1.0, 2.0)
    else:
        image = _codes(cols["image_id"])
        wrong_p = np.where(v == 0, WRONG_IMAGE - effect, WRONG_IMAGE)
        first = np.unique(image, return_index=True)[1]  # one draw per image
        wrong = rng.random(image.max() + 1) < wrong_p[first]
        shift = rng.choice([-2, -1, 1, 2], size=image.max() + 1, p=[0.15, 0.35, 0.35, 0.15])
        shown = np.maximum(cols["true_count"][first] + np.where(wrong, shift, 0), 0)[image]
        p_miss = special.expit(special.logit(BASE_MISCOUNT) + taste[ev, v])
        u = rng.random(len(v))
        step = np.where(u < p_miss / 2, -1, np.where(u < p_miss, 1, 0))
        cols["answer_count"] = np.maximum(shown + step, 0).astype(float)
    return table_from_columns({k: list(x) for k, x in cols.items()})


def two_tests(table: ResponseTable, task: str) -> tuple[float, float]:
    """(crossed t p, item-level Wilcoxon p) of c-intermediate - c-early, on the analysis' rows."""
    ev_code, _ = _evaluator_codes(table)
    if task == "rank":
        r = _RankData.build(table, ev_code, VARIANTS)
        done = ~r.skipped
        unit, ev, var = r.unit[done], r.evaluator[done], r.variant[done]
        num, den, n_units = (r.m + 1 - r.rank[done]).astype(float), np.ones(int(done.sum())), r.n_units
    else:
        c = _CountData.build(table, ev_code, VARIANTS, ["circle", "square", "triangle"])
        unit, ev, var, num, den, n_units = c.unit, c.evaluator, c.variant, c.abs_error, c.answered, c.n_units
    diff, spread = planned_difference(unit, ev, var, num, den, 0, 1, 2, 1 - ALPHA)
    crossed = crossed_t_test(diff, float(spread.var[0]), float(spread.df[0]))[1]
    s_num = np.bincount(unit * 2 + var, weights=num, minlength=2 * n_units).reshape(-1, 2)
    s_den = np.bincount(unit * 2 + var, weights=den, minlength=2 * n_units).reshape(-1, 2)
    ok = (s_den > 0).all(axis=1)
    d = s_num[ok, 0] / s_den[ok, 0] - s_num[ok, 1] / s_den[ok, 1]
    return crossed, stats.wilcoxon_signed_rank(d).p_value


def _rate(hits: list[bool]) -> str:
    p = float(np.mean(hits))
    return f"{p:>7.3f} ({np.sqrt(p * (1 - p) / len(hits)):.3f})"


def main(args: argparse.Namespace) -> str:
    started = time.time()
    warnings.simplefilter("ignore")
    lines = [*result_header("Planned comparisons when raters judge several items: crossed t against "
                            "the item-level Wilcoxon (bench/rater_clustering.py)"),
             f"alpha {ALPHA}; own crowd (see the script's docstring), layouts by the project's planner",
             "",
             f"{'design':<52}{'taste sd':>9}{'effect':>7}{'studies':>8}   {'crossed t (s.e.)':<17}"
             f"{'Wilcoxon items (s.e.)':<22}"]
    for d_index, design in enumerate(DESIGNS):
        effects = (0.0, 0.3) if design.task == "rank" else (0.0, 0.15)
        for t_index, taste in enumerate(TASTES):
            for e_index, effect in enumerate(effects):
                n = args.studies if effect == 0 else args.power_studies
                if design.task == "count" and effect == 0:
                    n = args.count_studies
                rng = np.random.default_rng([args.seed, d_index, t_index, e_index])
                crossed, wilcoxon = [], []
                for _ in range(n):
                    table = draw_study(design, taste, effect, rng, seed=int(rng.integers(2 ** 31)))
                    pc, pw = two_tests(table, design.task)
                    crossed.append(bool(pc < ALPHA))
                    wilcoxon.append(bool(pw < ALPHA))
                lines.append(f"{design.name():<52}{taste:>9.1f}{effect:>7.2f}{n:>8}   {_rate(crossed):<17}"
                             f"{_rate(wilcoxon):<22}")
                print(lines[-1], flush=True)
    # End to end: the result's own rows, interval against test.
    design = DESIGNS[1]
    rng = np.random.default_rng([args.seed, 99])
    disagree = rejected = covered_zero_significant = 0
    for s in range(args.e2e_studies):
        table = draw_study(design, 0.6, 0.0, rng, seed=int(rng.integers(2 ** 31)))
        (row,) = analyze(table, n_boot=args.n_boot, seed=s).tests.paired
        low, high = row.difference_ci
        excludes = low is not None and high is not None and not low <= 0 <= high
        rejected += row.p_value is not None and row.p_value < ALPHA
        disagree += excludes != (row.p_value is not None and row.p_value < ALPHA)
        covered_zero_significant += row.significant and not excludes
    lines += ["",
              f"end to end, analyze(n_boot={args.n_boot}) on {args.e2e_studies} null studies of "
              f"'{design.name()}', taste sd 0.6: tests.paired p_value < {ALPHA} in {rejected}; the 95% "
              f"interval and p < {ALPHA} disagree in {disagree}; interval covers 0 with significant: true "
              f"in {covered_zero_significant}",
              "",
              "rate: share of studies with p < 0.05 (effect 0: the size, target 0.05; else the power); s.e. "
              "binomial. effect: rank, c-intermediate's utility advantage on a noise sd of 1; count, how much "
              "less often its image is wrong (0.3 against 0.15). A Wilcoxon power above the crossed t's "
              "where the Wilcoxon's size is above 0.05 is the excess false-positive rate, not power.",
              result_footer(started)]
    return emit_result("rater_clustering", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=1000, help="null studies per rank row")
    parser.add_argument("--count-studies", type=int, default=600, help="null studies per count row")
    parser.add_argument("--power-studies", type=int, default=300, help="studies per row with an effect")
    parser.add_argument("--e2e-studies", type=int, default=100, help="studies analysed end to end")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
