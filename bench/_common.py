"""What the benchmark scripts share: the machine a table was measured on, where the tables
are kept, the scratch PostgreSQL database, child processes that answer in JSON, and the
coverage tally of the interval benchmarks."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evalstudy import provenance

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def cpu_model() -> str:
    """The CPU's model name (lscpu), else what the platform module knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_and_usable_cores() -> str:
    """The CPU model and the cores this process may use."""
    return f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores usable"


def torch_device_description(device: torch.device) -> str:
    """The GPU and CUDA version, or the CPU, its cores and torch's thread count."""
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return f"{cpu_model()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def save_result(stem: str, text: str, *, append: bool = False, day: dt.date | None = None) -> Path:
    """Keep a printed table as bench/results/<stem>-<YYYY-MM-DD>.txt: replace that day's
    file, or add to its end with ``append``. Each table written ends with a line naming the
    commit and the versions of the packages that move the numbers (evalstudy.provenance), so
    an appended file says which code made each of its tables. Returns the path."""
    path = RESULTS / f"{stem}-{(day or dt.date.today()).isoformat()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = text.rstrip("\n")
    trailing = text[len(body):] or "\n"  # the blank lines a caller puts between appended tables
    # Read the tree's state before opening: replacing a committed results file truncates it,
    # and the tree would then count as changed.
    line = provenance.collect(ROOT).line()
    with path.open("a" if append else "w") as f:
        f.write(f"{body}\n{line}{trailing}")
    return path


def command_line() -> str:
    """How this benchmark was run, as a results file names it: ``python bench/x.py --flag ...``."""
    return " ".join(["python", *sys.argv])


def result_header(title: str) -> list[str]:
    """A results table's first lines: its title; the date, the machine and the load average
    before the run; the command that made it."""
    return [title,
            f"date: {time.strftime('%Y-%m-%d %H:%M')}   machine: {cpu_and_usable_cores()}   "
            f"load average before: {load_average():.2f}",
            f"command: {' '.join(sys.argv)}"]


def result_footer(started: float) -> str:
    """A results table's last line: the run's wall time since ``started`` (``time.time()``)
    and the load average after it."""
    return f"run time: {time.time() - started:.0f} s; load average after: {load_average():.2f}"


def emit_result(stem: str, text: str, *, write: bool) -> str:
    """Keep the table with save_result (saying where, on stderr) when ``write``, else print it."""
    if write:
        print(f"wrote {save_result(stem, text)}", file=sys.stderr)
    else:
        print(text)
    return text


def _admin(pg: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg.rstrip('/')}/postgres", autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


@contextmanager
def scratch_database(pg: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database ``name`` on the server ``pg`` (a URL without a
    database) for the block; yields its URL. Dropped afterwards, errors included, unless
    ``keep``."""
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _admin(pg, drop, f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg.rstrip('/')}/{name}"
    finally:
        if not keep:
            _admin(pg, drop)


def run_json_child(argv: list[str], env: dict) -> dict:
    """Run ``python argv...`` in the repository with ``env``; return the JSON object that
    its last line of output holds. A failure raises with the end of its stderr."""
    out = subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def interval_coverage(runs: list[dict[str, np.ndarray]], truth: float,
                      methods: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Per method, over simulated studies (``runs``: each study's interval per method, [low,
    high]): the share of intervals holding ``truth``, its binomial standard error, the mean
    width, and the share of zero-width intervals; studies whose interval is not finite are
    left out (NaN where none is)."""
    out = {}
    for m in methods:
        ci = np.array([r[m] for r in runs], dtype=float)
        ok = np.isfinite(ci).all(axis=1)
        if not ok.any():
            out[m] = (math.nan, math.nan, math.nan, math.nan)
            continue
        cover = float(np.mean((ci[ok, 0] <= truth + 1e-12) & (truth - 1e-12 <= ci[ok, 1])))
        width = ci[ok, 1] - ci[ok, 0]
        out[m] = (cover, math.sqrt(cover * (1 - cover) / ok.sum()), float(width.mean()), float(np.mean(width <= 1e-12)))
    return out
