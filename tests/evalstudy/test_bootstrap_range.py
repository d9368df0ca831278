"""`confidence.intervals` keeps a rescaled end strictly inside the statistic's range (the
logit scale), rather than clipping it onto the bound."""
import numpy as np

from evalstudy import confidence


def test_a_widened_end_near_the_range_edge_stays_strictly_inside_the_range():
    rng = np.random.default_rng(0)
    est = np.array([0.05])
    reps = np.clip(0.05 + 0.02 * rng.standard_normal((2000, 1)), 0.0, 1.0)
    # A shrink factor of 2 doubles each end's distance from the estimate: on the rate's own
    # scale the lower end would fall to about -0.03, and a clip would put it on 0 exactly.
    lo, hi = confidence.intervals(est, reps, 0.95, shrink=np.array([2.0]), low=0.0, high=1.0)[0]
    assert 0.0 < lo < 0.05 < hi < 1.0
    # On the logit scale the lower end's distance from the estimate is doubled.
    logit = lambda x: np.log(x / (1 - x))  # noqa: E731
    q_lo = np.quantile(reps[:, 0], 0.025)
    assert np.isclose(logit(lo), logit(0.05) + 2.0 * (logit(q_lo) - logit(0.05)), rtol=1e-6)
