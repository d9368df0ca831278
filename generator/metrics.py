"""Image metrics: FID and CLIP score, and U-ViT's FID-based choice of checkpoint.

FID follows U-ViT's MS-COCO evaluation where it can (eval_t2i_discrete.py; the sampler
is not U-ViT's, see below): 30,000 val2014 images drawn without replacement, one of each
image's captions as its prompt, guidance eps = cond + s (cond - uncond) at U-ViT's
s = 1 (FID_CFG_SCALE), then pytorch-fid's computation: the 2048-d pool features of its
FID Inception-v3 (generator/inception.py: the same network and weights file,
pt_inception-2015-12-05-6726825d.pth, given by --inception or $FUSION_INCEPTION, never
downloaded), and the Frechet distance to reference statistics: U-ViT's published MS-COCO
256 file (fid_stats_mscoco256_val.npz, keys mu and sigma) or those `ref-stats` computes
with the same network from the val2014 images center-cropped to 256. The images come
from this project's sampler, diffusers' DPM-Solver++(2M) (generator/diffusion.py), not
U-ViT's own DPM-Solver, so 50 steps here are not U-ViT's 50 steps.

`fid-sweep` is U-ViT's checkpoint selection for its MS-COCO run: FID on 10,000 images of
every snapshot a run kept (train.py --keep-every 50000), then the FID on 30,000 images of
the best one.

CLIP score: 100 * max(cos(image, text), 0) of CLIP ViT-L/14 embeddings, the images and
prompts prepared by transformers' CLIPProcessor.

    python -m generator.metrics ref-stats --images DIR --inception PTH --out ref.npz
    python -m generator.metrics fid --checkpoint CKPT --captions captions_val2014.json \\
        --ref-stats ref.npz --inception PTH [--n 30000] [--clip DIR]
    python -m generator.metrics fid-sweep --run RUN --captions captions_val2014.json \\
        --ref-stats ref.npz --inception PTH [--n 10000] [--final-n 30000] [--clip DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from generator.coco import center_crop
from generator.defaults import FID_CFG_SCALE, STEPS
from generator.inception import FEATURE_DIM, load_fid_inception
from generator.weights import CLIP_SCORE, MissingWeightsError, resolve_folder

# ---------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    The matrix square root is scipy's sqrtm; when S1 S2 is near singular (fewer
    samples than dimensions) eps is added to both diagonals, as pytorch-fid does.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two Gaussians have different dimensions")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    # sqrtm of a product of PSD matrices is real in exact arithmetic; rounding leaves a
    # tiny imaginary part, which is dropped. A large one means the inputs are wrong.
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.abs(covmean.imag).max():.3g} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) of features (N, D), unbiased as in pytorch-fid."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


# ---------------------------------------------------------------------------
# Inception features
# ---------------------------------------------------------------------------


class InceptionFeatures:
    """pytorch-fid's 2048-d FID Inception pool features (see generator/inception.py)."""

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = load_fid_inception(path, self.device)

    @torch.no_grad()
    def __call__(self, images: list[Image.Image], batch_size: int = 50) -> np.ndarray:
        """RGB images (one size per batch) -> (N, 2048) float64.

        Read as pytorch-fid reads image files (RGB, then ToTensor: uint8 / 255).
        """
        out = [np.zeros((0, FEATURE_DIM))]
        for i in range(0, len(images), batch_size):
            batch = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images[i : i + batch_size]])
            x = torch.from_numpy(batch / 255.0).permute(0, 3, 1, 2).to(self.device)  # (B, 3, H, W) in [0, 1]
            out.append(self.net(x).double().cpu().numpy())
        return np.concatenate(out)


def reference_statistics(
    image_paths: Sequence[Path], inception: InceptionFeatures, size: int = 256, batch_size: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Inception statistics of real image files, center-cropped to `size`.

    The images are read, cropped and passed through the network `batch_size` at a time,
    so only one batch of them is ever in memory (40,504 val2014 crops would be about
    8 GB); the features (N x 2048, kept as the network's float32) are kept for the
    covariance. The result equals that of one call on the list of all images.
    """
    feats = np.empty((len(image_paths), FEATURE_DIM), dtype=np.float32)
    for i in range(0, len(image_paths), batch_size):
        crops = []
        for path in image_paths[i : i + batch_size]:
            with Image.open(path) as im:
                crops.append(center_crop(im, size))
        feats[i : i + len(crops)] = inception(crops, batch_size)
    return feature_statistics(feats)


# ---------------------------------------------------------------------------
# CLIP score
# ---------------------------------------------------------------------------

class ClipScorer:
    """CLIP score, 100 * max(cos(image, text), 0), with CLIP ViT-L/14 from a local folder."""

    def __init__(
        self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu", allow_download: bool = False
    ):
        from transformers import CLIPModel, CLIPProcessor

        folder = resolve_folder(CLIP_SCORE, path, allow_download)
        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(folder, local_files_only=True).eval().to(self.device)
        self.processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)

    @torch.no_grad()
    def scores(self, images: list[Image.Image], prompts: list[str], batch_size: int = 64) -> np.ndarray:
        """(N,) per-image CLIP scores for paired images and prompts."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        out = []
        for i in range(0, len(images), batch_size):
            inputs = self.processor(
                text=prompts[i : i + batch_size], images=[im.convert("RGB") for im in images[i : i + batch_size]],
                return_tensors="pt", padding=True, truncation=True,
            ).to(self.device)
            img = self.model.get_image_features(pixel_values=inputs["pixel_values"])
            txt = self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            img = getattr(img, "pooler_output", img)  # a tensor, or an output object in some versions
            txt = getattr(txt, "pooler_output", txt)
            cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
            out.append((100 * cos.clamp(min=0)).cpu().numpy())
        return np.concatenate(out)


# ---------------------------------------------------------------------------
# FID prompts, FID of a checkpoint, FID of a run's snapshots; the command line
# ---------------------------------------------------------------------------


def val_prompts(path: Path, n: int, seed: int) -> list[tuple[int, str]]:
    """(image id, caption) of n val images, as U-ViT draws FID prompts.

    The images that have a caption in the COCO captions file `path` are shuffled (seeded)
    and the first n taken, so no image repeats (U-ViT shuffles the 40,504 val images);
    then one caption of each is drawn uniformly (seeded), so an image with more captions
    is not drawn more often. n is capped at the number of images. The first k prompts do
    not depend on n (the 10,000 of fid-sweep are the first of the final 30,000).
    """
    by_image: dict[int, list[str]] = {}
    for a in json.loads(path.read_text())["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["caption"].strip())
    ids = sorted(by_image)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))[:n]
    picks = []
    for i in order:
        captions = by_image[ids[i]]
        picks.append((ids[i], captions[rng.integers(len(captions))]))
    return picks


@dataclass(frozen=True)
class FidSettings:
    """How the images of an FID are made, the same for every checkpoint of a sweep."""

    captions: Path
    steps: int = STEPS
    cfg_scale: float = FID_CFG_SCALE
    batch_size: int = 100
    seed: int = 0
    device: str = "cpu"
    vae: str | None = None
    clip: str | None = None


def checkpoint_fid(
    checkpoint: str | os.PathLike, n: int, settings: FidSettings, inception: InceptionFeatures,
    ref: tuple[np.ndarray, np.ndarray], scorer: ClipScorer | None = None,
) -> dict[str, Any]:
    """FID (and CLIP score with a scorer) of a checkpoint on n val prompts: the result JSON.

    Image i is prompt i of val_prompts(captions, n, seed) sampled with seed + i.
    """
    from generator.sample import load_sampler

    sampler = load_sampler(checkpoint, settings.device, vae_path=settings.vae, clip_path=settings.clip)
    prompts = [caption for _, caption in val_prompts(settings.captions, n, settings.seed)]
    feats, clip_scores = [], []
    for i in range(0, len(prompts), settings.batch_size):
        chunk = prompts[i : i + settings.batch_size]
        seeds = list(range(settings.seed + i, settings.seed + i + len(chunk)))
        images = sampler.generate(chunk, seeds, settings.cfg_scale, settings.steps, settings.batch_size)
        feats.append(inception(images))
        if scorer is not None:
            clip_scores.append(scorer.scores(images, chunk))
    mu, sigma = feature_statistics(np.concatenate(feats))
    provenance = sampler.provenance()
    return {
        "fid": frechet_distance(mu, sigma, *ref),
        "clip_score": float(np.mean(np.concatenate(clip_scores))) if clip_scores else None,
        "n": len(prompts),
        "steps": settings.steps,
        "cfg_scale": settings.cfg_scale,
        "seed": settings.seed,
        "checkpoint": str(checkpoint),
        **{k: provenance[k] for k in ("sha256", "name", "step", "sampler", "code_version")},
    }


def snapshot_files(run: Path) -> list[Path]:
    """The EMA snapshots a run kept (train.py --keep-every): run/snapshots/step-*.safetensors,
    by step; FileNotFoundError when there is none."""
    snapshots = sorted((run / "snapshots").glob("step-*.safetensors"))
    if not snapshots:
        raise FileNotFoundError(f"{run}/snapshots holds no step-*.safetensors: train with --keep-every")
    return snapshots


def _saved_fid(path: Path, checkpoint: Path, n: int, settings: FidSettings) -> dict[str, Any] | None:
    """A result fid-sweep wrote before, if it is of this file and these settings."""
    from generator.checkpoint import checkpoint_sha256

    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    wanted = {"steps": settings.steps, "cfg_scale": settings.cfg_scale, "seed": settings.seed,
              "sha256": checkpoint_sha256(checkpoint)}
    same = all(saved.get(k) == v for k, v in wanted.items()) and saved.get("n_requested") == n
    return saved if same else None


def sweep_fid(
    run: Path, n: int, final_n: int, settings: FidSettings, inception: InceptionFeatures,
    ref: tuple[np.ndarray, np.ndarray], scorer: ClipScorer | None = None,
) -> dict[str, Any]:
    """U-ViT's selection: the FID on n images of every snapshot of `run`, the best (lowest)
    one, and with final_n > 0 the FID (and CLIP score, with a scorer) of that one on
    final_n images.

    Each result is written beside its snapshot (step-NNNNNNN.fid-<n>.json) and read back,
    not recomputed, when the sweep is run again with the same settings: a sweep stopped
    half-way goes on where it stopped.
    """
    snapshots = snapshot_files(run)

    def fid_of(snapshot: Path, k: int, with_clip: ClipScorer | None) -> dict[str, Any]:
        path = snapshot.with_name(f"{snapshot.stem}.fid-{k}.json")
        result = _saved_fid(path, snapshot, k, settings)
        if result is None or (with_clip is not None and result["clip_score"] is None):
            result = {**checkpoint_fid(snapshot, k, settings, inception, ref, with_clip), "n_requested": k}
            path.write_text(json.dumps(result, sort_keys=True) + "\n")
        return result

    swept = [fid_of(s, n, None) for s in snapshots]
    best = min(swept, key=lambda r: r["fid"])
    return {
        "run": str(run),
        "snapshots": [{k: r[k] for k in ("step", "checkpoint", "fid", "n")} for r in swept],
        "best": {k: best[k] for k in ("step", "checkpoint", "fid", "n")},
        "final": fid_of(Path(best["checkpoint"]), final_n, scorer) if final_n > 0 else None,
    }


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FID / CLIP score tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    ref = sub.add_parser("ref-stats", help="Inception statistics of a folder of real images")
    ref.add_argument("--images", type=Path, required=True)
    ref.add_argument("--out", type=Path, required=True)
    ref.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (else $FUSION_INCEPTION)")
    ref.add_argument("--size", type=int, default=256)
    ref.add_argument("--batch-size", type=int, default=50, help="images read and passed through Inception at once")
    ref.add_argument("--device", default=_default_device())
    fid = sub.add_parser("fid", help="FID (and CLIP score) of a checkpoint on COCO val captions")
    fid.add_argument("--checkpoint", required=True)
    fid.add_argument("--n", type=int, default=30000)
    sweep = sub.add_parser("fid-sweep", help="U-ViT's checkpoint choice: FID of every snapshot of a run, then "
                           "the FID of the best one on more images")
    sweep.add_argument("--run", type=Path, required=True, help="run folder whose snapshots/ to sweep")
    sweep.add_argument("--n", type=int, default=10000, help="images per snapshot (U-ViT: 10,000)")
    sweep.add_argument("--final-n", type=int, default=30000, help="images for the best snapshot (0: none)")
    for q in (fid, sweep):
        q.add_argument("--captions", type=Path, required=True, help="captions_val2014.json")
        q.add_argument("--ref-stats", type=Path, required=True, help="npz with mu and sigma (U-ViT's or ref-stats')")
        q.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (else $FUSION_INCEPTION)")
        q.add_argument("--clip", help="CLIP ViT-L/14 folder for CLIP score (omit to skip)")
        q.add_argument("--vae")
        q.add_argument("--steps", type=int, default=STEPS)
        q.add_argument("--cfg-scale", type=float, default=FID_CFG_SCALE,
                       help="s in eps = cond + s (cond - uncond); default U-ViT's MS-COCO FID scale")
        q.add_argument("--batch-size", type=int, default=100)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default=_default_device())
        q.add_argument("--out", type=Path, help="write the result JSON here too")
    return p.parse_args(argv)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def missing_inputs(args: argparse.Namespace) -> list[str]:
    """The command's input files and folders that are not there, each with its flag. Checked
    before any network is loaded, so that a wrong path is named at once rather than after
    Inception (and CLIP) have loaded, and ref-stats never averages over no images."""
    if args.cmd == "ref-stats":
        if not args.images.is_dir():
            return [f"--images {args.images}: no such folder"]
        if not any(q.suffix.lower() in IMAGE_SUFFIXES for q in args.images.rglob("*")):
            return [f"--images {args.images}: holds no {', '.join(IMAGE_SUFFIXES)} image"]
        return []
    given = [("--captions", args.captions), ("--ref-stats", args.ref_stats)]
    if args.cmd == "fid":
        given.insert(0, ("--checkpoint", Path(args.checkpoint)))
    if args.cmd == "fid-sweep":  # a mistyped run folder is named as such, not as a run without snapshots
        given.insert(0, ("--run", args.run))
    return [f"{flag} {path}: no such file or folder" for flag, path in given if not path.exists()]


def main(argv: list[str] | None = None) -> None:
    """The command line. A missing input or missing pretrained weights end it with one message
    (what is missing and, for weights, where it looked and how to get them), not a traceback."""
    args = parse_args(argv)
    missing = missing_inputs(args)
    if missing:
        sys.exit(f"{args.cmd}: " + "; ".join(missing))
    try:
        _run(args)
    except MissingWeightsError as exc:
        sys.exit(f"{args.cmd}: {exc}")


def _run(args: argparse.Namespace) -> None:
    if args.cmd == "ref-stats":
        paths = sorted(q for q in args.images.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        inception = InceptionFeatures(args.inception, args.device)
        mu, sigma = reference_statistics(paths, inception, args.size, args.batch_size)
        np.savez(args.out, mu=mu, sigma=sigma, n=len(paths))
        print(json.dumps({"out": str(args.out), "n": len(paths)}))
        return

    if args.cmd == "fid-sweep":
        try:
            snapshot_files(args.run)  # before loading any network
        except FileNotFoundError as exc:
            sys.exit(f"fid-sweep: {exc}")
    settings = FidSettings(captions=args.captions, steps=args.steps, cfg_scale=args.cfg_scale,
                           batch_size=args.batch_size, seed=args.seed, device=args.device, vae=args.vae,
                           clip=args.clip)
    inception = InceptionFeatures(args.inception, args.device)
    scorer = ClipScorer(args.clip, args.device) if args.clip else None
    with np.load(args.ref_stats) as stats:
        ref = (stats["mu"], stats["sigma"])
    if args.cmd == "fid":
        result = checkpoint_fid(args.checkpoint, args.n, settings, inception, ref, scorer)
    else:
        result = sweep_fid(args.run, args.n, args.final_n, settings, inception, ref, scorer)
    text = json.dumps(result, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
