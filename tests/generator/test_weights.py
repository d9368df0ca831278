import pytest

from generator.encoders import load_codec, load_text_encoder
from generator.weights import INCEPTION, SD_VAE, MissingWeightsError, resolve_file, resolve_folder


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-cache"


def test_missing_explicit_path_is_named_with_how_to_get(tmp_path):
    missing = tmp_path / "no-vae-here"
    with pytest.raises(MissingWeightsError) as err:
        resolve_folder(SD_VAE, missing)
    text = str(err.value)
    assert str(missing) in text and "FUSION_SD_VAE" in text and "--allow-download" in text
    assert isinstance(err.value, FileNotFoundError)


def test_missing_env_path_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_SD_VAE", str(tmp_path / "from-env"))
    with pytest.raises(MissingWeightsError, match="from-env"):
        load_codec({"name": "sd-vae", "scale_factor": 0.2301})


def test_nothing_set_names_env_var_and_cache(empty_hf_cache, monkeypatch):
    monkeypatch.delenv("FUSION_CLIP", raising=False)
    with pytest.raises(MissingWeightsError) as err:
        load_text_encoder({"name": "clip", "text_len": 77})
    assert "FUSION_CLIP (not set)" in str(err.value)
    assert str(empty_hf_cache) in str(err.value) and "openai/clip-vit-large-patch14" in str(err.value)


def test_env_var_folder_is_used(tiny_vae_dir, monkeypatch):
    monkeypatch.setenv("FUSION_SD_VAE", str(tiny_vae_dir))
    assert resolve_folder(SD_VAE) == tiny_vae_dir


def test_missing_inception_file_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("FUSION_INCEPTION", raising=False)
    with pytest.raises(MissingWeightsError, match="inception-2015-12-05"):
        resolve_file(INCEPTION, tmp_path / "inception.pt")
