"""generator.defaults are the paper protocol's sampling settings."""
from pathlib import Path

from evalstudy.protocol import load_protocol
from generator.defaults import CFG_SCALE, STEPS

PAPER = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "paper.json"


def test_the_sampling_defaults_are_the_paper_protocols():
    sampling = load_protocol(PAPER).sampling
    assert (CFG_SCALE, STEPS) == (sampling.cfg_scale, sampling.steps)
