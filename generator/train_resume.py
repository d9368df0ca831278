"""What a training run saves beside its weights to resume exactly: the schedule it was
started under, the loop's counters, and the checks that a resume continues the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SCHEDULE_FIELDS = ("steps", "batch_size", "lr", "warmup", "cooldown")


def schedule_of(args: argparse.Namespace) -> dict:
    """What fixes the learning rate (and batch) of every step: saved with each train state."""
    return {k: getattr(args, k) for k in SCHEDULE_FIELDS}


def check_schedule(saved: dict, args: argparse.Namespace, state_dir: Path) -> None:
    """Refuse to resume under another schedule unless --allow-schedule-change says so.

    A different --steps moves the cooldown (and what the lr was at every step so far),
    so a stop-and-extend run would not be the run it claims to continue."""
    if "schedule" not in saved:  # states saved before the schedule was recorded
        return
    now = schedule_of(args)
    changed = {k: (saved["schedule"].get(k), now[k]) for k in SCHEDULE_FIELDS if saved["schedule"].get(k) != now[k]}
    if changed and not args.allow_schedule_change:
        what = ", ".join(f"--{k.replace('_', '-')} {a} -> {b}" for k, (a, b) in changed.items())
        raise SystemExit(
            f"{state_dir} was saved under another schedule ({what}); resuming would change the learning rate "
            "of the run so far. Rerun with the saved values, or pass --allow-schedule-change to continue "
            "under the new one, or use a new --out."
        )


def check_resume_agreement(steps: list[int], out: Path) -> None:
    """Every process must resume from the same step: a node that does not see OUT's
    train_state/ would start at 0 and wait forever for the others at the first all-reduce."""
    if len(set(steps)) > 1:
        raise SystemExit(
            f"the processes found different train states in {out} (steps {steps}, by process): every node must "
            "see the same --out (and --data cache) on a shared filesystem"
        )


class RunCounters:
    """What the loop carries between steps beyond the weights: the steps done and the
    loss of the steps since the last log line (its sum over steps of the process mean,
    and how many steps). Registered for checkpointing, so a resumed run logs the same means."""

    def __init__(self) -> None:
        self.step = 0
        self.window_sum = 0.0
        self.window_n = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "window_sum": self.window_sum, "window_n": self.window_n}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        if "window" in state:  # saved before the loss stayed on the device: one float per step
            self.window_sum, self.window_n = float(sum(state["window"])), len(state["window"])
        else:
            self.window_sum, self.window_n = float(state["window_sum"]), int(state["window_n"])


def truncate_log(path: Path, step: int) -> None:
    """Drop the log lines after `step` (written by a run killed before its next save)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    tmp.replace(path)
