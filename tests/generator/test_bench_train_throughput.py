"""bench/train_throughput.py: the training loop on a cache, fed by the DataLoader and from memory."""
import importlib.util
import json
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"
_spec = importlib.util.spec_from_file_location("bench_train_throughput", _path)
train_throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_throughput)


def test_both_modes_run_the_training_loop_and_the_ratio_is_theirs(tmp_path):
    out = tmp_path / "table.txt"
    res = train_throughput.main([
        "--preset", "tiny-cross-intermediate", "--batch", "2", "--steps", "4", "--log-every", "1",
        "--workers", "1", "--prefetch", "2", "--repeats", "1", "--threads", "1", "--out", str(out),
    ])
    loader, memory = res["runs"]["loader"][0], res["runs"]["memory"][0]
    assert loader["steps_per_s"] > 0 and memory["steps_per_s"] > 0
    assert memory["data_wait_s"] < 0.05  # the in-memory batches are a list lookup away
    assert res["loader_over_memory"] == pytest.approx(loader["steps_per_s"] / memory["steps_per_s"])
    assert res["keeps_up"] == (res["loader_over_memory"] >= train_throughput.TARGET)
    text = out.read_text()
    assert "best loader / best memory steps/s" in text
    assert json.loads(text.splitlines()[-1])["preset"] == "tiny-cross-intermediate"


def test_the_random_cache_is_a_cache_training_accepts(tmp_path):
    from generator.data import CocoCacheSource

    folder = train_throughput.write_random_cache(tmp_path / "cache", "tiny-cross-intermediate", n_images=8)
    source = CocoCacheSource(folder)
    assert len(source) == 8 and source.offsets.tolist() == list(range(0, 41, 5))
