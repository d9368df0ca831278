"""Compile the lock files from the requirements files with uv, or check that they are current.

    python -m tools.lock                          # keep today's pins where they still fit (make lock)
    python -m tools.lock --upgrade-package NAME   # move one package (and what it needs) to its newest fit
    python -m tools.lock --upgrade                # move everything
    python -m tools.lock --check                  # fail if compiling now would change a lock file

requirements.lock is compiled from requirements.txt, then requirements-dev.lock from
requirements-dev.txt constrained to requirements.lock, so a package in both has one version.
uv's settings (the local torch wheel's folder, Python 3.11 on x86-64 Linux, hashes) are in
pyproject.toml under [tool.uv.pip]. A lock whose torch is not the local CPU wheel, or that
names a CUDA package, is refused: PyPI's torch is a CUDA build whose wheels weigh several GB.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.check_lock import differences, pins

ROOT = Path(__file__).resolve().parent.parent
RUNTIME, DEV = "requirements.lock", "requirements-dev.lock"
INPUTS = ("requirements.txt", "requirements-dev.txt", "pyproject.toml")
TORCH = re.compile(r"^torch==\S+\+cpu \\$", re.M)
CUDA = re.compile(r"^nvidia-", re.M | re.I)


def uv() -> str:
    """The venv's uv (the version in requirements-dev.lock), else one on PATH."""
    here = Path(sys.executable).with_name("uv")
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        sys.exit("lock: uv is not installed (it is in requirements-dev.txt: `make install-dev`)")
    return found


def compile_locks(folder: Path, upgrade: list[str]) -> None:
    """Write both lock files in ``folder`` from the requirements files there."""
    for src, out, extra in (("requirements.txt", RUNTIME, []), ("requirements-dev.txt", DEV, ["-c", RUNTIME])):
        subprocess.run([uv(), "pip", "compile", "-q", *upgrade, src, *extra, "-o", out], cwd=folder, check=True)
    runtime = (folder / RUNTIME).read_text()
    if not TORCH.search(runtime):
        sys.exit("lock: torch is not the local CPU wheel (is /opt/wheels there?); the lock was left as uv wrote it")
    for name in (RUNTIME, DEV):
        if CUDA.search((folder / name).read_text()):
            sys.exit(f"lock: {name} names a CUDA package (nvidia-*); the lock was left as uv wrote it")


def check() -> int:
    """Compile in a scratch copy, starting from today's locks, and compare the pins. Only
    ``name==version`` lines are compared: a project may upload one more wheel to a release it
    already has, which adds a hash without changing what gets installed."""
    with tempfile.TemporaryDirectory(prefix="fusion-lock-") as tmp:
        scratch = Path(tmp)
        for name in (*INPUTS, RUNTIME, DEV):
            shutil.copy2(ROOT / name, scratch / name)
        compile_locks(scratch, [])
        stale = []
        for name in (RUNTIME, DEV):
            old = pins((ROOT / name).read_text().splitlines())
            new = pins((scratch / name).read_text().splitlines())
            for line in differences(old, new):
                stale.append(name)
                print(f"lock: {name}: {line.replace('installed', 'compiled now')}", file=sys.stderr)
    if stale:
        print(f"lock: {', '.join(sorted(set(stale)))} not compiled from the requirements files as they are: "
              "run `make lock`", file=sys.stderr)
        return 1
    print("lock: both lock files are current")
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="fail if a lock file is not current; change nothing")
    g.add_argument("--upgrade", action="store_true", help="let every package move to its newest fitting version")
    g.add_argument("--upgrade-package", action="append", default=[], metavar="NAME", help="let NAME move")
    args = p.parse_args(argv)
    if args.check:
        return check()
    upgrade = ["--upgrade"] if args.upgrade else [a for n in args.upgrade_package for a in ("--upgrade-package", n)]
    compile_locks(ROOT, upgrade)
    print(f"lock: wrote {RUNTIME} and {DEV}; install them with `make install-dev`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
