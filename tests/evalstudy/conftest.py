"""Hypothesis runs the same examples on every run, so a red CI can always be reproduced.

Set HYPOTHESIS_PROFILE=explore to draw fresh random examples (what to do when working on
the statistics; a counterexample found that way belongs in the tests as an explicit case).
"""
import os

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
