"""Train an IF-U-ViT variant: epsilon prediction on the SD scaled-linear schedule.

    python -m generator.train --preset demo-cross-early --data synthetic --out runs/cross-early
    accelerate launch -m generator.train --preset uvit-s-concat-intermediate \\
        --data coco-cache:var/coco-train --out runs/concat-intermediate --mixed-precision bf16

The run folder holds model.safetensors (EMA, for sampling), train_state/step-*/ (for
resuming: rerun the same command), log.jsonl (loss per --log-every steps, averaged over
the steps and over processes), tensorboard/ (the same loss and the learning rate as
TensorBoard events, through accelerate's tracker; `--log-with none` turns it off;
`tensorboard --logdir RUN/tensorboard` shows it) and samples/step-*.png (grids from the
EMA weights).

Exact resume: every random draw of step s comes from a generator seeded with (seed, s,
process), and a save is one accelerate save_state folder (online weights, AdamW, the
fp16 grad scaler, the EMA and the loss window as registered objects) renamed into place
when complete, so a run killed at any point, mid-save included, resumes from the last
complete save and takes the same steps, with the same losses, as an uninterrupted one.
The sampling weights model.safetensors are written after the state and rewritten from
it on resume. Each state records the schedule (--steps, --batch-size, --lr, --warmup,
--cooldown); resuming under another one is refused unless --allow-schedule-change, and
every process must find the same state (several nodes: OUT and the data cache on a
shared filesystem), else the run refuses to start.

Throughput: each step's batch is prepared ahead by --workers DataLoader processes
(pinned memory, --prefetch batches each) as a function of (seed, step, process), so
workers change nothing in the result; the loss stays on the device and is read back once
per log line; --compile runs the steps through torch.compile.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from generator.checkpoint import (
    LEGACY_TRAIN_STATE_FILE,
    latest_train_state,
    prune_train_states,
    read_train_state_info,
    save_ema,
    save_train_state,
    train_state_step,
    weights_path,
)
from generator.data import CocoCacheSource, SyntheticSource
from generator.defaults import CFG_SCALE
from generator.diffusion import (
    PREDICTION_TYPES,
    alphas_cumprod,
    diffusion_loss,
    sample_cfg,
)
from generator.encoders import Codec, encoder_specs_for, load_codec
from generator.model import UViT, UViTConfig
from generator.recipes import ALL_PRESETS, recipe_for
from generator.train_batches import build_source, step_loader
from generator.train_resume import RunCounters, check_resume_agreement, check_schedule, schedule_of, truncate_log

if TYPE_CHECKING:
    from accelerate import Accelerator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Logging: the loss (mean over --log-every steps and over processes) and the learning rate go to "
        "OUT/log.jsonl and, through accelerate's TensorBoard tracker, to OUT/tensorboard "
        "(tensorboard --logdir OUT/tensorboard); --log-with none keeps log.jsonl only. "
        "Resuming: rerun the same command; it continues from the last complete OUT/train_state/step-*.",
    )
    p.add_argument("--preset", required=True, choices=sorted(ALL_PRESETS), help="model config and default recipe")
    p.add_argument("--config", type=Path, help="UViTConfig JSON (UViTConfig.to_dict()) replacing the preset's model")
    p.add_argument("--data", default="synthetic", help="'synthetic' or 'coco-cache:PATH'")
    p.add_argument("--out", required=True, type=Path, help="run folder (resumed if it has a train state)")
    p.add_argument("--steps", type=int, help="total optimizer steps (default: the preset's recipe)")
    p.add_argument("--batch-size", type=int, help="global batch size, split over processes")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup", type=int, help="linear warm-up steps")
    p.add_argument("--cooldown", type=int, help="linear decay to zero over the last N steps (0: none; default: "
                   "the recipe's share of its steps, applied to --steps)")
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--ema-warmup", action=argparse.BooleanOptionalAction,
                   help="ramp the EMA decay up over the first steps (default: the recipe's; off for the paper's, "
                   "which decays at --ema-decay from step 0 as U-ViT does)")
    p.add_argument("--p-uncond", type=float, help="probability of training on the empty caption")
    p.add_argument("--prediction-type", choices=PREDICTION_TYPES, help="the network's target (default: recipe's)")
    p.add_argument("--pos-embed-init", choices=["random", "sincos"], help="patch position embeddings at step 0")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--threads", type=int, help="torch intra-op threads (CPU runs sharing a machine)")
    p.add_argument("--log-every", type=int, default=50, help="steps per log line (the loss is read back from the "
                   "device once per line, not every step)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes preparing the next batches "
                   "(0: in the training process)")
    p.add_argument("--prefetch", type=int, default=4, help="batches each worker prepares ahead")
    p.add_argument("--compile", action="store_true", help="torch.compile the model for the training steps")
    p.add_argument("--allow-schedule-change", action="store_true",
                   help="resume although --steps, --batch-size, --lr, --warmup or --cooldown differ from the "
                   "saved run's (the learning rate of the remaining steps then follows the new schedule)")
    p.add_argument(
        "--log-with", default="tensorboard", choices=["tensorboard", "none"],
        help="accelerate tracker for loss and learning rate, written to OUT/tensorboard (none: log.jsonl only)",
    )
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--keep-every", type=int, default=0, help="also keep EMA snapshots/step-*.safetensors (0: none)")
    p.add_argument("--sample-every", type=int, default=1000, help="0: no sample grids")
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--synthetic-n", type=int, default=30000, help="rendered training images")
    p.add_argument("--synthetic-seed", type=int, default=0)
    p.add_argument("--vae", help="SD VAE folder (else $FUSION_SD_VAE, else the HF cache)")
    p.add_argument("--clip", help="CLIP ViT-L/14 folder (else $FUSION_CLIP, else the HF cache)")
    p.add_argument("--allow-download", action="store_true", help="let missing encoder weights download")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    recipe = recipe_for(args.preset)
    for name in ("steps", "batch_size", "lr", "weight_decay", "warmup", "ema_decay", "ema_warmup", "p_uncond",
                 "prediction_type", "pos_embed_init"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(recipe, name))
    args.adam_betas = recipe.adam_betas
    if args.cooldown is None:
        args.cooldown = recipe.cooldown_for(args.steps)
    if not 0 <= args.cooldown <= args.steps:
        p.error(f"--cooldown must be between 0 and --steps ({args.steps}), got {args.cooldown}")
    return args


def lr_at(step: int, base: float, warmup: int, steps: int = 0, cooldown: int = 0) -> float:
    """Linear warm-up to `base`, then constant (U-ViT's schedule); with `cooldown` > 0, a
    linear decay to zero over the last `cooldown` of `steps` (warm-up, stable, decay)."""
    lr = base * min(1.0, (step + 1) / max(1, warmup))
    if cooldown > 0:
        lr *= min(1.0, (steps - step) / cooldown)
    return lr


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid * grid, dim) 2D sin-cos position codes, rows in raster order (MAE / DiT).

    Half the channels encode the row, half the column, each as [sin, cos] of the
    position at dim / 4 frequencies from 1 to 1/10000.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position codes need dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (dim/4,)
    pos = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.reshape(-1, 1) * omega  # (grid*grid, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()  # (grid*grid, dim)


@torch.no_grad()
def init_pos_embed_sincos(model: UViT) -> None:
    """Overwrite the patch rows of model.pos_embed (the last num_patches) with 2D sin-cos.

    They stay trainable; only the starting point changes. Time and text rows keep
    their random initialisation.
    """
    cfg = model.cfg
    grid = cfg.img_size // cfg.patch_size
    model.pos_embed[0, -cfg.num_patches :] = sincos_2d(grid, cfg.embed_dim)


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The EMA decay of optimizer step `step` (0-based): `decay`, or with `warmup` the
    ramp min(decay, (1 + s) / (10 + s)), so that a short run's EMA forgets its random start.

    The ramp passes 0.999 near step 9,000 and 0.9999 near 90,000. Without it (U-ViT's
    recipe) the EMA, a copy of the step-0 network, decays at `decay` from the first step.
    """
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, m in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(m.detach().to(e.dtype), 1.0 - decay)


def save_grid(pixels: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """pixels (B, 3, H, W) in [-1, 1] -> one PNG grid."""
    imgs = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    B, H, W, _ = imgs.shape
    rows = math.ceil(B / nrow)
    grid = np.full((rows * H, nrow * W, 3), 255, dtype=np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, nrow)
        grid[r * H : (r + 1) * H, c * W : (c + 1) * W] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


def write_sample_grid(ema: UViT, source: SyntheticSource | CocoCacheSource, codec: Codec, cfg: UViTConfig,
                      args: argparse.Namespace, step: int, device: torch.device) -> None:
    captions, ctx = source.preview(16)
    g = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(len(captions), cfg.in_chans, cfg.img_size, cfg.img_size, generator=g).to(device)
    uncond = source.empty.expand(len(captions), -1, -1)
    z = sample_cfg(ema, noise, ctx.to(device), uncond.to(device), CFG_SCALE, args.sample_steps, args.prediction_type)
    save_grid(codec.decode(z), args.out / "samples" / f"step-{step:07d}.png")
    (args.out / "samples" / f"step-{step:07d}.txt").write_text("\n".join(captions) + "\n")


def initial_model(cfg: UViTConfig, args: argparse.Namespace) -> UViT:
    """The step-0 network of a run: seeded by --seed, patch positions per --pos-embed-init."""
    torch.manual_seed(args.seed)
    model = UViT(cfg)
    if args.pos_embed_init == "sincos":
        init_pos_embed_sincos(model)
    return model


def tracker_config(args: argparse.Namespace) -> dict:
    """The run's arguments as the scalars and strings TensorBoard's hparams accept."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


# --------------------------------------------------------------------------- the run, step by step


@dataclass
class Run:
    """What the steps of one run share; ``main`` builds it and reads as the list of steps."""

    args: argparse.Namespace
    accelerator: Any
    cfg: UViTConfig
    name: str  # the run's name in its checkpoint: the preset's, or the --config file's stem
    source: SyntheticSource | CocoCacheSource
    codec_spec: dict
    text_spec: dict
    codec: Any  # decodes sample grids; None with --sample-every 0
    model: Any  # the online network (wrapped by the accelerator once ``resume`` ran)
    ema: UViT
    optimizer: Any
    counters: RunCounters = field(default_factory=RunCounters)
    train_model: Any = None  # ``model``, or its torch.compile'd wrapper

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def info(self) -> dict:
        """What each train state is saved with, and what a resumed run must match."""
        return {"config": self.cfg.to_dict(), "prediction_type": self.args.prediction_type,
                "schedule": schedule_of(self.args)}

    def write_ema(self, path: Path, step: int) -> None:
        save_ema(path, self.ema.state_dict(), self.cfg, self.codec_spec, self.text_spec, step, self.name,
                 prediction_type=self.args.prediction_type)


def start_accelerator(args: argparse.Namespace) -> Accelerator:
    """This process's Accelerator (threads, mixed precision, tracker); makes the run folder."""
    from accelerate import Accelerator

    if args.threads:
        torch.set_num_threads(args.threads)
    log_with = None if args.log_with == "none" else args.log_with
    accelerator = Accelerator(mixed_precision=args.mixed_precision, log_with=log_with, project_dir=str(args.out))
    if args.batch_size % accelerator.num_processes:
        raise SystemExit(f"--batch-size {args.batch_size} is not divisible by {accelerator.num_processes} processes")
    args.out.mkdir(parents=True, exist_ok=True)
    return accelerator


def model_config(args: argparse.Namespace) -> tuple[UViTConfig, str]:
    """(the model's config, the run's name): --config's file, else the preset's."""
    if args.config:
        return UViTConfig.from_dict(json.loads(args.config.read_text())), args.config.stem
    return ALL_PRESETS[args.preset], args.preset


def build_model(cfg: UViTConfig, args: argparse.Namespace) -> tuple[UViT, UViT, torch.optim.AdamW]:
    """(the step-0 network, its EMA copy, AdamW), on the CPU; ``resume`` moves them."""
    model = initial_model(cfg, args)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=tuple(args.adam_betas)
    )
    return model, ema, optimizer


def find_train_state(run: Run) -> Path | None:
    """The train state to resume from (None: start at step 0), checked against this run.

    First of all (a process that stops alone leaves the others waiting at their first
    collective), every process must have found the same step; a folder holding only the
    train_state.pt of runs from before train_state/ counts as step -1 there, then is refused."""
    args = run.args
    state_dir = latest_train_state(args.out)
    old_format = state_dir is None and (args.out / LEGACY_TRAIN_STATE_FILE).exists()
    found = train_state_step(state_dir) if state_dir is not None else -1 if old_format else 0
    check_resume_agreement(run.accelerator.gather(torch.tensor([found], device=run.device)).tolist(), args.out)
    if old_format:
        raise SystemExit(
            f"{args.out} holds a {LEGACY_TRAIN_STATE_FILE} from before train_state/, which this version does not "
            "resume: resume it once with a checkout from before that format was dropped (the run then continues "
            "in train_state/), or use a new --out"
        )
    if state_dir is not None:
        saved = read_train_state_info(state_dir)
        info = run.info
        if (saved["config"], saved["prediction_type"]) != (info["config"], info["prediction_type"]):
            raise SystemExit(f"{state_dir} holds a different model config or target; use a new --out")
        check_schedule(saved, args, state_dir)
    return state_dir


def resume(run: Run, state_dir: Path | None) -> None:
    """Hand the model and optimizer to the accelerator; load ``state_dir`` (weights, AdamW,
    EMA, counters) when there is one."""
    accelerator = run.accelerator
    run.model, run.optimizer = accelerator.prepare(run.model, run.optimizer)
    run.train_model = torch.compile(run.model) if run.args.compile else run.model
    run.ema.to(run.device)
    accelerator.register_for_checkpointing(run.ema, run.counters)
    if state_dir is not None:
        accelerator.load_state(str(state_dir))
        if accelerator.is_main_process:  # a kill mid-save can leave the sampling file behind the state
            run.write_ema(run.args.out, run.counters.step)
            prune_train_states(run.args.out, state_dir)


def start_logs(run: Run, start: int) -> None:
    """Drop what a killed run logged after its last save; start the tracker."""
    if run.accelerator.is_main_process:
        truncate_log(run.args.out / "log.jsonl", start)
    if run.args.log_with != "none":
        # A resumed run logs again the steps after its last save: purge_step hides what
        # the killed run had logged there, as truncate_log does for log.jsonl.
        run.accelerator.init_trackers(
            "tensorboard", config=tracker_config(run.args),
            init_kwargs={"tensorboard": {"purge_step": start + 1}} if start else {},
        )


class LossLog:
    """The loss on its way to log.jsonl and the tracker.

    This process's loss is summed on the device over the steps since the last fold into
    the counters: reading it back (an all-reduce and a host sync) happens once per log
    line and once per save, not every step."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.file = open(run.args.out / "log.jsonl", "a") if run.accelerator.is_main_process else None
        self.loss_sum = torch.zeros((), device=run.device)
        self.t0, self.data_wait = time.time(), 0.0

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach().float()
        self.run.counters.window_n += 1

    def fold(self) -> None:
        """Move the device sum, averaged over processes, into the (checkpointed) counters."""
        self.run.counters.window_sum += self.run.accelerator.reduce(self.loss_sum, reduction="mean").item()
        self.loss_sum.zero_()

    def write(self, done: int, lr: float) -> float:
        """One log line: the mean over steps of the mean over processes (each process's
        batch is an equal share of the global one); returns that mean."""
        counters = self.run.counters
        self.fold()
        mean = counters.window_sum / counters.window_n
        if self.file is not None:
            record = {"step": done, "loss": mean, "lr": lr, "elapsed_s": round(time.time() - self.t0, 3),
                      "data_wait_s": round(self.data_wait, 3)}
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.run.args.log_with != "none":
            self.run.accelerator.log({"train/loss": mean, "train/lr": lr}, step=done)
        counters.window_sum, counters.window_n = 0.0, 0
        return mean

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def train_step(run: Run, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int,
               ac: torch.Tensor) -> tuple[torch.Tensor, float]:
    """One optimizer step on one prepared batch; (the loss on the device, the learning rate)."""
    args, accelerator = run.args, run.accelerator
    x0, ctx, g_state = batch
    g = torch.Generator().set_state(g_state)  # the step's generator, after the batch's draws
    x0, ctx = x0.to(run.device, non_blocking=True), ctx.to(run.device, non_blocking=True)
    lr = lr_at(step, args.lr, args.warmup, args.steps, args.cooldown)
    for group in run.optimizer.param_groups:
        group["lr"] = lr

    run.model.train()
    with accelerator.autocast():
        loss = diffusion_loss(run.train_model, x0, ctx, ac, g, args.prediction_type)
    run.optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    run.optimizer.step()
    ema_update(run.ema, accelerator.unwrap_model(run.model), ema_decay_at(step, args.ema_decay, args.ema_warmup))
    return loss, lr


def after_step(run: Run, losses: LossLog, bar: tqdm, done: int, lr: float) -> None:
    """What follows step ``done``: a log line, a save, an EMA snapshot, a sample grid, each
    when its --*-every says so (and at the last step)."""
    args, accelerator = run.args, run.accelerator
    is_last = done == args.steps
    is_save = done % args.ckpt_every == 0 or is_last
    if done % args.log_every == 0 or is_last:
        bar.set_postfix(loss=f"{losses.write(done, lr):.4f}")
    elif is_save:
        losses.fold()  # the saved counters hold the whole window so far
    if is_save:
        save_train_state(accelerator, args.out, done, run.info)
        if accelerator.is_main_process:
            run.write_ema(args.out, done)
    if accelerator.is_main_process and args.keep_every and done % args.keep_every == 0:
        # Without a cooldown (the paper recipe) the learning rate is constant after warm-up
        # and the EMA decay depends only on the step, so a snapshot at step s equals the end
        # of an s-step run. With one (the demo recipe) it does not: an s-step run decays its
        # rate over its own last steps, which this run has not reached at step s.
        run.write_ema(args.out / "snapshots" / f"step-{done:07d}.safetensors", done)
    if accelerator.is_main_process and args.sample_every and (done % args.sample_every == 0 or is_last):
        run.ema.eval()
        write_sample_grid(run.ema, run.source, run.codec, run.cfg, args, done, run.device)


def train_loop(run: Run, start: int) -> None:
    """Steps ``start`` .. --steps - 1, each batch prepared ahead by the step loader."""
    args, accelerator = run.args, run.accelerator
    local_batch = args.batch_size // accelerator.num_processes
    ac = alphas_cumprod().to(run.device)
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=run.name,
               disable=args.no_progress or not accelerator.is_main_process)
    batches = iter(step_loader(run.source, args, start, run.accelerator.process_index, local_batch,
                               pin_memory=run.device.type == "cuda"))
    losses = LossLog(run)  # its clock starts here, with the loaders' workers started
    for step in bar:
        waited = time.perf_counter()
        batch = next(batches)
        losses.data_wait += time.perf_counter() - waited
        loss, lr = train_step(run, batch, step, ac)
        done = step + 1
        run.counters.step = done
        losses.add(loss)
        after_step(run, losses, bar, done, lr)
    bar.close()
    losses.close()


def main(args: argparse.Namespace) -> Path:
    """Train (or resume) the run in --out; return the path of its sampling weights."""
    accelerator = start_accelerator(args)
    cfg, name = model_config(args)
    source, codec_spec, text_spec = build_source(args, cfg, encoder_specs_for(cfg)[1])
    codec = load_codec(codec_spec, args.vae, args.allow_download).to(accelerator.device) if args.sample_every else None
    model, ema, optimizer = build_model(cfg, args)
    run = Run(args=args, accelerator=accelerator, cfg=cfg, name=name, source=source, codec_spec=codec_spec,
              text_spec=text_spec, codec=codec, model=model, ema=ema, optimizer=optimizer)
    resume(run, find_train_state(run))
    start = run.counters.step
    start_logs(run, start)
    train_loop(run, start)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return weights_path(args.out)


if __name__ == "__main__":
    main(parse_args())
