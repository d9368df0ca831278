"""The noise schedule, the training loss and the DPM-Solver++ sampler.

Schedule: Stable Diffusion's "scaled linear" betas over 1000 steps,
    betas = linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2,
the one U-ViT trains its text-to-image models on.
Target: the noise eps (the paper's recipe), or v = sqrt(a) eps - sqrt(1 - a) x0
(Salimans & Ho 2022), which the small pixel-space demo models use: near t = 999,
sqrt(a) ~ 0.07, so an eps model's error reaches its x0 estimate multiplied by ~14, and a
small model's speckled errors at the first sampling step never leave the image; a v
model predicts x0 there directly.
Sampling: DPM-Solver++ (2M, multistep), diffusers' DPMSolverMultistepScheduler set up
with the same betas; it adds no noise, so a sample depends only on its initial noise.

Timestep conventions (what number the network is given for the noise level ac[i]):
    'index'  i itself, 0..999: diffusers' timesteps and our training (diffusion_loss).
    'uvit'   i + 1, 1..1000: U-ViT trains on n uniform in {1..N} with x_n at
             alphas_cumprod[n - 1] (its Schedule prepends beta_0 = 0), and its sampler
             gives the network N * t for DPM-Solver's continuous time t, where the
             discrete schedule puts ac[i] at t = (i + 1) / N.
A checkpoint records its convention (generator/checkpoint.py) and the sampler honours it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from generator.defaults import CFG_SCALE, STEPS

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

NUM_TRAIN_TIMESTEPS = 1000
PREDICTION_TYPES = ("epsilon", "v_prediction")  # diffusers' names
BETA_START, BETA_END = 0.00085, 0.012
TIMESTEP_OFFSETS = {"index": 0, "uvit": 1}  # see the module docstring
TIMESTEP_CONVENTIONS = tuple(TIMESTEP_OFFSETS)


def network_timesteps(index: torch.Tensor, convention: str = "index") -> torch.Tensor:
    """The timestep input a network trained under `convention` expects at noise level ac[index]."""
    if convention not in TIMESTEP_OFFSETS:
        raise ValueError(f"timestep convention must be one of {TIMESTEP_CONVENTIONS}, got {convention!r}")
    return index + TIMESTEP_OFFSETS[convention]


def sd_betas(n: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """(n,) float64 scaled-linear betas."""
    return torch.linspace(BETA_START**0.5, BETA_END**0.5, n, dtype=torch.float64) ** 2


def alphas_cumprod(n: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """(n,) float64 cumulative products of (1 - beta): the signal variance at each step."""
    return torch.cumprod(1.0 - sd_betas(n), dim=0)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, ac: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ac[t]) x0 + sqrt(1 - ac[t]) noise; x0, noise (B, C, H, W), t (B,) long."""
    a = ac.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def diffusion_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    context: torch.Tensor,
    ac: torch.Tensor,
    generator: torch.Generator | None = None,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """MSE to the eps (or v) target at uniformly drawn timesteps; a scalar.

    x0 (B, C, H, W) model-space targets, context (B, T, D) text tokens. The timesteps
    and noise come from `generator`, so a training step is a function of its seed and
    a resumed run continues exactly.
    """
    B = x0.shape[0]
    # Drawn on the generator's device (the CPU in training) and then moved, so that the
    # same seed gives the same draws on any accelerator.
    gen_device = generator.device if generator is not None else x0.device
    t = torch.randint(0, len(ac), (B,), generator=generator, device=gen_device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=gen_device).to(x0.device, x0.dtype)
    out = model(add_noise(x0, noise, t, ac), t, context)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        a = ac.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
    else:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    return F.mse_loss(out.float(), target.float())


def make_scheduler(steps: int, prediction_type: str = "epsilon") -> DPMSolverMultistepScheduler:
    """A fresh DPM-Solver++ (2M) scheduler set to `steps` steps.

    Schedulers are stateful (they keep the last model outputs), so each sampling call
    gets its own.
    """
    # From its module: the package root reads as the dummy placeholder class to a type checker.
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        algorithm_type="dpmsolver++",
        solver_order=2,
        lower_order_final=True,
    )
    scheduler.set_timesteps(steps)
    return scheduler


SAMPLER_NAME = "DPM-Solver++(2M), diffusers DPMSolverMultistepScheduler, SD scaled-linear betas"


@torch.no_grad()
def sample_cfg(
    model: Callable[..., torch.Tensor],
    noise: torch.Tensor,
    context: torch.Tensor,
    uncond: torch.Tensor,
    cfg_scale: float = CFG_SCALE,
    steps: int = STEPS,
    prediction_type: str = "epsilon",
    on_step: Callable[[int], None] | None = None,
    timestep_convention: str = "index",
) -> torch.Tensor:
    """Denoise `noise` (B, C, H, W) into model-space samples with classifier-free guidance.

    context (B, T, D) and uncond (B, T, D) are the prompt's and the empty caption's
    tokens; guidance is out = cond + s * (cond - uncond), U-ViT's convention, so s = 0
    is the conditional model alone (for v models too: eps and v are affine in the
    output with the same x_t, so guiding either is the same). Deterministic given `noise`.
    The network is given the solver's timestep under `timestep_convention` (see the
    module docstring); the solver itself always works with diffusers' indices.
    """
    scheduler = make_scheduler(steps, prediction_type)
    x = noise
    B = x.shape[0]
    ctx = torch.cat([context, uncond])  # (2B, T, D)
    for i, t in enumerate(scheduler.timesteps):
        tt = network_timesteps(t.to(x.device), timestep_convention).expand(2 * B)
        out = model(torch.cat([x, x]), tt, ctx).float()  # (2B, C, H, W)
        cond, unc = out[:B], out[B:]
        step = scheduler.step(cond + cfg_scale * (cond - unc), t, x)
        x = step.prev_sample  # type: ignore[union-attr]  # return_dict=True (the default): a SchedulerOutput
        if on_step is not None:
            on_step(i)
    return x
