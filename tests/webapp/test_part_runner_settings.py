"""The generation worker's settings come from Django's settings (webapp/settings.py holds
their defaults); only the device-dependent chunk size has a default of its own."""
from datetime import timedelta

from webapp.generation import part_runner
from webapp.generation.models import MAX_PART_SIZE


def test_an_empty_chunk_setting_means_a_whole_part_on_a_gpu_and_a_small_chunk_on_a_cpu(settings):
    settings.FUSION_GENERATION_CHUNK = ""
    assert part_runner.chunk_size("cuda:1") == MAX_PART_SIZE
    assert part_runner.chunk_size("cpu") == part_runner.CPU_CHUNK < MAX_PART_SIZE
    settings.FUSION_GENERATION_CHUNK = "7"
    assert part_runner.chunk_size("cuda") == part_runner.chunk_size("cpu") == 7


def test_the_stale_limit_and_the_device_are_read_from_the_settings(settings, monkeypatch):
    monkeypatch.setenv("FUSION_PART_STALE_SECONDS", "5")  # the environment is read by settings.py only
    settings.FUSION_PART_STALE_SECONDS = 42
    assert part_runner.stale_after() == timedelta(seconds=42)
    settings.FUSION_DEVICE = "cpu"
    assert part_runner.device_name() == "cpu"
