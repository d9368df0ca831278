"""Fail unless the running virtualenv holds exactly the packages of a lock file, at its versions.

    python -m tools.check_lock requirements-dev.lock

Compares ``pip freeze --all`` with the lock's ``name==version`` lines: a package missing, one at
another version, and one installed that the lock does not name all fail. pip itself is left out
(the Makefile pins it; no lock file names the installer). Standard library only, so it runs in
any venv.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
NOT_LOCKED = {"pip"}


def normalize(name: str) -> str:
    """PEP 503: case and runs of -_. do not tell two names apart."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    """``{normalized name: version}`` of every ``name==version`` line (comments, hashes and
    options skipped)."""
    out: dict[str, str] = {}
    for line in lines:
        m = PIN.match(line.strip())
        if m:
            out[normalize(m.group(1))] = m.group(2)
    return out


def differences(locked: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per package that is not installed at exactly its locked version."""
    problems = []
    for name in sorted(locked.keys() | installed.keys()):
        if name in NOT_LOCKED:
            continue
        want, have = locked.get(name), installed.get(name)
        if want is None:
            problems.append(f"{name}=={have} is installed but not in the lock")
        elif have is None:
            problems.append(f"{name}=={want} is locked but not installed")
        elif want != have:
            problems.append(f"{name}: locked {want}, installed {have}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    lock = Path(argv[0])
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                            check=True).stdout
    problems = differences(pins(lock.read_text().splitlines()), pins(freeze.splitlines()))
    for line in problems:
        print(f"check_lock: {line}", file=sys.stderr)
    if problems:
        print(f"check_lock: the venv differs from {lock} ({len(problems)} packages); run `make install-dev`",
              file=sys.stderr)
        return 1
    print(f"check_lock: the venv holds exactly the {len(pins(lock.read_text().splitlines()))} packages of {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
