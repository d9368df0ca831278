"""The sampling API the web app's Celery tasks call.

    sampler = load_sampler("fixtures/checkpoints/cross-early")      # once per worker
    images = sampler.generate(["three red circles"], seeds=[7])   # list of PIL images
    sampler.provenance()  # SamplerProvenance: {"sha256", "config", "sampler", "code_version", "source", ...}

Guarantees:
- A (prompt, seed, cfg_scale, steps) gives the same image whatever else is in the call
  and however it is batched: the initial noise of each image comes from its own
  generator seeded with its seed, and DPM-Solver++(2M) adds no noise. (Equal up to
  float rounding across batch sizes; bit-equal for the same batch layout.)
- Weights are the checkpoint's EMA weights; nothing is downloaded unless
  allow_download=True; a missing encoder raises generator.weights.MissingWeightsError.
- Guidance is eps = cond + s * (cond - uncond) (U-ViT's convention; s = 0 is no guidance),
  the unconditional half given the text encoder's tokens of the empty caption "", and
  the network the timestep input of the convention its checkpoint records (an imported
  U-ViT checkpoint: i + 1 for the noise level alphas_cumprod[i], generator/diffusion.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image

from generator import __version__
from generator.checkpoint import CheckpointMetadata, CheckpointSource, checkpoint_sha256, load_ema, weights_path
from generator.defaults import CFG_SCALE, STEPS
from generator.diffusion import SAMPLER_NAME, sample_cfg
from generator.encoders import Codec, TextEncoder, load_codec, load_text_encoder
from generator.model import UViT, UViTConfig

__all__ = ["Sampler", "SamplerProvenance", "checkpoint_sha256", "code_version", "load_sampler"]


class SamplerProvenance(TypedDict):
    """What produced an image, the JSON document the web app stores with it as-is (under
    "generator"): the weights' sha256 (hex), the checkpoint's name and step, its model config
    (UViTConfig.to_dict), encoder specs, prediction type, timestep convention and source
    (CheckpointMetadata), the sampler's name and the code version (`code_version`)."""

    sha256: str
    name: str
    step: int
    config: dict[str, Any]
    codec: dict[str, Any]
    text_encoder: dict[str, Any]
    prediction_type: str
    timestep_convention: str
    source: CheckpointSource
    sampler: str
    code_version: str


def code_version() -> str:
    """`git describe --always --dirty` of the source tree, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    return out.stdout.strip() or __version__


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """pixels (B, 3, H, W) in [-1, 1] -> RGB images."""
    arr = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


class Sampler:
    """A checkpoint's EMA model with its image codec and text encoder, loaded once."""

    def __init__(self, model: UViT, codec: Codec, text_encoder: TextEncoder, meta: CheckpointMetadata, sha256: str,
                 device: torch.device) -> None:
        self.model, self.codec, self.text_encoder = model.eval(), codec, text_encoder
        self.meta, self.sha256, self.device = meta, sha256, device
        self._uncond: torch.Tensor | None = None

    @property
    def config(self) -> UViTConfig:
        return self.model.cfg

    def provenance(self) -> SamplerProvenance:
        """What produced an image: weights hash, model config, encoders, sampler, code version."""
        return {
            "sha256": self.sha256,
            "name": self.meta.name,
            "step": self.meta.step,
            "config": self.config.to_dict(),
            "codec": self.meta.codec,
            "text_encoder": self.meta.text_encoder,
            "prediction_type": self.meta.prediction_type,
            "timestep_convention": self.meta.timestep_convention,
            "source": self.meta.source,
            "sampler": SAMPLER_NAME,
            "code_version": code_version(),
        }

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """(B, C, H, W) standard normal noise, image i drawn from a generator seeded seeds[i]."""
        cfg = self.config
        shape = (cfg.in_chans, cfg.img_size, cfg.img_size)
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    @torch.no_grad()
    def sample_latents(
        self, prompts: list[str], seeds: list[int], cfg_scale: float = CFG_SCALE, steps: int = STEPS
    ) -> torch.Tensor:
        """(B, C, H, W) model-space samples for one batch of (prompt, seed) pairs."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if self._uncond is None:
            self._uncond = self.text_encoder.encode([""]).to(self.device)  # (1, T, D)
        ctx = self.text_encoder.encode(list(prompts)).to(self.device)  # (b, T, D)
        noise = self.initial_noise(seeds).to(self.device)
        uncond = self._uncond.expand(len(prompts), -1, -1)
        return sample_cfg(
            self.model, noise, ctx, uncond, cfg_scale, steps, self.meta.prediction_type,
            timestep_convention=self.meta.timestep_convention,
        )

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        cfg_scale: float = CFG_SCALE,
        steps: int = STEPS,
        batch_size: int = 50,
    ) -> list[Image.Image]:
        """One image per (prompt, seed), in order; processed `batch_size` at a time."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        images: list[Image.Image] = []
        for i in range(0, len(prompts), batch_size):
            z = self.sample_latents(prompts[i : i + batch_size], seeds[i : i + batch_size], cfg_scale, steps)
            images += to_pil(self.codec.decode(z))
        return images

def load_sampler(
    checkpoint_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    vae_path: str | os.PathLike | None = None,
    clip_path: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> Sampler:
    """Load a checkpoint (its folder or model.safetensors) and its encoders onto `device`."""
    device = torch.device(device)
    state, meta = load_ema(checkpoint_path)
    model = UViT(meta.config)
    model.load_state_dict(state)
    model.to(device).requires_grad_(False)
    codec = load_codec(meta.codec, vae_path, allow_download).to(device)
    text_encoder = load_text_encoder(meta.text_encoder, clip_path, allow_download).to(device)
    return Sampler(model, codec, text_encoder, meta, checkpoint_sha256(weights_path(checkpoint_path)), device)

