"""A diffusers pipeline folder as a sampler: refused when not loadable, deterministic per (prompt, seed)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from generator.pipeline import PipelineError, folder_hashes, load_pipeline_sampler, read_pipeline
from tests.tiny_pipeline import save_tiny_pipeline

PROMPTS = ["three red circles", "a cat on a mat", "two blue squares"]
SEEDS = [7, 8, 9]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("pipe") / "tiny-sd")


@pytest.fixture(scope="module")
def sampler(pipeline_dir):
    import torch

    torch.set_num_threads(1)
    return load_pipeline_sampler(pipeline_dir)


def test_a_saved_pipeline_is_read_with_its_class_scheduler_and_file_hashes(pipeline_dir):
    info = read_pipeline(pipeline_dir)
    assert info.pipeline_class == "StableDiffusionPipeline"
    assert info.scheduler == "DPMSolverMultistepScheduler"
    assert info.files == folder_hashes(pipeline_dir)
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json"} <= set(info.files)
    assert len(info.sha256) == 64 and info.default_size == 16
    assert info.to_dict()["source"] == "diffusers"


def test_images_do_not_depend_on_the_batch_they_are_made_in(sampler):
    together = sampler.generate(PROMPTS, SEEDS, cfg_scale=2.0, steps=3, batch_size=3)
    alone = sampler.generate(PROMPTS, SEEDS, cfg_scale=2.0, steps=3, batch_size=1)
    reordered = sampler.generate(PROMPTS[::-1], SEEDS[::-1], cfg_scale=2.0, steps=3, batch_size=2)[::-1]
    for a, b, c in zip(together, alone, reordered, strict=True):
        assert a.size == (16, 16)
        # Equal up to float rounding (one level of 255) across batch layouts.
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1
        assert np.abs(np.asarray(a, int) - np.asarray(c, int)).max() <= 1
    assert np.abs(np.asarray(together[0], int) - np.asarray(together[1], int)).max() > 10  # not one picture


def test_the_protocol_size_and_scheduler_are_used_and_recorded(pipeline_dir):
    other = load_pipeline_sampler(pipeline_dir, scheduler="DDIMScheduler")
    (image,) = other.generate(PROMPTS[:1], SEEDS[:1], cfg_scale=1.0, steps=2, size=32)
    assert image.size == (32, 32)
    prov = other.provenance()
    assert prov["scheduler"] == "DDIMScheduler" and prov["pipeline_class"] == "StableDiffusionPipeline"
    assert prov["files"] == folder_hashes(pipeline_dir) and prov["scheduler_config"]["num_train_timesteps"] == 1000
    with pytest.raises(PipelineError, match="not a diffusers scheduler"):
        load_pipeline_sampler(pipeline_dir, scheduler="os")


def test_a_folder_that_is_not_a_loadable_pipeline_is_refused_with_the_reason(pipeline_dir, tmp_path):
    with pytest.raises(PipelineError, match="no model_index.json"):
        read_pipeline(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(pipeline_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(PipelineError, match="not a loadable diffusers pipeline"):
        read_pipeline(broken)
    # A component that would have to be downloaded: refused, nothing fetched.
    remote = tmp_path / "remote"
    shutil.copytree(pipeline_dir, remote)
    index = json.loads((remote / "model_index.json").read_text())
    shutil.rmtree(remote / "text_encoder")
    (remote / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(PipelineError, match="not a loadable"):
        read_pipeline(remote)


def test_a_folder_whose_files_changed_since_registration_is_refused(pipeline_dir, tmp_path):
    info = read_pipeline(pipeline_dir)
    changed = tmp_path / "changed"
    shutil.copytree(pipeline_dir, changed)
    config = json.loads((changed / "scheduler" / "scheduler_config.json").read_text())
    config["beta_end"] = 0.02
    (changed / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    with pytest.raises(PipelineError, match="changed since it was registered"):
        load_pipeline_sampler(changed, sha256=info.sha256)
