"""Build a Python environment holding only the GPU image's packages, for a CPU smoke run.

    python bench/gpu_image/make_env.py FOLDER [EXTRA ...]

FOLDER gets a link to each top-level module of this interpreter's installed distributions
that packages.txt (beside this file) lists, or that EXTRA names (the wheels
bench/gpu_checks.sh carries), with their .dist-info folders and the shared-library folders
(*.libs) they load from; and FOLDER/python, which runs this interpreter without its
site-packages (python -S) on FOLDER and the project. A check that imports a package the
image lacks then fails in the smoke run with the ModuleNotFoundError it would meet there.
The versions are this machine's, not the image's: that part only the GPU run can check.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    names = [ln.strip() for ln in (HERE / "packages.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    return {norm(n) for n in names}


def with_requirements(names: set[str]) -> set[str]:
    """`names` and, transitively, what their installed versions here require. The image is
    consistent with its own versions; where this machine's version of an image package
    needs another package (huggingface_hub here wants httpx2), that one is let in too."""
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return out


def build(folder: Path, extra: list[str]) -> Path:
    # The wheels' own requirements are not followed: gpu_checks.sh installs them with
    # --no-deps, so what they need must be on the image or among the wheels.
    allowed = with_requirements(image_packages()) | {norm(n.split("==")[0]) for n in extra}
    folder.mkdir(parents=True, exist_ok=True)
    linked: set[str] = set()
    for dist in metadata.distributions():
        if norm(dist.metadata["Name"]) not in allowed:
            continue
        site = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            if top.endswith(".pth") or top.startswith("..") or top in linked or top == "__pycache__":
                continue
            src = site / top
            if src.exists() and not (folder / top).exists():
                (folder / top).symlink_to(src)
                linked.add(top)
    python = folder / "python"
    path = f"{folder}:{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{path}" exec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    return python


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve(), sys.argv[2:]))
