"""The count task: the paper's eq. 9 (average error) and eq. 10 (match ratio) per variant,
per variant and object, and per cell, with the can't-tell rate beside them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .. import bootstrap as bs
from .data import _CountData, _ratio_stat, kish_raters, parameter_range, rate_intervals
from .result import CountSection, CountStat, edge_interval_note

# A variant's mean error leans on one rater when that rater's leave-one-out influence holds
# more than this share of all raters' squared influences. With 20 raters whose biases are
# normal the largest share passes 0.7 in about 6% of studies, with t(3) biases in about
# a quarter (bench/results/heavy_tails-*.txt).
RATER_INFLUENCE_SHARE = 0.7
RATER_INFLUENCE_NOTE = (
    "One rater moves a variant's mean error far more than the others ({variants}: that rater "
    "holds more than 70% of the raters' squared leave-one-out influence), so the raters' errors look "
    "heavy-tailed. This study's interval is widened by that rater; studies from such a crowd that draw "
    "no such rater get mean-error intervals that are too narrow (with 20 raters whose biases follow a "
    "t(3) law, 95% intervals covered 0.87 in the studies without this note). Check that rater against "
    "the gold items.")


def _count_section(c: _CountData, w_units: np.ndarray, v_eval: np.ndarray,
                   level: float) -> tuple[CountSection, dict[str, np.ndarray]]:
    """The section, and the by-variant resampled mean errors and match ratios (n_boot, nv),
    which the paired tests difference."""
    nv, no, nc = len(c.variants), len(c.objects), len(c.counts)
    out: dict[str, list[CountStat]] = {"by_variant": [], "by_variant_object": [],
                                       "by_variant_object_count": []}
    reps_out: dict[str, np.ndarray] = {}
    if c.n_rows == 0:
        return CountSection(), reps_out
    fine = (c.variant * no + c.object) * nc + c.count
    n_fine = nv * no * nc
    # Resampled sums of: responses with an answer or "can't tell", answers, |errors|, matches.
    quantities = np.stack([c.nonskip, c.answered, c.abs_error, c.match])
    nq = len(quantities)
    n_boot = w_units.shape[0]
    sums = bs.crossed_sums(np.tile(c.unit, nq), np.tile(c.evaluator, nq),
                           (fine[None, :] * nq + np.arange(nq)[:, None]).ravel(),
                           quantities.ravel(), n_fine * nq, w_units, v_eval)
    sums = sums.reshape(n_boot, nv, no, nc, nq)
    point = np.stack([np.bincount(fine, weights=q, minlength=n_fine)
                      for q in (*quantities, c.skipped)], axis=-1)
    point = point.reshape(nv, no, nc, nq + 1)
    images = defaultdict(set)
    for g, i in zip(fine.tolist(), c.item.tolist(), strict=True):
        images[g].add(i)

    levels = [
        ("by_variant", c.variant, (nv,), sums.sum(axis=(2, 3)), point.sum(axis=(1, 2))),
        ("by_variant_object", c.variant * no + c.object, (nv, no), sums.sum(axis=3),
         point.sum(axis=2)),
        ("by_variant_object_count", fine, (nv, no, nc), sums, point),
    ]
    for name, group, shape, s, p in levels:
        n_groups = int(np.prod(shape))
        s = s.reshape(n_boot, n_groups, nq)
        p = p.reshape(n_groups, nq + 1)  # the point sums also hold the skips
        stat = {}
        # eq. 9 and eq. 10 over one n, the images given a count; "can't tell" beside them,
        # and counted as a miss only in the labelled sensitivity row.
        for key, num_i, den_i, num_rows, den_rows in (
                ("mean_abs_error", 2, 1, c.abs_error, c.answered),
                ("match_ratio", 3, 1, c.match, c.answered),
                ("cant_tell_rate", None, 0, c.cant_tell, c.nonskip),
                ("match_ratio_cant_tell_as_miss", 3, 0, c.match, c.nonskip)):
            num = p[:, num_i] if num_i is not None else p[:, 0] - p[:, 1]
            rnum = s[:, :, num_i] if num_i is not None else s[:, :, 0] - s[:, :, 1]
            spread = bs.ratio_corrections(c.unit, c.evaluator, group, num_rows, den_rows, n_groups, level)
            stat[key] = _ratio_stat(num, p[:, den_i], rnum, s[:, :, den_i], spread, level,
                                    parameter_range(key))
            if key != "mean_abs_error":
                # A rate: Wilson on its effective number of answers, as every rate (no [1, 1]
                # where every answer matched); the resamples still serve the paired differences.
                est_k, _, reps_k = stat[key]
                stat[key] = (est_k, rate_intervals(c.unit, c.evaluator, group, num_rows, den_rows, n_groups,
                                                   level, spread), reps_k)
            if key == "mean_abs_error":  # its rows are the counted answers
                raters = spread.n_evals
                effective = kish_raters(group, c.evaluator, c.answered, n_groups)
        if name == "by_variant":
            reps_out = {"mean_abs_error": stat["mean_abs_error"][2],
                        "match_ratio": stat["match_ratio"][2]}
        shown = p[:, 0] + p[:, 4]
        for g in range(n_groups):
            if shown[g] == 0:
                continue
            idx = np.unravel_index(g, shape)
            fine_groups = _fine_groups(idx, no, nc)
            est = {key: (values[g], ci[g].tolist()) for key, (values, ci, _) in stat.items()}
            out[name].append(CountStat(
                variant=c.variants[idx[0]],
                object=c.objects[idx[1]] if len(idx) > 1 else None,
                count=c.counts[idx[2]] if len(idx) > 2 else None,
                n=int(p[g, 0]),
                n_answered=int(p[g, 1]),
                n_images=len(set().union(*(images[f] for f in fine_groups))),
                n_raters=int(raters[g]),
                n_raters_effective=float(effective[g]),
                mean_abs_error=est["mean_abs_error"][0], mean_abs_error_ci=est["mean_abs_error"][1],
                match_ratio=est["match_ratio"][0], match_ratio_ci=est["match_ratio"][1],
                cant_tell_rate=est["cant_tell_rate"][0], cant_tell_rate_ci=est["cant_tell_rate"][1],
                match_ratio_cant_tell_as_miss=est["match_ratio_cant_tell_as_miss"][0],
                match_ratio_cant_tell_as_miss_ci=est["match_ratio_cant_tell_as_miss"][1],
                task_skip_rate=p[g, 4] / shown[g],
            ))
    # The rates' intervals have width wherever they have answers (`rate_intervals`); a mean
    # error of 0 [0, 0] (every answer right) is the headline interval left that can be a point.
    # The headline rows only: a cell of five images that every rater counted right is common
    # and read as a cell, not as the study's claim.
    edges = [(row.mean_abs_error, row.mean_abs_error_ci, 0.0, np.inf) for row in out["by_variant"]]
    return CountSection(**out, rater_note=rater_influence_note(c),
                        edge_note=edge_interval_note(edges)), reps_out


def rater_influence_note(c: _CountData) -> str:
    """RATER_INFLUENCE_NOTE naming the variants whose mean abs error (eq. 9) leans on one
    rater, or "". A rater's influence is the change in the variant's mean error when their
    answers are left out, n_r (e_r - M) / (N - n_r) (e_r their mean error, n_r their answers,
    M and N the variant's); a variant is named when the largest squared influence holds more
    than RATER_INFLUENCE_SHARE of their sum, with 5 or more raters."""
    named = []
    ok = c.answered > 0
    n_ev = int(c.evaluator.max()) + 1 if len(c.evaluator) else 0
    for v, name in enumerate(c.variants):
        sel = ok & (c.variant == v)
        load = np.bincount(c.evaluator[sel], minlength=n_ev).astype(float)
        err = np.bincount(c.evaluator[sel], weights=c.abs_error[sel], minlength=n_ev)
        raters = load > 0
        total = load.sum()
        if raters.sum() < 5:
            continue
        mean = err.sum() / total
        influence = (err[raters] - load[raters] * mean) / (total - load[raters])
        squares = influence ** 2
        if squares.sum() > 0 and squares.max() > RATER_INFLUENCE_SHARE * squares.sum():
            named.append(name)
    return RATER_INFLUENCE_NOTE.format(variants=", ".join(named)) if named else ""


def _fine_groups(idx: tuple[np.intp, ...], no: int, nc: int) -> list[np.intp]:
    v = idx[0]
    objs = [idx[1]] if len(idx) > 1 else range(no)
    cnts = [idx[2]] if len(idx) > 2 else range(nc)
    return [(v * no + o) * nc + k for o in objs for k in cnts]
