"""What a study that stopped early reports: the naive estimate and interval after the
stopping rule says "stop: difference shown", and the stage-wise adjusted ones beside them.

Each study's evaluators bring one paired difference each, d_i ~ N(delta, 1), in arrival
order; at the looks LOOKS the rule (`sequential.monitor`, the project's own) reads the
mean of the first n_k differences with SE = sd / sqrt(n_k) and df = n_k - 1, and stops at
the first look that crosses (or says futility). The planned effect is PLANNED, power 0.8.

Table 1, the naive estimate: per truth delta, the share of studies stopped with a
difference shown; among them, the mean reported estimate (and its ratio to delta); and
the share of the naive 95% t intervals, estimate +- t(n_k - 1) SE at the stopping look,
that hold delta, over those stopped studies and over all studies (each at the look where
it stopped).

Tables 2 and 3, the adjusted estimate (`sequential.adjusted_estimate`: the median-
unbiased estimate and 95% interval under the stage-wise ordering, what the monitor reports
beside a stop): the share of estimates above delta (1/2 for a median-unbiased one), the
median of estimate - delta, and the share of intervals holding delta, naive and adjusted
side by side. Table 2 over the studies stopped with a difference shown; table 3 over every
study run as the ordering assumes, to its first crossing or its last look (futility is
non-binding: a study the rule stopped for futility is followed to where it would have
ended), the sample space on which the adjusted estimate is median-unbiased and its
interval exact.

    nice -n 10 .venv/bin/python bench/sequential_estimate.py [--studies 10000] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy import sequential  # noqa: E402

LOOKS = (10, 20, 30, 40)
ALPHA = 0.05
PLANNED = 0.5
POWER = 0.8
TRUTHS = (0.0, 0.25, 0.5)


@dataclass(frozen=True)
class Ending:
    """Where a study ended: the look's evaluators and data, the naive 1 - ALPHA t interval,
    and the adjusted estimate and interval."""

    n: int
    estimate: float
    naive_ci: tuple[float, float]
    adjusted: float
    adjusted_ci: tuple[float, float]


@dataclass(frozen=True)
class Study:
    decision: str          # the rule's, futility included
    ruled: Ending          # at the look where the rule stopped it (no adjusted one after a futility stop)
    efficacy_only: Ending  # at its first crossing or its last look


def _ending(look: sequential.LookInput, adjusted: float, adjusted_ci: tuple[float, float]) -> Ending:
    half = sps.t.ppf(1 - ALPHA / 2, look.df) * look.se
    return Ending(look.n_evaluators, look.estimate, (look.estimate - half, look.estimate + half),
                  adjusted, adjusted_ci)


def one_study(delta: float, rng: np.random.Generator, fractions: np.ndarray, bounds: np.ndarray) -> Study:
    d = rng.normal(delta, 1.0, LOOKS[-1])
    looks = []
    for n in LOOKS:
        x = d[:n]
        looks.append(sequential.LookInput(n, float(x.mean()), float(x.std(ddof=1) / np.sqrt(n)), n - 1.0))
    outcomes, _ = sequential.monitor(looks, LOOKS, ALPHA, PLANNED, POWER)
    last = outcomes[-1]
    ruled = _ending(looks[last.look - 1], last.adjusted_estimate, last.adjusted_estimate_ci)
    if np.isfinite(last.adjusted_estimate):  # a crossing, or the last look: where the ordering ends it too
        return Study(last.decision, ruled, ruled)
    # A futility stop before the last look: follow the study on, as if the rule had ignored it.
    z = [sequential.z_from_t(x.estimate, x.se, x.df) for x in looks]
    k = next(k for k in range(len(LOOKS)) if abs(z[k]) >= bounds[k] or k == len(LOOKS) - 1)
    adjusted, adjusted_ci, _ = sequential.adjusted_estimate(looks[k], fractions, bounds, k + 1, ALPHA)
    return Study(last.decision, ruled, _ending(looks[k], adjusted, adjusted_ci))


def _shares(endings: list[Ending], delta: float) -> list[str]:
    """naive > delta, adjusted > delta, median naive - delta, median adjusted - delta,
    naive cover, adjusted cover, as cells."""
    if not endings:
        return ["-"] * 6
    naive = np.array([e.estimate for e in endings])
    adjusted = np.array([e.adjusted for e in endings])
    naive_ci = np.array([e.naive_ci for e in endings])
    adjusted_ci = np.array([e.adjusted_ci for e in endings])
    # With no difference an estimate after a stop sits on either side of zero: its median
    # minus delta says nothing, so none is shown (the shares above still do).
    medians = ([f"{np.median(naive) - delta:+.3f}", f"{np.median(adjusted) - delta:+.3f}"] if delta
               else ["-", "-"])
    return [f"{np.mean(naive > delta):.3f}", f"{np.mean(adjusted > delta):.3f}", *medians,
            f"{np.mean((naive_ci[:, 0] <= delta) & (delta <= naive_ci[:, 1])):.3f}",
            f"{np.mean((adjusted_ci[:, 0] <= delta) & (delta <= adjusted_ci[:, 1])):.3f}"]


def _adjusted_header() -> str:
    return (f"{'delta':>6}{'studies':>9}{'naive > d':>11}{'adj. > d':>10}{'med. naive - d':>16}"
            f"{'med. adj. - d':>15}{'naive cover':>13}{'adj. cover':>12}")


def main(args: argparse.Namespace) -> str:
    started = time.time()
    fractions = np.asarray(LOOKS, dtype=float) / LOOKS[-1]
    bounds = sequential.boundaries(fractions, ALPHA)
    lines = [*result_header("After an early stop: the naive and the adjusted estimate and interval "
                            "(bench/sequential_estimate.py)"),
             f"d_i ~ N(delta, 1) per evaluator; looks {list(LOOKS)}; alpha {ALPHA}; planned effect {PLANNED}, "
             f"power {POWER}; {args.studies} studies per row",
             "",
             "1. The naive estimate",
             f"{'delta':>6}{'P(stop: diff)':>15}{'s.e.':>7}{'mean est | diff':>17}{'x truth':>9}"
             f"  {'by stopping look (mean est, share of studies)':<58}"
             f"{'cover | diff':>13}{'cover all':>11}"]
    stopped_rows, every_rows = [], []
    for index, delta in enumerate(TRUTHS):
        rng = np.random.default_rng([args.seed, index])
        studies = [one_study(delta, rng, fractions, bounds) for _ in range(args.studies)]
        shown = [s.ruled for s in studies if s.decision == sequential.STOP_DIFFERENCE]
        p = len(shown) / len(studies)

        def covers(e: Ending, delta: float = delta) -> bool:
            return e.naive_ci[0] <= delta <= e.naive_ci[1]

        by_look = []
        for n in LOOKS:
            at = [e.estimate for e in shown if e.n == n]
            if at and delta:
                by_look.append(f"n={n}: {np.mean(at):.3f} ({len(at) / len(studies):.3f})")
        # With no difference a stop's sign is a coin toss: its mean says nothing, so none is shown.
        mean_est = float(np.mean([e.estimate for e in shown])) if shown and delta else float("nan")
        ratio = f"{mean_est / delta:>9.2f}" if delta else f"{'-':>9}"
        cover_shown = float(np.mean([covers(e) for e in shown])) if shown else float("nan")
        lines.append(f"{delta:>6.2f}{p:>15.4f}{np.sqrt(p * (1 - p) / len(studies)):>7.4f}{mean_est:>17.3f}{ratio}  "
                     f"{'; '.join(by_look):<58}{cover_shown:>13.3f}"
                     f"{np.mean([covers(s.ruled) for s in studies]):>11.3f}")
        print(lines[-1], flush=True)
        stopped_rows.append((delta, len(shown), _shares(shown, delta)))
        every_rows.append((delta, len(studies), _shares([s.efficacy_only for s in studies], delta)))
    lines += ["", "mean est | diff: the mean reported estimate over the studies stopped with a difference shown; "
              "cover | diff: the share of their naive 95% t intervals (at the stopping look) holding delta; "
              "cover all: the same over every study, at the look where it stopped (futility included).", ""]
    for title, rows in (("2. Among the studies stopped with a difference shown: naive and adjusted", stopped_rows),
                        ("3. Every study, to its first crossing or its last look (futility ignored): "
                         "naive and adjusted", every_rows)):
        lines += [title, _adjusted_header()]
        lines += [f"{delta:>6.2f}{n:>9d}" + "".join(f"{c:>{w}}" for c, w in zip(cells, (11, 10, 16, 15, 13, 12),
                                                                                  strict=True))
                  for delta, n, cells in rows]
        lines.append("")
    se_half = 0.5 / np.sqrt(args.studies)
    se_cover = np.sqrt((1 - ALPHA) * ALPHA / args.studies)
    lines += [f"naive / adj. > d: the share of estimates above delta (1/2 where median-unbiased; s.e. over "
              f"{args.studies} studies {se_half:.4f}); med. ... - d: the median of estimate - delta; naive cover: "
              f"the 95% t interval at the look where the study ended, adj. cover: the adjusted 95% interval "
              f"(s.e. over {args.studies} studies {se_cover:.4f}). Table 3 is where the adjusted estimate is "
              f"median-unbiased and its interval exact by construction (up to the t statistics read as normal); "
              f"table 2 conditions on an early stop, which neither promises.",
              result_footer(started)]
    return emit_result("sequential_estimate", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
