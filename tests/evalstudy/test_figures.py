"""Figures: written, complete, byte-for-byte reproducible."""

import hashlib

import pytest

from evalstudy.analysis import analyze
from evalstudy.figures import write_figures
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol


@pytest.fixture(scope="module")
def result():
    variants = ["c-early", "c-intermediate", "x-early", "x-intermediate"]
    proto = synthetic_protocol(variants, n_captions=8, n_evaluators=8, overlap=3)
    sim = RaterSimulator(dict(zip(variants, (0.5, 0.7, 0.6, 0.8), strict=True)), seed=1)
    return analyze(simulate_study(sim, proto), proto, n_boot=100)


def _digests(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    return write_figures(result, root / "a"), write_figures(result, root / "b")


def test_figures_are_written_and_reproducible(written):
    a, b = written
    names = sorted(p.name for p in a)
    assert names == sorted(f"figure{k}.{ext}" for k in (5, 6, 7) for ext in ("png", "svg"))
    assert _digests(a) == _digests(b)


def test_figures_carry_no_date_or_software_tag(written):
    for p in written[0]:
        data = p.read_bytes()
        assert b"matplotlib.org" not in data and b"Software" not in data
        if p.suffix == ".svg":
            assert b"<dc:date>" not in data


def test_a_study_without_rankings_still_gets_figure5(tmp_path):
    proto = synthetic_protocol(["c-early", "c-intermediate"], n_captions=0, n_evaluators=4,
                               overlap=2)
    res = analyze(simulate_study(RaterSimulator({"c-early": 0.5, "c-intermediate": 0.7}),
                                 proto), proto, n_boot=50)
    names = {p.name for p in write_figures(res, tmp_path)}
    assert names == {"figure5.png", "figure5.svg"}
