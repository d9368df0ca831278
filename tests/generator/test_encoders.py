import pytest
import torch

from generator.encoders import PixelCodec, SDVAECodec, load_codec, load_text_encoder, minilm_folder


def test_pixel_codec_is_identity_on_pixels():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    codec = PixelCodec()
    mean, std = codec.encode_moments(x)
    assert torch.equal(codec.decode(codec.from_moments(mean, std, torch.randn_like(x))), x)


def test_sd_vae_loads_from_a_folder_and_scales_latents(tiny_vae_dir):
    codec = load_codec({"name": "sd-vae", "scale_factor": 0.5}, vae_path=tiny_vae_dir)
    assert isinstance(codec, SDVAECodec) and codec.downsample == 2 and codec.channels == 4
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, std = codec.encode_moments(x)
    assert mean.shape == std.shape == (2, 4, 16, 16) and (std > 0).all()
    z = codec.from_moments(mean, std)
    assert torch.allclose(z, 0.5 * mean)
    assert codec.decode(z).shape == (2, 3, 32, 32)
    # decode undoes the scale: decoding scale * mean equals the VAE decoding mean.
    assert torch.allclose(codec.decode(z), codec.vae.decode(mean).sample, atol=1e-5)


def test_clip_text_encoder_loads_from_a_folder(tiny_clip_text_dir):
    enc = load_text_encoder({"name": "clip", "text_len": 16}, clip_path=tiny_clip_text_dir)
    out = enc.encode(["three red circles", ""])
    assert out.shape == (2, 16, 32) and out.dtype == torch.float32
    assert not torch.allclose(out[0], out[1])
    assert enc.spec() == {"name": "clip", "text_len": 16, "dim": 32}


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder({"name": "minilm", "text_len": 8})


def test_minilm_is_found_inside_its_package():
    assert (minilm_folder() / "model.safetensors").is_file()


def test_minilm_token_embeddings_are_padded_to_text_len(minilm):
    out = minilm.encode(["three red circles", "four red circles", ""])
    assert out.shape == (3, 8, 384)
    assert torch.equal(out, minilm.encode(["three red circles", "four red circles", ""]))
    # The count word changes the tokens: the model has something to condition on.
    assert (out[0] - out[1]).abs().max() > 0.1
    long = minilm.encode(["a red circle " * 20])
    assert long.shape == (1, 8, 384)
