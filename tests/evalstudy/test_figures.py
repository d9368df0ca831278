"""Figures: written, complete, byte-for-byte reproducible."""

import hashlib
import itertools

import matplotlib
import pytest

from evalstudy.analysis import analyze
from evalstudy.figures import FIGURES, RC, write_figures
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
    assert names == sorted(f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg"))
    assert not any("figure" in n for n in names)  # named by what they show
    assert _digests(a) == _digests(b)


def test_figures_carry_no_date_or_software_tag(written):
    for p in written[0]:
        data = p.read_bytes()
        assert b"matplotlib.org" not in data and b"Software" not in data
        if p.suffix == ".svg":
            assert b"<dc:date>" not in data


def test_a_study_without_rankings_still_gets_its_count_figures(tmp_path):
    proto = synthetic_protocol(["c-early", "c-intermediate"], n_captions=0, n_evaluators=4,
                               overlap=2)
    res = analyze(simulate_study(RaterSimulator({"c-early": 0.5, "c-intermediate": 0.7}),
                                 proto), proto, n_boot=50)
    names = {p.name for p in write_figures(res, tmp_path)}
    assert names == {f"{n}.{ext}" for n in ("count-error-by-true-count", "count-by-object")
                     for ext in ("png", "svg")}


# --------------------------------------------------------------------------- legibility

def _study(variants, *, n_evaluators=20, ties=False, skip_rate=0.1, objects=("circle", "square", "triangle")):
    proto = synthetic_protocol(variants, objects=objects, n_captions=12, n_evaluators=n_evaluators,
                               overlap=3, allow_ties=ties)
    quality = {v: 0.5 + 0.3 * k / max(len(variants) - 1, 1) for k, v in enumerate(variants)}
    sim = RaterSimulator(quality, tie_margin=0.3 if ties else 0.0, skip_rate=skip_rate, seed=3)
    return analyze(simulate_study(sim, proto), proto, n_boot=100)


def _drawn(result):
    """Every figure of `result`, drawn (so that text has its extent)."""
    out = {}
    with matplotlib.rc_context(RC):
        for name, (_title, draw) in FIGURES.items():
            fig = draw(result)
            if fig is not None:
                fig.canvas.draw()
                out[name] = fig
    return out


def _texts(fig):
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_visible() and ax.title.get_text()]
    if fig._suptitle is not None:
        titles.append(fig._suptitle)
    return [(t.get_text(), t.get_window_extent(renderer)) for t in titles]


@pytest.mark.parametrize("variants, ties, n_evaluators", [
    (["c-early", "c-intermediate", "x-early", "x-intermediate"], False, 20),
    (["c-early", "c-intermediate", "x-early", "x-intermediate"], False, 200),
    (["new", "old"], True, 20),
    ([f"model-{k}" for k in range(6)], True, 20),
])
def test_titles_do_not_overlap_or_leave_the_figure(variants, ties, n_evaluators):
    for name, fig in _drawn(_study(variants, ties=ties, n_evaluators=n_evaluators)).items():
        texts = _texts(fig)
        whole = fig.bbox
        for text, box in texts:
            assert whole.x0 - 1 <= box.x0 and box.x1 <= whole.x1 + 1, (name, text)
        for (ta, a), (tb, b) in itertools.combinations(texts, 2):
            assert not a.overlaps(b), (name, ta, tb)


def test_no_empty_panels_when_nothing_was_skipped():
    figs = _drawn(_study(["c-early", "c-intermediate"], skip_rate=0.0))
    pos = figs["position-and-skips"]
    assert len([ax for ax in pos.axes if ax.get_visible() and ax.axison]) == 1
    assert "no ranking was skipped" in pos._suptitle.get_text()
    for fig in figs.values():
        for ax in fig.axes:
            if ax.axison:
                assert ax.lines or ax.patches or ax.collections, ax.get_title()
    with_skips = _drawn(_study(["c-early", "c-intermediate"], skip_rate=0.3))["position-and-skips"]
    assert len(with_skips.axes) == 2


@pytest.mark.parametrize("n_evaluators", [20, 200])
def test_count_error_by_true_count_has_one_small_panel_per_object(n_evaluators):
    variants = ["c-early", "c-intermediate", "x-early", "x-intermediate"]
    result = _study(variants, n_evaluators=n_evaluators)
    fig = _drawn(result)["count-error-by-true-count"]
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == list(result.data.objects)
    for ax in panels:  # the variants as series, nothing more: readable at any number of raters
        assert len(ax.containers) == len(variants)
        assert ax.get_legend() is None
    assert len(fig.legends) == 1


def test_a_pairwise_study_shows_a_win_tie_loss_bar_with_intervals():
    result = _study(["new", "old"], ties=True, objects=())
    figs = _drawn(result)
    assert set(figs) == {"preference", "pairwise-wins", "position-and-skips"}
    (pair,) = result.preference.pairs
    ax = figs["pairwise-wins"].axes[0]
    widths = [round(p.get_width(), 9) for p in ax.patches if p.get_height() > 0]
    assert widths[:3] == [round(x, 9) for x in (pair.a_wins / pair.n, pair.ties / pair.n,
                                                 pair.b_wins / pair.n)]
    assert len(ax.containers) >= 2  # the two borders' intervals (error bars)
    strength_panel = figs["preference"].axes[1]
    assert "Bradley-Terry-Davidson" in strength_panel.get_title()
