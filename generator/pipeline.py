"""A diffusers text-to-image pipeline as a sampler, beside our own checkpoints.

    info = read_pipeline("/models/sd-finetune")          # refuses a folder it cannot load
    sampler = load_pipeline_sampler("/models/sd-finetune", device="cuda")
    images = sampler.generate(["three red circles"], seeds=[7], cfg_scale=3.0, steps=25)
    sampler.provenance()   # folder's file hashes, pipeline class, scheduler, settings

The folder is one written by ``DiffusionPipeline.save_pretrained`` (a ``model_index.json``
beside one folder per component). Nothing is downloaded: every load passes
``local_files_only=True`` and sets the Hugging Face offline flags first.

Guarantees, as far as the pipeline allows:
- Image i of a call starts from noise drawn by its own CPU generator seeded ``seeds[i]``
  (diffusers draws each latent of a list of generators from its own), so an image does
  not depend on what else is in its batch: equal up to float rounding across batch sizes.
  A scheduler that adds noise while sampling (ancestral, SDE) draws it from the first
  generator of the batch: with one, the image depends on the batch; give such a study
  batch size 1, or name a deterministic scheduler in the protocol.
- ``cfg_scale`` is read in this repository's convention, eps = cond + s * (cond - uncond),
  and passed to diffusers as guidance_scale = s + 1 (its convention is
  uncond + g * (cond - uncond)), so one protocol means one guidance strength for every
  source.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from generator.checkpoint import file_sha256

if TYPE_CHECKING:
    # From their modules: diffusers' package root reads as dummy placeholder classes to a type checker.
    import torch
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline
    from diffusers.schedulers.scheduling_utils import SchedulerMixin
    from PIL import Image


MODEL_INDEX = "model_index.json"
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "DIFFUSERS_OFFLINE", "TRANSFORMERS_OFFLINE")
# What a pipeline's __call__ must accept for us to drive it as text-to-image.
NEEDED_ARGUMENTS = ("prompt", "num_inference_steps", "guidance_scale", "generator", "height", "width")


class PipelineError(ValueError):
    """A folder that is not a loadable diffusers text-to-image pipeline; the message says why."""


def is_pipeline_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding a ``model_index.json`` (what save_pretrained writes)."""
    return (Path(path) / MODEL_INDEX).is_file()


def _go_offline() -> None:
    # huggingface_hub reads some of these at import; set them before diffusers is imported
    # by this process, and pass local_files_only on every load in case it was imported earlier.
    for flag in OFFLINE_FLAGS:
        os.environ[flag] = "1"


def folder_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed by its POSIX path relative to it (sorted)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                           p.relative_to(root).parts))
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in files}


def folder_sha256(hashes: dict[str, str]) -> str:
    """One hash for the folder: sha256 of the canonical JSON of its files' hashes."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class PipelineConfig(TypedDict):
    """A registered pipeline folder's record, the JSON document the web app stores as-is as
    its checkpoint's config: source "diffusers" (what tells it from one of our checkpoints),
    the pipeline and scheduler class names, each component's class name, each file's sha256
    (hex, by POSIX path in the folder) and the default image size in pixels (None: unknown)."""

    source: Literal["diffusers"]
    pipeline_class: str
    scheduler: str
    components: dict[str, str]
    files: dict[str, str]
    default_size: int | None


class PipelineProvenance(PipelineConfig):
    """What produced an image of a pipeline, stored with it as-is: the folder's record
    (PipelineConfig) with the scheduler that drew it (class name and config, in strict JSON),
    the folder's sha256, the guidance convention, and the diffusers and code versions."""

    sha256: str
    scheduler_config: dict[str, Any]
    sampler: str
    guidance_convention: str
    diffusers_version: str
    code_version: str


@dataclass(frozen=True)
class PipelineInfo:
    """What registration records of a pipeline folder: its sha256 (of its files' hashes), the
    pipeline and scheduler class names, file hashes, component class names, default size in
    pixels (None: the pipeline does not say). `to_dict` is the stored record."""

    sha256: str
    pipeline_class: str
    scheduler: str
    files: dict[str, str] = field(default_factory=dict)
    components: dict[str, str] = field(default_factory=dict)
    default_size: int | None = None

    def to_dict(self) -> PipelineConfig:
        return {
            "source": "diffusers", "pipeline_class": self.pipeline_class, "scheduler": self.scheduler,
            "components": dict(self.components), "files": dict(self.files), "default_size": self.default_size,
        }


def _load(folder: Path, device: str = "cpu") -> DiffusionPipeline:
    """The pipeline of ``folder`` on ``device``, or PipelineError saying why it cannot be loaded."""
    if not folder.is_dir():
        raise PipelineError(f"{folder.name or folder} is not a folder.")
    if not (folder / MODEL_INDEX).is_file():
        raise PipelineError(
            f"The folder {folder.name} has no {MODEL_INDEX}: it was not written by DiffusionPipeline.save_pretrained."
        )
    _go_offline()
    import diffusers

    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # diffusers raises many kinds (OSError, ValueError, KeyError, ...)
        raise PipelineError(f"The folder {folder.name} is not a loadable diffusers pipeline: "
                            f"{type(exc).__name__}: {_first_line(exc, folder)}") from exc
    params = inspect.signature(pipe.__call__).parameters
    missing = [name for name in NEEDED_ARGUMENTS if name not in params]
    if missing:
        raise PipelineError(f"{type(pipe).__name__} is not a text-to-image pipeline: its call takes no "
                            f"{', '.join(missing)}.")
    if getattr(pipe, "scheduler", None) is None:
        raise PipelineError(f"{type(pipe).__name__} in {folder.name} has no scheduler.")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _first_line(exc: BaseException, folder: Path) -> str:
    """The error's first line, the folder's path shortened to its name (no server path in a message)."""
    text = str(exc).strip()
    for prefix in {str(folder.resolve()), str(folder)}:
        text = text.replace(prefix, folder.name)
    lines = text.splitlines()
    return lines[0][:300] if lines else ""


def _default_size(pipe: DiffusionPipeline) -> int | None:
    unet = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    sample_size = getattr(getattr(unet, "config", None), "sample_size", None)
    factor = getattr(pipe, "vae_scale_factor", None)
    if isinstance(sample_size, int) and isinstance(factor, int):
        return sample_size * factor
    return None


def read_pipeline(path: str | os.PathLike) -> PipelineInfo:
    """Load the folder once (CPU) to prove it is a text-to-image pipeline; hash its files.

    Raises PipelineError with the reason for anything else.
    """
    folder = Path(path)
    pipe = _load(folder)
    hashes = folder_hashes(folder)
    components = {name: type(obj).__name__ for name, obj in pipe.components.items() if obj is not None}
    return PipelineInfo(sha256=folder_sha256(hashes), pipeline_class=type(pipe).__name__,
                        scheduler=type(pipe.scheduler).__name__, files=hashes, components=components,
                        default_size=_default_size(pipe))


def scheduler_named(pipe: DiffusionPipeline, name: str) -> SchedulerMixin:
    """A scheduler of class ``name`` (a diffusers scheduler) built from the folder's scheduler config."""
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise PipelineError(f"{name!r} is not a diffusers scheduler class.")
    return cls.from_config(pipe.scheduler.config)


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON: tuples as lists, other objects and non-finite floats
    (a scheduler config holds ``-inf``, which JSON columns refuse) as strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class PipelineSampler:
    """A diffusers pipeline with our sampler's interface (``generate``, ``provenance``, ``device``)."""

    def __init__(self, pipe: DiffusionPipeline, info: PipelineInfo, device: torch.device,
                 scheduler: str | None = None) -> None:
        if scheduler:
            pipe.scheduler = scheduler_named(pipe, scheduler)
        self.pipe, self.info, self.device = pipe, info, device
        self.sha256 = info.sha256

    def provenance(self) -> PipelineProvenance:
        """The folder's record with the scheduler used, versions and conventions."""
        import diffusers

        from generator.sample import code_version

        record = self.info.to_dict()
        # Keys in the order of the documents stored before this was a TypedDict: the folder's
        # record first, its scheduler overwritten in place by the one in use.
        return PipelineProvenance(
            source=record["source"], pipeline_class=record["pipeline_class"],
            scheduler=type(self.pipe.scheduler).__name__, components=record["components"],
            files=record["files"], default_size=record["default_size"], sha256=self.sha256,
            scheduler_config=_json_safe(dict(self.pipe.scheduler.config)),
            sampler=type(self.pipe.scheduler).__name__,
            guidance_convention="diffusers guidance_scale = cfg_scale + 1",
            diffusers_version=diffusers.__version__, code_version=code_version())

    def generate(self, prompts: list[str], seeds: list[int], cfg_scale: float, steps: int,
                 batch_size: int = 50, size: int | None = None) -> list[Image.Image]:
        """One PIL image per (prompt, seed), in order; ``size`` pixels square (default: the pipeline's)."""
        import torch

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        size = size or self.info.default_size
        images = []
        for i in range(0, len(prompts), batch_size):
            chunk_prompts, chunk_seeds = prompts[i:i + batch_size], seeds[i:i + batch_size]
            generators = [torch.Generator("cpu").manual_seed(int(s)) for s in chunk_seeds]
            with torch.no_grad():
                # The base class has no __call__; `_load` checked that this pipeline's takes these arguments.
                out = self.pipe(  # type: ignore[operator]  # a subclass's __call__ (see above)
                                prompt=list(chunk_prompts), num_inference_steps=int(steps),
                                guidance_scale=float(cfg_scale) + 1.0, generator=generators,
                                height=size, width=size, output_type="pil")
            images += [img.convert("RGB") for img in out.images]
        return images


def load_pipeline_sampler(path: str | os.PathLike, device: str = "cpu", scheduler: str | None = None,
                          sha256: str | None = None) -> PipelineSampler:
    """Load a pipeline folder onto ``device``; with ``sha256``, refuse a folder whose files changed."""
    import torch

    folder = Path(path)
    hashes = folder_hashes(folder)
    digest = folder_sha256(hashes)
    if sha256 is not None and digest != sha256:
        raise PipelineError(f"The files of {folder.name} changed since it was registered "
                            f"(sha256 {digest[:12]}…, registered {sha256[:12]}…).")
    pipe = _load(folder, device)
    components = {name: type(obj).__name__ for name, obj in pipe.components.items() if obj is not None}
    info = PipelineInfo(sha256=digest, pipeline_class=type(pipe).__name__, scheduler=type(pipe.scheduler).__name__,
                        files=hashes, components=components, default_size=_default_size(pipe))
    return PipelineSampler(pipe, info, torch.device(device), scheduler=scheduler)
