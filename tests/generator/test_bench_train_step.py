"""bench/train_step.py on the tiny presets: every variant timed, ratios computed from the rounds."""
import importlib.util
import statistics
from pathlib import Path

import pytest

from generator.model import PRESETS
from generator.profile import forward_flops_with_attention

_path = Path(__file__).resolve().parents[2] / "bench" / "train_step.py"
_spec = importlib.util.spec_from_file_location("bench_train_step", _path)
assert _spec is not None and _spec.loader is not None
train_step = importlib.util.module_from_spec(_spec)
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
    assert "FLOPs" in table.splitlines()[2]
