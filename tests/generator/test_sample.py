import numpy as np
import pytest

from generator.checkpoint import checkpoint_sha256, save_ema
from generator.sample import code_version, load_sampler
from generator.weights import MissingWeightsError


@pytest.fixture(scope="module")
def sampler(tiny_checkpoint):
    return load_sampler(tiny_checkpoint)


def test_same_seed_same_image_whatever_the_batch(sampler):
    prompts = ["three red circles", "a blue square", "two green triangles"]
    together = sampler.generate(prompts, [1, 2, 3], steps=4)
    alone = sampler.generate(["a blue square"], [2], steps=4)
    one_by_one = sampler.generate(prompts, [1, 2, 3], steps=4, batch_size=1)
    other_company = sampler.generate(["five yellow squares", "a blue square"], [9, 2], steps=4)
    ref = np.asarray(together[1], dtype=int)
    for img in (alone[0], one_by_one[1], other_company[1]):
        assert img.size == (16, 16)
        # Equal up to float rounding of differently sized matrix products.
        assert np.abs(np.asarray(img, dtype=int) - ref).max() <= 1
    assert np.array_equal(np.asarray(together[0]), np.asarray(sampler.generate(prompts, [1, 2, 3], steps=4)[0]))
    assert not np.array_equal(np.asarray(together[0]), np.asarray(sampler.generate(prompts[:1], [4], steps=4)[0]))


def test_provenance_records_weights_config_and_code(sampler, tiny_checkpoint, tiny_cfg):
    prov = sampler.provenance()
    assert prov["sha256"] == checkpoint_sha256(tiny_checkpoint)
    assert prov["config"] == tiny_cfg.to_dict() and sampler.config == tiny_cfg
    assert "DPM-Solver++" in prov["sampler"] and prov["code_version"] == code_version() != ""


def test_prompts_and_seeds_must_pair(sampler):
    with pytest.raises(ValueError):
        sampler.generate(["a red circle"], [1, 2])


def test_missing_vae_names_where_it_looked(tmp_path, tiny_cfg, monkeypatch):
    import dataclasses

    from generator.model import UViT

    cfg = dataclasses.replace(tiny_cfg, in_chans=4)
    save_ema(tmp_path / "latent", UViT(cfg).state_dict(), cfg, {"name": "sd-vae", "scale_factor": 0.2301},
             {"name": "minilm", "text_len": 8, "dim": 384}, 0, "latent")
    monkeypatch.setenv("FUSION_SD_VAE", str(tmp_path / "nowhere"))
    with pytest.raises(MissingWeightsError, match="nowhere"):
        load_sampler(tmp_path / "latent")
