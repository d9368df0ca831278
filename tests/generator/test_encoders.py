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
    assert enc.spec() == {"name": "clip", "text_len": 16, "dim": 32, "attention_mask": False}


def test_clip_features_are_an_unmasked_call_at_every_position(tiny_clip_text_dir):
    """U-ViT's FrozenCLIPEmbedder and Stable Diffusion call CLIPTextModel(input_ids=...)
    only: the pad positions attend to the prompt. Ours must equal that call on all tokens,
    the empty caption included, and differ from the masked call on the pad positions."""
    from transformers import CLIPTextModel, CLIPTokenizer

    enc = load_text_encoder({"name": "clip", "text_len": 16}, clip_path=tiny_clip_text_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tiny_clip_text_dir)
    model = CLIPTextModel.from_pretrained(tiny_clip_text_dir).eval()
    prompts = ["three red circles", "a blue square", ""]
    tokens = tokenizer(prompts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct = model(input_ids=tokens["input_ids"]).last_hidden_state
        masked = model(**tokens).last_hidden_state
    ours = enc.encode(prompts)
    assert torch.equal(ours, direct)  # every one of the 16 positions
    assert torch.equal(enc.encode([""])[0], direct[2])
    pads = tokens["attention_mask"] == 0
    assert pads.any() and (ours[pads] - masked[pads]).abs().max() > 1e-3


def test_old_clip_specs_load_unmasked_and_the_spec_can_ask_for_a_mask(tiny_clip_text_dir):
    assert not load_text_encoder({"name": "clip", "text_len": 16}, clip_path=tiny_clip_text_dir).attention_mask
    masked = load_text_encoder({"name": "clip", "text_len": 16, "attention_mask": True}, clip_path=tiny_clip_text_dir)
    assert masked.attention_mask and masked.spec()["attention_mask"] is True


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


def test_minilm_keeps_the_attention_mask_the_demo_was_trained_with(minilm):
    """The demo checkpoints' specs predate the field: MiniLM defaults to the masked call."""
    assert minilm.attention_mask and minilm.spec()["attention_mask"] is True
    tokens = minilm.tokenizer(["three red circles"], padding="max_length", max_length=8, truncation=True,
                              return_tensors="pt")
    assert (tokens["attention_mask"] == 0).any()
    with torch.no_grad():
        masked = minilm.model(**tokens).last_hidden_state
    assert torch.equal(minilm.encode(["three red circles"]), masked)
