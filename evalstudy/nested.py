"""The nested (two-stage) bootstrap: clusters, then units within each drawn cluster.

evalstudy.bootstrap resamples a *crossed* design: every item is judged by many
evaluators and every evaluator judges many items, so items and evaluators are drawn
independently of each other. This module is for the other design, units *nested* within
clusters: each unit belongs to exactly one cluster (an image to the training seed of
the model that drew it). A replicate draws the clusters with replacement, then,
independently for each drawn position, that many units of the cluster with replacement
(Davison & Hinkley 1997, section 3.8, "two-stage" resampling with both stages
resampled), and recomputes the statistic on the draw. Drawing a cluster twice draws its
units twice, independently, as the second stage should.

With one cluster the first stage always draws it, and the replicates are the one-stage
bootstrap of its units: they then say nothing about variation between clusters.

Every cluster here holds the same number of units, and unit index j means the same
thing in every cluster (in generator.count_eval, the same prompt and noise seed), so a
statistic comparing two conditions can read both on one draw (a paired difference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from .protocol import DEFAULT_CI_LEVEL, DEFAULT_N_BOOT


class NestedDraw(NamedTuple):
    """One replicate's draw of C clusters of n units each."""

    clusters: np.ndarray  # (C,) cluster positions, drawn with replacement
    units: np.ndarray  # (C, n) unit indices within the cluster drawn at each position


def nested_draws(n_clusters: int, n_units: int, n_boot: int, rng: np.random.Generator) -> Iterator[NestedDraw]:
    """`n_boot` two-stage draws of `n_clusters` clusters of `n_units` units each.

    Each replicate takes two calls on `rng` (the clusters, then the units of every drawn
    position), so a given generator state gives the same draws whatever the statistic.
    """
    if n_clusters < 1 or n_units < 1:
        raise ValueError(f"a nested bootstrap needs clusters and units: got {n_clusters} x {n_units}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    for _ in range(n_boot):
        yield NestedDraw(rng.integers(n_clusters, size=n_clusters), rng.integers(n_units, size=(n_clusters, n_units)))


def nested_replicates(statistic: Callable[[NestedDraw], np.ndarray], n_clusters: int, n_units: int,
                      n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, K) replicates of a statistic of K values under the nested bootstrap.

    `statistic(draw)` returns the K values computed on the units `draw.units[k]` of
    cluster `draw.clusters[k]`, pooled over k however the statistic pools. The draws come
    from `numpy.random.default_rng(seed)`.
    """
    rng = np.random.default_rng(seed)
    reps = [np.asarray(statistic(draw), dtype=float) for draw in nested_draws(n_clusters, n_units, n_boot, rng)]
    return np.vstack(reps)


def percentile_intervals(replicates: np.ndarray, level: float = DEFAULT_CI_LEVEL) -> np.ndarray:
    """(K, 2) percentile intervals at two-sided `level` from (B, K) replicates: the
    (1 - level) / 2 and (1 + level) / 2 quantiles of each column, linear interpolation
    between order statistics (numpy's default). No bias or spread correction: the nested
    bootstrap's units are not crossed, so evalstudy.bootstrap's shrink does not apply."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    # 100 * (1 -+ level) / 2 as percentages, rounded to 10 decimals so that 0.95 gives
    # exactly 2.5 and 97.5 (a level is never finer than that; the float error is not).
    percents = [round(50 * (1 - level), 10), round(50 * (1 + level), 10)]
    return np.percentile(np.asarray(replicates, dtype=float), percents, axis=0).T
