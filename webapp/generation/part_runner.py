"""What a GPU worker process does with a part: load the checkpoint once, sample, store.

The samplers live in a per-process cache keyed by the checkpoint's sha256, so a worker
that runs many parts of a variant loads its model, codec and text encoder once. torch
and the generator are imported on first use, never when Django or Celery import this
module.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from . import parts
from .models import MAX_PART_SIZE
from .parts import GeneratedImage, PartFailure, PartJob, WorkItem

if TYPE_CHECKING:
    from generator.pipeline import PipelineSampler
    from generator.sample import Sampler

    from .parts import SamplerRecord

    AnySampler = Sampler | PipelineSampler  # a checkpoint's, or a diffusers pipeline folder's

# sha256 -> (Sampler, its provenance), least recently used first
_SAMPLERS: OrderedDict[str, tuple[AnySampler, SamplerRecord]] = OrderedDict()


# Images per sampling call on a CPU when FUSION_GENERATION_CHUNK is empty: a whole part
# takes long enough there that progress should show in between.
CPU_CHUNK = 10

# The worker settings (FUSION_PART_STALE_SECONDS and the others below) are read from the
# environment, with their defaults, in webapp/settings.py only.


def stale_after() -> timedelta:
    """How long a running part may go without a heartbeat before it is sent again (FUSION_PART_STALE_SECONDS)."""
    return timedelta(seconds=float(settings.FUSION_PART_STALE_SECONDS))


def chunk_size(device: str) -> int:
    """Images per sampling call, stored in one transaction: the unit of progress and of heartbeats.

    FUSION_GENERATION_CHUNK; when it is empty, a whole part (MAX_PART_SIZE) on a GPU
    (throughput first) and CPU_CHUNK on a CPU.
    """
    chosen = settings.FUSION_GENERATION_CHUNK
    if chosen in (None, ""):
        return MAX_PART_SIZE if device.startswith("cuda") else CPU_CHUNK
    return max(1, int(chosen))


def device_name() -> str:
    """FUSION_DEVICE when set, else the first GPU when there is one, else the CPU."""
    chosen = settings.FUSION_DEVICE
    if chosen:
        return chosen
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _limit_threads() -> None:
    """Apply FUSION_TORCH_THREADS (CPU workers): on a shared or small machine one thread per
    worker process is several times faster than torch's default of one per core."""
    threads = settings.FUSION_TORCH_THREADS
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _load_pipeline(*, path: str, sha256: str, name: str, scheduler: str | None) -> PipelineSampler:
    """A registered diffusers pipeline folder's sampler, or PartFailure saying why not."""
    from generator.pipeline import PipelineError, load_pipeline_sampler

    if not Path(path).is_dir():
        raise PartFailure(f"Pipeline {name}: no folder at {path} on this worker (is the path shared?).")
    try:
        return load_pipeline_sampler(path, device=device_name(), scheduler=scheduler, sha256=sha256)
    except PipelineError as exc:
        raise PartFailure(f"Pipeline {name}: {exc}") from exc


def sampler_for(*, path: str, sha256: str, name: str, config: dict | None = None, scheduler: str | None = None
                ) -> tuple[AnySampler, SamplerRecord]:
    """(sampler, provenance) of a registered checkpoint; loaded on first use, then kept.

    A checkpoint whose config says ``source: diffusers`` is a diffusers pipeline folder,
    loaded with the protocol's ``scheduler`` when one is named (the cache keys on both).

    The provenance (weights hash, config, sampler, code version) is read once with the
    model: it describes the code this process runs, which does not change under it.

    Raises PartFailure when the weights are missing on this machine, are not the ones
    registered, or describe a model or encoders that cannot be built.
    """
    key = f"{sha256}:{scheduler or ''}"
    cached = _SAMPLERS.get(key)
    if cached is not None:
        _SAMPLERS.move_to_end(key)
        return cached
    _limit_threads()
    if (config or {}).get("source") == "diffusers":
        sampler: AnySampler = _load_pipeline(path=path, sha256=sha256, name=name, scheduler=scheduler)
        return _cache(key, sampler)
    from generator.checkpoint import weights_path
    from generator.sample import load_sampler
    from generator.weights import MissingWeightsError

    file = weights_path(Path(path))
    if not file.is_file():
        raise PartFailure(f"Checkpoint {name}: no weights at {file} on this worker (is the path shared?).")
    try:
        sampler = load_sampler(path, device=device_name())
    except MissingWeightsError as exc:
        raise PartFailure(f"Checkpoint {name}: {exc}") from exc
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise PartFailure(f"Checkpoint {name} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if sampler.sha256 != sha256:
        raise PartFailure(
            f"Checkpoint {name}: the weights at {file} changed since they were registered "
            f"(sha256 {sampler.sha256[:12]}…, registered {sha256[:12]}…); register them again under a new name."
        )
    return _cache(key, sampler)


def _cache(key: str, sampler: AnySampler) -> tuple[AnySampler, SamplerRecord]:
    _SAMPLERS[key] = (sampler, sampler.provenance())
    limit = max(1, int(settings.FUSION_SAMPLER_CACHE_SIZE))
    while len(_SAMPLERS) > limit:
        _SAMPLERS.popitem(last=False)
    return _SAMPLERS[key]


def _generate(*, sampler: AnySampler, job: PartJob, chunk: Sequence[WorkItem]) -> list[GeneratedImage]:
    from generator.judge import judge  # the shape-aware judge: merged shapes count as several

    # A diffusers pipeline draws at the protocol's size; our checkpoints at their own.
    extra = {"size": job.size} if job.checkpoint_config.get("source") == "diffusers" else {}
    pictures = sampler.generate(
        [w.text for w in chunk], [w.seed for w in chunk], cfg_scale=job.cfg_scale, steps=job.steps,
        batch_size=len(chunk), **extra,
    )
    return [
        GeneratedImage(
            prompt_id=w.prompt_id, seed=w.seed, image=pic, auto_count=judge(pic).count if w.is_count else None
        )
        for w, pic in zip(chunk, pictures, strict=True)
    ]


def part_run(*, part_id: int, claim: str, worker: str) -> str:
    """Run one part to the end; return 'done', 'skipped' (nothing to do) or 'lost' (claim taken).

    Raises PartFailure for permanent errors; database and connection errors propagate,
    for the task to retry.
    """
    job = parts.part_claim(part_id=part_id, claim=claim, worker=worker, stale_after=stale_after())
    if job is None:
        return "skipped"
    if job.todo:
        sampler, sampler_provenance = sampler_for(
            path=job.checkpoint_path, sha256=job.checkpoint_sha256, name=job.checkpoint_name,
            config=job.checkpoint_config, scheduler=job.scheduler,
        )
        provenance = parts.provenance_for(
            job=job, sampler_provenance=sampler_provenance, worker=worker, device=str(sampler.device)
        )
        if not parts.part_heartbeat(job=job):
            return "lost"
        size = chunk_size(str(sampler.device))
        for start in range(0, len(job.todo), size):
            images = _generate(sampler=sampler, job=job, chunk=job.todo[start:start + size])
            if not parts.part_store_images(job=job, images=images, provenance=provenance):
                return "lost"
    return "done" if parts.part_finish(job=job) is not None else "lost"
