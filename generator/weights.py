"""Finding pretrained weights on disk, with one clear error when they are not there.

Nothing is downloaded unless the caller passes `allow_download=True` (the CLIs expose it
as `--allow-download`): a Celery worker or a test must never reach for the network.
Lookup order: an explicit path, then an environment variable, then the Hugging Face
cache (HF_HOME / HF_HUB_CACHE), then, only if allowed, a download into that cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights that are needed are not on this machine."""

    def __init__(self, what: str, looked_in: list[str], how_to_get: str):
        self.what, self.looked_in, self.how_to_get = what, looked_in, how_to_get
        places = "\n".join(f"  - {p}" for p in looked_in) or "  (nowhere: no path was given)"
        super().__init__(f"{what} not found. Looked in:\n{places}\nTo get them: {how_to_get}")


@dataclass(frozen=True)
class WeightsSpec:
    """Where one set of pretrained weights may live.

    what: human-readable name; env: environment variable holding a local path;
    repo_id / subfolder: the Hugging Face Hub location; files: the patterns fetched from
    it (only safetensors weights, not every framework's copy); marker: a file that must
    exist in the folder for it to count (e.g. 'config.json').
    """

    what: str
    env: str
    repo_id: str
    subfolder: str = ""
    files: tuple[str, ...] = ("*.json", "*.txt", "*.safetensors")
    marker: str = "config.json"

    def how_to_get(self) -> str:
        include = " ".join(f"'{f}'" for f in self.files)
        return (
            f"download them on a machine with internet (`hf download {self.repo_id} --include {include} "
            f"--local-dir DIR`), copy DIR here and set {self.env}=DIR"
            f"{'/' + self.subfolder if self.subfolder else ''} or pass its path; "
            "or rerun with --allow-download to fetch them into the Hugging Face cache."
        )


SD_VAE = WeightsSpec(
    what="Stable Diffusion KL autoencoder (diffusers AutoencoderKL)",
    env="FUSION_SD_VAE",
    repo_id="CompVis/stable-diffusion-v1-4",
    subfolder="vae",
    files=("vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
)
CLIP_TEXT = WeightsSpec(
    what="CLIP ViT-L/14 (transformers CLIPTokenizer + CLIPTextModel)",
    env="FUSION_CLIP",
    repo_id="openai/clip-vit-large-patch14",
)
CLIP_SCORE = WeightsSpec(
    what="CLIP ViT-L/14 for CLIP score (transformers CLIPModel)",
    env="FUSION_CLIP",
    repo_id="openai/clip-vit-large-patch14",
)
INCEPTION = WeightsSpec(
    what="FID Inception-v3 weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)",
    env="FUSION_INCEPTION",
    repo_id="",
    marker="",
)


def _has_marker(folder: Path, spec: WeightsSpec) -> bool:
    return folder.is_dir() and (not spec.marker or (folder / spec.marker).is_file())


def _from_hf_cache(spec: WeightsSpec, allow_download: bool) -> tuple[Path | None, str]:
    """(folder or None, description of the cache place looked in)."""
    # Imported here: huggingface_hub reads its environment at import time, and this
    # module must stay cheap and side-effect free to import.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    place = f"Hugging Face cache {constants.HF_HUB_CACHE} ({spec.repo_id})"
    try:
        root = Path(
            snapshot_download(spec.repo_id, allow_patterns=list(spec.files), local_files_only=not allow_download)
        )
    except LocalEntryNotFoundError:
        return None, place
    folder = root / spec.subfolder if spec.subfolder else root
    return (folder if _has_marker(folder, spec) else None), place


def resolve_folder(spec: WeightsSpec, path: str | os.PathLike | None = None, allow_download: bool = False) -> Path:
    """The local folder holding `spec`'s weights, or MissingWeightsError naming every place tried."""
    looked: list[str] = []
    if path is not None:
        folder = Path(path).expanduser()
        if _has_marker(folder, spec):
            return folder
        looked.append(f"{folder} (given path)")
        # An explicit path that is wrong is a mistake to report, not a cue to fall back.
        raise MissingWeightsError(spec.what, looked, spec.how_to_get())
    env = os.environ.get(spec.env)
    if env:
        folder = Path(env).expanduser()
        if _has_marker(folder, spec):
            return folder
        looked.append(f"{folder} (from ${spec.env})")
        raise MissingWeightsError(spec.what, looked, spec.how_to_get())
    looked.append(f"${spec.env} (not set)")
    if spec.repo_id:
        cached, place = _from_hf_cache(spec, allow_download)
        if cached is not None:
            return cached
        looked.append(place)
    raise MissingWeightsError(spec.what, looked, spec.how_to_get())


def resolve_file(spec: WeightsSpec, path: str | os.PathLike | None = None) -> Path:
    """A single weights file (given or from `spec.env`), or MissingWeightsError."""
    looked: list[str] = []
    for candidate, source in ((path, "given path"), (os.environ.get(spec.env), f"${spec.env}")):
        if candidate:
            file = Path(candidate).expanduser()
            if file.is_file():
                return file
            looked.append(f"{file} ({source})")
            raise MissingWeightsError(spec.what, looked, _file_how_to_get(spec))
        looked.append(f"{source} (not set)")
    raise MissingWeightsError(spec.what, looked, _file_how_to_get(spec))


def _file_how_to_get(spec: WeightsSpec) -> str:
    return (
        "download https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        f"pt_inception-2015-12-05-6726825d.pth (pytorch-fid's FID weights) on a machine with internet, "
        f"copy it here and set {spec.env} to its path or pass --inception PATH."
    )
