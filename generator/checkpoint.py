"""Checkpoints: one folder per run, and importing U-ViT's released weights into one.

    DIR/model.safetensors   EMA weights, the only file sampling needs. Metadata (strings):
                              format        CHECKPOINT_FORMAT
                              config        UViTConfig.to_dict() as JSON
                              codec         image codec spec (encoders.load_codec) as JSON
                              text_encoder  text encoder spec as JSON
                              step          optimizer steps taken
                              name          preset / variant name
                              prediction_type      'epsilon' or 'v_prediction' (absent: epsilon)
                              timestep_convention  'index' or 'uvit' (absent: index), the
                                                   timestep input the network was trained
                                                   with (generator/diffusion.py)
                              source        JSON provenance: {"kind": "trained"} (absent:
                                            the same) or, for imported weights, {"kind":
                                            "imported", "format", "file", "sha256"} of the
                                            file they came from
    DIR/train_state/step-NNNNNNN/   what resuming needs (generator/train.py): accelerate's
                            save_state folder (online weights, AdamW, grad scaler, the EMA
                            and the run's own counters as registered objects) plus
                            run.json (the config and target it is of). Written under a
                            temporary name and renamed when complete, so a run killed
                            at any point finds the last complete one.

The weights file is written to a temporary name and renamed, so a run killed mid-save
leaves the previous one intact.

    python -m generator.checkpoint import-uvit mscoco_uvit_small.pth --out ckpt/uvit-s-coco
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict, cast

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from generator.diffusion import TIMESTEP_CONVENTIONS
from generator.model import PRESETS, UViT, UViTConfig

if TYPE_CHECKING:
    from accelerate import Accelerator

CHECKPOINT_FORMAT = "fusion-eval/uvit-ema/1"
WEIGHTS_FILE = "model.safetensors"
TRAIN_STATE_DIR = "train_state"
LEGACY_TRAIN_STATE_FILE = "train_state.pt"  # before train_state/: neither read nor written (train.py refuses it)

class CheckpointSource(TypedDict, total=False):
    """Where a checkpoint's weights came from, a JSON document recorded as-is in its metadata
    and in every image's provenance: kind "trained" (by generator/train.py) or "imported",
    then with the source file's format, name (no folder) and sha256 (hex)."""

    kind: Required[str]
    format: str
    file: str
    sha256: str


TRAINED: CheckpointSource = {"kind": "trained"}
UVIT_SOURCE_FORMAT = "U-ViT nnet state dict (torch.save)"
# The presets that are U-ViT's own text-to-image architectures (concat, early fusion), the
# only ones its weights may be imported into: U-ViT-S (MS-COCO) and U-ViT-S/2 Deep. The
# concat ablation [N_text, N_image] = [0, 4] has the very same tensor names and shapes, but
# its outer blocks never see the text, so U-ViT's weights would run there as another network.
UVIT_PRESETS = ("uvit-s-concat-early", "uvit-s-deep-concat-early")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_path(path: str | os.PathLike) -> Path:
    """The weights file of a checkpoint given as its folder or the file itself."""
    p = Path(path)
    return p / WEIGHTS_FILE if p.is_dir() else p


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the checkpoint's weights file (the identity recorded with every image)."""
    return file_sha256(weights_path(path))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
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
    timestep_convention: str = "index",
    source: CheckpointSource | None = None,
) -> Path:
    """Write the sampling weights (optionally cast to `dtype`) with their metadata."""
    if timestep_convention not in TIMESTEP_CONVENTIONS:
        raise ValueError(f"timestep_convention must be one of {TIMESTEP_CONVENTIONS}, got {timestep_convention!r}")
    file = Path(path) if Path(path).suffix == ".safetensors" else Path(path) / WEIGHTS_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    cast = dtype is not None  # floating-point tensors only; integer buffers keep their dtype
    tensors = {
        k: (v.detach().to("cpu", dtype) if cast and v.is_floating_point() else v.detach().cpu()).contiguous()
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
        "timestep_convention": timestep_convention,
        "source": json.dumps(source or TRAINED, sort_keys=True),
    }
    _atomic(file, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return file


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a weights file says of itself (the strings of its safetensors metadata, decoded).

    config: the network's architecture. codec, text_encoder: the encoder specs
    (encoders.load_codec / load_text_encoder documents, JSON). step: optimizer steps taken
    (0 for imported weights: not recorded). name: the preset or variant name it was saved
    under. prediction_type: "epsilon" or "v_prediction"; timestep_convention: "index" or
    "uvit" (generator/diffusion.py); source: where the weights came from. The last three are
    absent from files written before them and read as their defaults.
    """

    config: UViTConfig
    codec: dict[str, Any]
    text_encoder: dict[str, Any]
    step: int
    name: str
    prediction_type: str = "epsilon"
    timestep_convention: str = "index"
    source: CheckpointSource = field(default_factory=lambda: CheckpointSource(kind="trained"))

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> CheckpointMetadata:
        """Decode a file's metadata strings; ValueError naming the field that is missing or
        malformed (a file of CHECKPOINT_FORMAT written by save_ema has none)."""
        missing = [k for k in ("config", "codec", "text_encoder", "step", "name") if k not in meta]
        if missing:
            raise ValueError(f"its metadata lacks {', '.join(missing)}")

        def document(key: str) -> Any:
            try:
                return json.loads(meta[key])
            except json.JSONDecodeError as exc:
                raise ValueError(f"its metadata field {key} is not JSON ({exc.msg})") from exc

        config, codec, text = (document(k) for k in ("config", "codec", "text_encoder"))
        source = document("source") if "source" in meta else dict(TRAINED)
        for key, value in (("config", config), ("codec", codec), ("text_encoder", text), ("source", source)):
            if not isinstance(value, dict):
                raise ValueError(f"its metadata field {key} is not a JSON object")
        if not isinstance(source.get("kind"), str):
            raise ValueError("its metadata field source has no kind")
        try:
            step = int(meta["step"])
        except ValueError:
            raise ValueError(f"its metadata field step is not a whole number ({meta['step']!r})") from None
        try:
            model = UViTConfig.from_dict(config)
        except TypeError as exc:  # a field the config cannot go without
            raise ValueError(f"its metadata field config does not describe a UViTConfig ({exc})") from exc
        return cls(config=model, codec=codec, text_encoder=text, step=step, name=meta["name"],
                   prediction_type=meta.get("prediction_type", "epsilon"),
                   timestep_convention=meta.get("timestep_convention", "index"),
                   source=cast(CheckpointSource, source))


def read_metadata(path: str | os.PathLike) -> CheckpointMetadata:
    """Decoded metadata of a weights file; ValueError for a file of another format or with a
    field missing or malformed."""
    file = weights_path(path)
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file} is not a {CHECKPOINT_FORMAT} checkpoint (format={meta.get('format')!r})")
    try:
        return CheckpointMetadata.from_metadata(meta)
    except ValueError as exc:
        raise ValueError(f"{file.name} is a damaged {CHECKPOINT_FORMAT} checkpoint: {exc}") from exc


def load_ema(
    path: str | os.PathLike, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, torch.Tensor], CheckpointMetadata]:
    """(state dict cast to `dtype`, metadata) of a checkpoint folder or weights file."""
    from safetensors.torch import load_file

    file = weights_path(path)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
    return state, read_metadata(file)


# ---------------------------------------------------------------------------
# Train state: one accelerate save_state folder per save, renamed into place
# ---------------------------------------------------------------------------

_STATE_PREFIX, _TMP_PREFIX = "step-", ".tmp-step-"
RUN_INFO_FILE = "run.json"  # inside each state folder: what the state is of (config, target)


def train_state_dirs(run: str | os.PathLike) -> list[Path]:
    """The complete train-state folders of a run, oldest first (temporary ones excluded)."""
    root = Path(run) / TRAIN_STATE_DIR
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith(_STATE_PREFIX))


def train_state_step(state_dir: str | os.PathLike) -> int:
    """The step a train-state folder was saved at, from its name (step-NNNNNNN)."""
    return int(Path(state_dir).name[len(_STATE_PREFIX):])


def latest_train_state(run: str | os.PathLike) -> Path | None:
    """The newest complete train-state folder of a run, or None."""
    dirs = train_state_dirs(run)
    return dirs[-1] if dirs else None


def save_train_state(accelerator: Accelerator, run: str | os.PathLike, step: int, info: dict[str, Any]) -> Path:
    """accelerator.save_state(...) into run/train_state/step-NNNNNNN, atomically.

    Every process calls this (each writes its own RNG state). The folder is filled under
    a temporary name and renamed once complete; older states are deleted only after
    that, so at every moment the newest complete folder is a consistent state. Objects
    registered with accelerator.register_for_checkpointing (the EMA, the run's counters)
    and the grad scaler are part of it; `info` (JSON-able: what the state is of) goes
    into the folder as run.json.
    """
    root = Path(run) / TRAIN_STATE_DIR
    final, tmp = root / f"{_STATE_PREFIX}{step:07d}", root / f"{_TMP_PREFIX}{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():  # left by a run killed mid-save
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    # Pickled rather than safetensors: every file of the folder then goes through
    # torch.save, and the state is private to this code (never shipped, never shared).
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / RUN_INFO_FILE).write_text(json.dumps(info, sort_keys=True))
        if final.exists():  # the same step saved before: its content is the same
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, final)
        prune_train_states(run, final)
    accelerator.wait_for_everyone()
    return final


def prune_train_states(run: str | os.PathLike, keep: Path) -> None:
    """Delete every complete train-state folder of a run but `keep` (a kill can leave two)."""
    for old in train_state_dirs(run):
        if old != keep:
            shutil.rmtree(old)


def read_train_state_info(state_dir: str | os.PathLike) -> dict[str, Any]:
    """The `info` a train-state folder was saved with."""
    return json.loads((Path(state_dir) / RUN_INFO_FILE).read_text())


# ---------------------------------------------------------------------------
# Importing U-ViT's released text-to-image weights
# ---------------------------------------------------------------------------


class CheckpointMismatch(ValueError):
    """A state dict whose names or shapes do not fit the model; lists every difference."""

    def __init__(self, source: str, preset: str, missing: list[str], unexpected: list[str], mismatched: list[str]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"{source} does not fit {preset}; nothing was written."]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if names:
                lines.append(f"{title} ({len(names)}):")
                lines += [f"  {n}" for n in names]
        super().__init__("\n".join(lines))


def state_dict_differences(
    state: dict[str, torch.Tensor], cfg: UViTConfig
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, 'name: got (..) want (..)') of `state` against UViT(cfg)."""
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        want = {k: tuple(v.shape) for k, v in UViT(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    mismatched = sorted(f"{k}: got {got[k]}, want {want[k]}" for k in set(want) & set(got) if got[k] != want[k])
    return missing, unexpected, mismatched


def import_uvit(
    path: str | os.PathLike, out: str | os.PathLike, preset: str = "uvit-s-concat-early", name: str | None = None
) -> Path:
    """Write U-ViT's released weights (`path`, a torch.save'd nnet state dict such as its
    MS-COCO U-ViT-S EMA file) as a checkpoint of `preset` (one of UVIT_PRESETS, else
    ValueError) in folder `out`.

    Every tensor name and shape must match the preset, else CheckpointMismatch lists the
    missing, unexpected and wrongly shaped ones and nothing is written. The checkpoint
    records U-ViT's conventions: timestep input n = i + 1 ('uvit'), epsilon prediction,
    the SD autoencoder at latent scale 0.23010 and CLIP ViT-L/14 tokens (the preset's
    encoder defaults), and the source file's name and sha256.
    """
    from generator.encoders import encoder_specs_for

    src = Path(path)
    if preset not in UVIT_PRESETS:
        raise ValueError(
            f"{preset!r} is not a U-ViT architecture: U-ViT's weights import only into {', '.join(UVIT_PRESETS)} "
            "(concatenated text, early fusion). Other presets may have the same tensor names and shapes, but "
            "their blocks see the text differently, so the imported network would not be U-ViT's."
        )
    file = weights_path(out)
    if file.exists():
        raise FileExistsError(f"{file} exists; import into a new folder")
    if not src.is_file():
        raise FileNotFoundError(
            f"no U-ViT weights at {src}: download U-ViT's MS-COCO model from the release assets of its "
            "repository (github.com/baofff/U-ViT: mscoco_uvit_small.pth, or mscoco_uvit_small_deep.pth for "
            "--preset uvit-s-deep-concat-early) and give its path")
    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{src} holds no state dict of tensors (a {type(state).__name__})")
    cfg = PRESETS[preset]
    missing, unexpected, mismatched = state_dict_differences(state, cfg)
    if missing or unexpected or mismatched:
        raise CheckpointMismatch(str(src), preset, missing, unexpected, mismatched)
    codec, text = encoder_specs_for(cfg)
    source = CheckpointSource(kind="imported", format=UVIT_SOURCE_FORMAT, file=src.name, sha256=file_sha256(src))
    # U-ViT's files do not record their step; 0 here means "not recorded", the source says what they are.
    return save_ema(
        file, state, cfg, codec, text, step=0, name=name or f"{preset} (imported {src.name})",
        prediction_type="epsilon", timestep_convention="uvit", source=source,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m generator.checkpoint", description="Checkpoint tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-uvit", help="import U-ViT's released text-to-image weights (a torch.save state dict)")
    imp.add_argument("path", type=Path, help="e.g. U-ViT's MS-COCO U-ViT-S EMA weights (.pth)")
    imp.add_argument("--out", required=True, type=Path, help="new checkpoint folder")
    imp.add_argument("--preset", default="uvit-s-concat-early", choices=UVIT_PRESETS,
                     help="U-ViT-S (its MS-COCO model) or U-ViT-S/2 Deep (mscoco_uvit_small_deep.pth)")
    imp.add_argument("--name", help="checkpoint name (default: the preset and the source file)")
    args = p.parse_args(argv)
    try:
        file = import_uvit(args.path, args.out, args.preset, args.name)
    except (CheckpointMismatch, OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        sys.exit(f"import-uvit: {exc}")
    meta = read_metadata(file)
    print(json.dumps({"out": str(file), "sha256": checkpoint_sha256(file), "source": meta.source}))


if __name__ == "__main__":
    main()
