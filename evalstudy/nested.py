"""Intervals for units nested within clusters: a t interval over the clusters.

evalstudy.bootstrap resamples a *crossed* design: every item is judged by many
evaluators and every evaluator judges many items, so items and evaluators are drawn
independently of each other. This module is for the other design, units *nested* within
clusters: each unit belongs to exactly one cluster (an image to the training seed of
the model that drew it), and there are few clusters (3 to 10 training seeds).

With C >= 2 clusters, `cluster_intervals` computes the statistic on each cluster alone
and gives estimate +- t(C - 1) x s / sqrt(C), where s is the standard deviation of the C
per-cluster values and the estimate is the statistic on every cluster and unit. The
per-cluster values already hold their own units' noise, so s^2 / C estimates the whole
variance of the pooled mean, between-cluster sigma_a^2 / C plus within sigma_e^2 / (C n),
without resampling the units at all (Davison & Hinkley 1997, section 3.8: the cluster
means carry both stages). Why not a bootstrap:

- resampling the units again inside each drawn cluster (the two-stage bootstrap this
  module used to do) counts the within-cluster variance twice: with 60 units a cluster and
  little between-seed spread its variance was 1.6-1.9 times the true one;
- resampling the clusters alone gives a percentile interval from C values: with C = 3
  only 10 distinct draws, variance (C - 1) / C of the true one, and no allowance for
  estimating the spread from 3 numbers. That allowance is what t(C - 1) is for; Davison &
  Hinkley's stage-2 adjustment mends the variance but not the quantile.

The t interval is exact when the cluster values are normal (a mean over 600 images is
close to it) and the clusters are exchangeable; with C = 3 it is wide (t(2) = 4.30), as
three training seeds warrant. For a ratio statistic (objects of the right shape over
objects found) the per-cluster values are each cluster's own ratio, and the interval is
centred on the pooled one; with equal units per cluster the two differ little.

What the interval is about: every cluster here holds the same number of units, and unit
index j means the same thing in every cluster (in generator.count_eval, the same prompt
and noise seed), so the interval is over training seeds *on that fixed set of prompts and
noise*: what is common to all seeds (how hard this prompt set is) is not in it. A paired
difference of two conditions read on the same units cancels most of that.

With one cluster there is no between-cluster interval, and none is pretended:
`cluster_intervals` then bootstraps the cluster's units (percentile interval) and says so
(`between_clusters` False): an interval over the images of one training seed, which says
nothing about another seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from .protocol import DEFAULT_CI_LEVEL, DEFAULT_N_BOOT

T_OVER_CLUSTERS = "t over clusters"
UNITS_ONLY = "units only (one cluster: no between-cluster interval)"


class NestedDraw(NamedTuple):
    """C' clusters of n units each, as a statistic reads them."""

    clusters: np.ndarray  # (C',) cluster indices
    units: np.ndarray  # (C', n) unit indices within the cluster at each position


class ClusterIntervals(NamedTuple):
    """A statistic's K values on every cluster and unit, and their intervals."""

    estimate: np.ndarray  # (K,) on every cluster and unit
    ci: np.ndarray  # (K, 2) at the level asked
    n_clusters: int
    df: int | None  # C - 1 for the t interval; None with one cluster
    method: str  # T_OVER_CLUSTERS or UNITS_ONLY

    @property
    def between_clusters(self) -> bool:
        """Whether the interval covers variation between clusters (C >= 2)."""
        return self.method == T_OVER_CLUSTERS


def _check(n_clusters: int, n_units: int, level: float) -> None:
    if n_clusters < 1 or n_units < 1:
        raise ValueError(f"nested intervals need clusters and units: got {n_clusters} x {n_units}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def cluster_values(statistic: Callable[[NestedDraw], np.ndarray], n_clusters: int, n_units: int) -> np.ndarray:
    """(C, K): the statistic on each cluster alone, every unit once."""
    every = np.arange(n_units)[None, :]
    return np.vstack([np.asarray(statistic(NestedDraw(np.array([k]), every)), dtype=float)
                      for k in range(n_clusters)])


def cluster_intervals(statistic: Callable[[NestedDraw], np.ndarray], n_clusters: int, n_units: int,
                      level: float = DEFAULT_CI_LEVEL, n_boot: int = DEFAULT_N_BOOT,
                      seed: int = 0) -> ClusterIntervals:
    """Intervals at two-sided `level` for a statistic of K values on C clusters of n units.

    `statistic(draw)` returns the K values computed on the units `draw.units[k]` of
    cluster `draw.clusters[k]`, pooled over k however the statistic pools. With C >= 2:
    estimate +- t(C - 1) x (s.d. of the per-cluster values) / sqrt(C). With C = 1: the
    percentile interval of `n_boot` bootstrap draws of the units (from
    `numpy.random.default_rng(seed)`), over that cluster's units only.
    """
    _check(n_clusters, n_units, level)
    every = NestedDraw(np.arange(n_clusters), np.tile(np.arange(n_units), (n_clusters, 1)))
    estimate = np.asarray(statistic(every), dtype=float)
    if n_clusters == 1:
        reps = unit_replicates(statistic, n_units, n_boot, seed)
        return ClusterIntervals(estimate, percentile_intervals(reps, level), 1, None, UNITS_ONLY)
    values = cluster_values(statistic, n_clusters, n_units)
    half = sps.t.ppf((1 + level) / 2, n_clusters - 1) * values.std(axis=0, ddof=1) / np.sqrt(n_clusters)
    ci = np.column_stack([estimate - half, estimate + half])
    return ClusterIntervals(estimate, ci, n_clusters, n_clusters - 1, T_OVER_CLUSTERS)


def unit_replicates(statistic: Callable[[NestedDraw], np.ndarray], n_units: int,
                    n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, K) bootstrap replicates of a statistic on one cluster's units, drawn with
    replacement from `numpy.random.default_rng(seed)`."""
    if n_units < 1:
        raise ValueError(f"nested intervals need clusters and units: got 1 x {n_units}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    one = np.zeros(1, dtype=int)
    return np.vstack([np.asarray(statistic(NestedDraw(one, rng.integers(n_units, size=(1, n_units)))), dtype=float)
                      for _ in range(n_boot)])


def percentile_intervals(replicates: np.ndarray, level: float = DEFAULT_CI_LEVEL) -> np.ndarray:
    """(K, 2) percentile intervals at two-sided `level` from (B, K) replicates: the
    (1 - level) / 2 and (1 + level) / 2 quantiles of each column, linear interpolation
    between order statistics (numpy's default). No bias or spread correction: the units
    of one cluster are not crossed, so evalstudy.bootstrap's shrink does not apply."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    # 100 * (1 -+ level) / 2 as percentages, rounded to 10 decimals so that 0.95 gives
    # exactly 2.5 and 97.5 (a level is never finer than that; the float error is not).
    percents = [round(50 * (1 - level), 10), round(50 * (1 + level), 10)]
    return np.percentile(np.asarray(replicates, dtype=float), percents, axis=0).T
