"""The figures shown in docs/statistics.md, drawn from simulated 20-rater studies.

    python -m tools.docs_figures            # writes docs/figures/<study>/<figure>.png

Three studies, each simulated with a fixed seed and analysed as `python -m evalstudy
analyze` would: the demo protocol (four variants ranked, counting task), a pairwise A/B
study with "about the same" (two variants, ties allowed) and a five-variant ranking with
ties. Only the PNGs are kept (the SVGs are the same pictures, ten times larger); the
figures are byte-for-byte reproducible, so running this again changes no file unless the
statistics or the drawing changed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalstudy.analysis import analyze  # noqa: E402
from evalstudy.figures import write_figures  # noqa: E402
from evalstudy.protocol import Protocol, load_protocol  # noqa: E402
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol  # noqa: E402

RATERS = 20
DEMO = ROOT / "fixtures" / "protocols" / "demo.json"


def studies() -> Iterator[tuple[str, Protocol, RaterSimulator, Path | None]]:
    """(folder name, protocol, simulator, base_dir) of each study drawn."""
    demo = load_protocol(DEMO)
    yield ("demo-four-variants", demo,
           RaterSimulator({"concat-early": 0.6, "concat-intermediate": 0.75, "cross-early": 0.65,
                           "cross-intermediate": 0.8}, skip_rate=0.05, seed=20), DEMO.parent)
    pair = synthetic_protocol(["model-a", "model-b"], objects=(), n_captions=30,
                              n_evaluators=RATERS, overlap=3, allow_ties=True)
    yield ("pairwise-with-ties", pair,
           RaterSimulator({"model-a": 0.75, "model-b": 0.6}, tie_margin=0.3, skip_rate=0.05,
                          seed=20), None)
    names = [f"model-{k}" for k in "abcde"]
    five = synthetic_protocol(names, objects=(), n_captions=30, n_evaluators=RATERS, overlap=3,
                              allow_ties=True)
    yield ("five-variants-with-ties", five,
           RaterSimulator(dict(zip(names, (0.8, 0.7, 0.65, 0.6, 0.45), strict=True)),
                          tie_margin=0.3, skip_rate=0.0, seed=20), None)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for name, protocol, sim, base_dir in studies():
        table = simulate_study(sim, protocol, n_evaluators=RATERS, base_dir=base_dir)
        result = analyze(table, protocol, n_boot=protocol.analysis.n_boot, seed=protocol.analysis.seed)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_figures(result, tmp):
                if path.suffix == ".png":
                    (folder / path.name).write_bytes(path.read_bytes())
                    print(folder / path.name)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    sys.exit(main(parser.parse_args()))
