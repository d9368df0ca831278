"""The mechanical part of making `make lint` clean, then the list of what needs a person.

    python -m tools.lint_fix          # make lint-fix

1. ``ruff check --fix``: the fixes ruff calls safe (import order, pyupgrade, unused noqa).
2. Every ``zip()`` without ``strict=`` gets ``strict=True``. ruff's own fix for B905 writes
   ``strict=False``, which keeps the silent truncation the rule is about; in this code base
   every such zip pairs sequences that must be of one length (a batch's prompts and the images
   the sampler returned, variants and their scores, ...), so a length mismatch should raise
   where it happens. Run the tests afterwards: a ValueError from zip() is a real bug found.
3. Prints what is left, by rule, with file:line, and mypy's findings by file.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ruff"), "check", *args, "."], cwd=ROOT, capture_output=True, text=True)


def zip_strict_true() -> int:
    """Insert ``, strict=True`` where ruff's B905 fix would insert ``, strict=False``; returns
    how many calls were changed."""
    found = json.loads(ruff("--select", "B905", "--unsafe-fixes", "--output-format", "json").stdout or "[]")
    by_file: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for d in found:
        for edit in (d.get("fix") or {}).get("edits", []):
            if edit["content"].strip() != ", strict=False".strip() or edit["location"] != edit["end_location"]:
                raise SystemExit(f"lint_fix: unexpected B905 fix in {d['filename']}: {edit}")
            by_file[d["filename"]].append((edit["location"]["row"], edit["location"]["column"]))
    for name, spots in by_file.items():
        path = Path(name)
        lines = path.read_text().splitlines(keepends=True)
        for row, col in sorted(spots, reverse=True):  # from the end, so earlier spots stay put
            line = lines[row - 1]
            lines[row - 1] = line[: col - 1] + ", strict=True" + line[col - 1:]
        path.write_text("".join(lines))
    return sum(len(s) for s in by_file.values())


def report() -> int:
    left = json.loads(ruff("--output-format", "json").stdout or "[]")
    by_rule: dict[str, list[str]] = defaultdict(list)
    for d in left:
        rel = Path(d["filename"]).resolve().relative_to(ROOT)
        by_rule[f"{d['code']} {d['name']}"].append(f"{rel}:{d['location']['row']}")
    print(f"\nruff: {len(left)} findings left for a person")
    for rule, spots in sorted(by_rule.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(spots):4d}  {rule}")
        for spot in spots:
            print(f"          {spot}")
    mypy = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    per_file: dict[str, int] = defaultdict(int)
    for line in mypy.stdout.splitlines():
        if ": error:" in line:
            per_file[line.split(":", 1)[0]] += 1
    print(f"\nmypy: {sum(per_file.values())} errors ({mypy.stdout.strip().splitlines()[-1] if mypy.stdout else ''})")
    for name, n in sorted(per_file.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4d}  {name}")
    return 0 if not left and mypy.returncode == 0 else 1


def main() -> int:
    safe = ruff("--fix", "--statistics")
    print("ruff --fix (safe fixes):", safe.stderr.strip() or "done")
    print(f"zip(..., strict=True): {zip_strict_true()} calls")
    return report()


if __name__ == "__main__":
    sys.exit(main())
