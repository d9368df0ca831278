"""Checkpoints: one folder per run.

    DIR/model.safetensors   EMA weights, the only file sampling needs. Metadata (strings):
                              format        CHECKPOINT_FORMAT
                              config        UViTConfig.to_dict() as JSON
                              codec         image codec spec (encoders.load_codec) as JSON
                              text_encoder  text encoder spec as JSON
                              step          optimizer steps taken
                              name          preset / variant name
                              prediction_type  'epsilon' or 'v_prediction' (absent: epsilon)
    DIR/train_state.pt      online weights, AdamW state, step and the run's arguments,
                            for resuming (torch.save of tensors and plain types only, so
                            it loads with weights_only=True). Not shipped with fixtures.

Files are written to a temporary name and renamed, so a run killed mid-save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from generator.model import UViTConfig

CHECKPOINT_FORMAT = "fusion-eval/uvit-ema/1"
WEIGHTS_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"


def weights_path(path: str | os.PathLike) -> Path:
    """The weights file of a checkpoint given as its folder or the file itself."""
    p = Path(path)
    return p / WEIGHTS_FILE if p.is_dir() else p


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the checkpoint's weights file (the identity recorded with every image)."""
    h = hashlib.sha256()
    with open(weights_path(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_ema(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    cfg: UViTConfig,
    codec_spec: dict[str, Any],
    text_spec: dict[str, Any],
    step: int,
    name: str,
    dtype: torch.dtype | None = None,
    prediction_type: str = "epsilon",
) -> Path:
    """Write the sampling weights (optionally cast to `dtype`) with their metadata."""
    file = Path(path) if Path(path).suffix == ".safetensors" else Path(path) / WEIGHTS_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.detach().to("cpu", dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in state_dict.items()
    }
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "codec": json.dumps(codec_spec, sort_keys=True),
        "text_encoder": json.dumps(text_spec, sort_keys=True),
        "step": str(step),
        "name": name,
        "prediction_type": prediction_type,
    }
    _atomic(file, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return file


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Decoded metadata of a weights file: config (UViTConfig), codec, text_encoder, step,
    name, prediction_type."""
    file = weights_path(path)
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file} is not a {CHECKPOINT_FORMAT} checkpoint (format={meta.get('format')!r})")
    return {
        "config": UViTConfig.from_dict(json.loads(meta["config"])),
        "codec": json.loads(meta["codec"]),
        "text_encoder": json.loads(meta["text_encoder"]),
        "step": int(meta["step"]),
        "name": meta["name"],
        "prediction_type": meta.get("prediction_type", "epsilon"),
    }


def load_ema(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict cast to `dtype`, metadata) of a checkpoint folder or weights file."""
    from safetensors.torch import load_file

    file = weights_path(path)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
    return state, read_metadata(file)


def save_train_state(folder: str | os.PathLike, model_state: dict, optimizer_state: dict, step: int, args: dict) -> Path:
    """Write what resuming needs beyond the EMA weights."""
    file = Path(folder) / TRAIN_STATE_FILE
    state = {"model": model_state, "optimizer": optimizer_state, "step": step, "args": args}
    _atomic(file, lambda tmp: torch.save(state, tmp))
    return file


def load_train_state(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The saved train state of a run folder, or None when it has none."""
    file = Path(folder) / TRAIN_STATE_FILE
    if not file.is_file():
        return None
    return torch.load(file, map_location="cpu", weights_only=True)
