"""A tiny diffusers text-to-image pipeline built from small configs of its real components.

Random weights, 32x32 images, a CLIP tokenizer written offline (tests/generator/conftest):
the same loading code as a real Stable Diffusion folder, in a second on a CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """Write a StableDiffusionPipeline with a 2-block UNet, a 1-block VAE and a 2-layer CLIP to ``folder``."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from tests.generator.conftest import _clip_text_config, write_clip_tokenizer

    folder = Path(folder)
    tok_dir = folder.parent / f".{folder.name}-tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_clip_tokenizer(tok_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16), latent_channels=4,
        layers_per_block=1, norm_num_groups=8, sample_size=16,
    )
    text_encoder = CLIPTextModel(_clip_text_config(vocab))
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(tok_dir), unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
