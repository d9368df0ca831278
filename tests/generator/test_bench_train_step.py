"""bench/train_step.py on the tiny presets: every variant timed, ratios computed from the rounds."""
import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

from generator.model import PRESETS
from generator.profile import forward_flops_with_attention

_path = Path(__file__).resolve().parents[2] / "bench" / "train_step.py"
_spec = importlib.util.spec_from_file_location("bench_train_step", _path)
assert _spec is not None and _spec.loader is not None
train_step = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = train_step  # before running it, as importlib's recipe does (dataclasses look it up)
_spec.loader.exec_module(train_step)

VARIANTS = ["tiny-concat-early", "tiny-cross-intermediate"]


@pytest.fixture(scope="module")
def result():
    args = train_step.parse_args(
        ["--variants", *VARIANTS, "--batch", "2", "--warmup", "1", "--rounds", "3"]
    )
    return train_step.run(args)


def test_every_variant_is_timed_in_every_round(result):
    assert [v["name"] for v in result["variants"]] == VARIANTS
    assert result["baseline"] == "tiny-concat-early"  # the first listed when the paper's is absent
    for v in result["variants"]:
        assert len(v["sec_per_it_rounds"]) == 3 and all(t > 0 for t in v["sec_per_it_rounds"])
        assert v["sec_per_it"] == min(v["sec_per_it_rounds"])
        assert v["sec_per_it_mean"] == pytest.approx(statistics.fmean(v["sec_per_it_rounds"]))


def test_speedups_are_ratios_to_the_baseline(result):
    base, other = result["variants"]
    assert base["speedup"] == base["speedup_mean"] == base["flop_ratio"] == 1.0
    assert other["speedup"] == pytest.approx(base["sec_per_it"] / other["sec_per_it"])
    assert other["speedup_mean"] == pytest.approx(base["sec_per_it_mean"] / other["sec_per_it_mean"])
    flops = [forward_flops_with_attention(PRESETS[n]) for n in VARIANTS]
    assert other["flop_ratio"] == pytest.approx(flops[0] / flops[1])
    # The paper's 4090 figures are for its four models at batch 256 only.
    assert base["x_paper_4090"] is None and other["x_paper_4090"] is None


def test_table_lists_every_variant(result):
    table = train_step.format_table(result)
    assert all(name in table for name in VARIANTS)
    assert "FLOPs" in next(line for line in table.splitlines() if line.startswith("variant"))


def test_peaks_are_looked_up_by_exact_device_name():
    assert train_step.peak_for("NVIDIA H100 80GB HBM3") == 989.4  # SXM
    assert train_step.peak_for("NVIDIA H100 PCIe") < train_step.peak_for("NVIDIA H100 NVL") < 989.4
    assert train_step.peak_for("NVIDIA L40") < train_step.peak_for("NVIDIA L40S")
    assert train_step.peak_for("NVIDIA L4") == 121.0
    assert train_step.peak_for("NVIDIA H200") == 989.4
    assert train_step.peak_for("NVIDIA GeForce RTX 4090") is None  # unlisted: no MFU rather than a wrong one


def test_the_footer_calls_the_paper_speedups_measured_and_computes_them(result):
    speedups = train_step.paper_speedups()
    assert list(speedups.values()) == pytest.approx([2.31 / 1.81, 2.54 / 1.81, 2.74 / 1.81])
    table = train_step.format_table(result)
    assert "MEASURED RTX 4090 speed-ups" in table and "1.28x, 1.40x, 1.51x" in table
    assert "not a measurement" in table


def test_sequential_mode_writes_the_table_after_each_variant_and_keeps_to_its_budget(tmp_path):
    table = tmp_path / "table.txt"
    seen = []
    args = train_step.parse_args([
        "--variants", *VARIANTS, "--batch", "2", "--warmup", "1", "--rounds", "1", "--sequential",
        "--table", str(table),
    ])

    def after_each(res):
        seen.append([v["name"] for v in res["variants"]])
        table.write_text(train_step.format_table(res))
        assert table.read_text().count("not timed yet") == len(VARIANTS) - len(seen)

    res = train_step.run(args, on_variant=after_each)
    assert seen == [VARIANTS[:1], VARIANTS]
    assert res["baseline"] == VARIANTS[0] and res["not_yet_timed"] == []

    # A budget of zero seconds lets the first variant start and no other.
    args = train_step.parse_args([
        "--variants", *VARIANTS, "--batch", "2", "--warmup", "1", "--rounds", "1", "--sequential",
        "--budget-s", "0", "--table", str(table),
    ])
    train_step.main(args)
    text = table.read_text()
    assert VARIANTS[0] in text and f"{VARIANTS[1]:28s} not timed: the run's time budget was spent" in text
