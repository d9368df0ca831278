"""Tiny stand-ins for the pretrained encoders, built from config with the real classes.

The tests exercise the same loading code as production (from_pretrained on a folder,
local files only); only the weights are random and small.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from generator.checkpoint import save_ema
from generator.encoders import encoder_specs_for
from generator.model import PRESETS, UViT


def _clip_byte_vocab() -> dict[str, int]:
    """A CLIP BPE vocabulary with no merges: every byte alone, with and without '</w>'."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    extra = [256 + i for i in range(256 - len(printable))]
    chars = [chr(c) for c in printable + extra]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_clip_tokenizer(folder, max_length: int = 16):
    from transformers import CLIPTokenizer

    vocab = _clip_byte_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)
    tok.save_pretrained(folder)
    return vocab


def _clip_text_config(vocab, max_length: int = 16):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=max_length, projection_dim=16,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )


@pytest.fixture(scope="session")
def tiny_clip_text_dir(tmp_path_factory):
    """A folder with a CLIPTokenizer and a 2-layer, 32-wide CLIPTextModel (16 tokens)."""
    from transformers import CLIPTextModel

    folder = tmp_path_factory.mktemp("clip-text")
    vocab = write_clip_tokenizer(folder)
    torch.manual_seed(0)
    CLIPTextModel(_clip_text_config(vocab)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_model_dir(tmp_path_factory):
    """A folder with a CLIPTokenizer, a CLIPImageProcessor and a tiny CLIPModel (32x32 images)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionConfig

    folder = tmp_path_factory.mktemp("clip-model")
    vocab = write_clip_tokenizer(folder)
    vision = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2, projection_dim=16,
    )
    config = CLIPConfig(
        text_config=_clip_text_config(vocab).to_dict(), vision_config=vision.to_dict(), projection_dim=16
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory):
    """A folder with a 2-level diffusers AutoencoderKL: 3x32x32 pixels <-> 4x16x16 latents."""
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    folder = tmp_path_factory.mktemp("sd-vae")
    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32,
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_cfg():
    """A pixel-space, MiniLM-conditioned config small enough to sample in milliseconds."""
    return dataclasses.replace(
        PRESETS["tiny-cross-intermediate"], img_size=16, patch_size=4, embed_dim=32, depth=5,
        num_heads=2, text_len=8, n_image=1,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_cfg):
    """A randomly initialised tiny checkpoint folder (sampling-only, like the fixtures)."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = UViT(tiny_cfg)
    codec, text = encoder_specs_for(tiny_cfg)
    save_ema(folder, model.state_dict(), tiny_cfg, codec, text, step=0, name="tiny-test")
    return folder


def grainy(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A rendered image made soft and grainy, as generated ones are (blur 0.6 px, noise 12)."""
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
    return Image.fromarray(np.clip(blurred + rng.normal(0, 12, blurred.shape), 0, 255).astype(np.uint8))


def grainy_items(size: int, n: int = 200):
    """(grainy image, scene) for n rendered training items of one size, the same every run."""
    from generator.synthetic import make_item

    rng = np.random.default_rng(0)
    for i in range(n):
        img, scene = make_item(21, i, size=size)
        yield grainy(img, rng), scene
