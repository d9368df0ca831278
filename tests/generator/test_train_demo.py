import argparse
from pathlib import Path

from generator.train_demo import run_folder, train_command


def test_several_seeds_train_in_their_own_folders_with_their_own_seed():
    args = argparse.Namespace(steps=300, threads=1, cooldown=None)
    out = Path("/runs")
    assert run_folder(out, 7, "cross-early", several_seeds=True) == out / "seed-7" / "cross-early"
    assert run_folder(out, 7, "cross-early", several_seeds=False) == out / "cross-early"
    cmd = train_command("cross-early", out / "seed-7" / "cross-early", 7, args)
    assert cmd[cmd.index("--seed") + 1] == "7" and cmd[cmd.index("--out") + 1] == "/runs/seed-7/cross-early"
    assert cmd[cmd.index("--preset") + 1] == "demo-cross-early" and cmd[cmd.index("--steps") + 1] == "300"
    # count_eval --runs --step N reads the snapshots kept every 500 steps
    assert cmd[cmd.index("--keep-every") + 1] == "500"


def test_cooldown_is_passed_on_only_when_given():
    out = Path("/runs/seed-1/cross-early")
    plain = train_command("cross-early", out, 1, argparse.Namespace(steps=300, threads=1, cooldown=None))
    constant = train_command("cross-early", out, 1, argparse.Namespace(steps=300, threads=1, cooldown=0))
    assert "--cooldown" not in plain  # generator.train applies the recipe's share of --steps
    assert constant[constant.index("--cooldown") + 1] == "0"
