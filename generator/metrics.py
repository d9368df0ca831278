"""Image metrics: FID, CLIP score and counting accuracy.

FID follows U-ViT's MS-COCO protocol, which is pytorch-fid's computation: 30,000 images
from randomly drawn val2014 captions, the 2048-d pool features of pytorch-fid's FID
Inception-v3 (generator/inception.py: the same network and weights file,
pt_inception-2015-12-05-6726825d.pth, given by --inception or $FUSION_INCEPTION, never
downloaded), and the Frechet distance to reference statistics: U-ViT's published MS-COCO
256 file (fid_stats_mscoco256_val.npz, keys mu and sigma) or those `ref-stats` computes
with the same network from the val2014 images center-cropped to 256.

CLIP score: 100 * max(cos(image, text), 0) of CLIP ViT-L/14 embeddings, the images and
prompts prepared by transformers' CLIPProcessor.

    python -m generator.metrics ref-stats --images DIR --inception PTH --out ref.npz
    python -m generator.metrics fid --checkpoint CKPT --captions captions_val2014.json \\
        --ref-stats ref.npz --inception PTH [--n 30000] [--clip DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from generator.coco import center_crop
from generator.defaults import CFG_SCALE, STEPS
from generator.inception import FEATURE_DIM, load_fid_inception
from generator.weights import CLIP_SCORE, resolve_folder

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
    image_paths: Iterable[Path], inception: InceptionFeatures, size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Inception statistics of real images, center-cropped to `size`."""
    feats = inception([center_crop(Image.open(p), size) for p in image_paths])
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
# Counting accuracy
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Command line: reference statistics and FID / CLIP score of a checkpoint
# ---------------------------------------------------------------------------


def _val_captions(path: Path, n: int, seed: int) -> list[str]:
    """n captions drawn without replacement from a COCO captions JSON (as U-ViT does)."""
    captions = [a["caption"].strip() for a in json.loads(path.read_text())["annotations"]]
    rng = np.random.default_rng(seed)
    return [captions[i] for i in rng.choice(len(captions), size=min(n, len(captions)), replace=False)]


def main(argv: list[str] | None = None) -> None:
    from generator.sample import load_sampler

    p = argparse.ArgumentParser(description="FID / CLIP score tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    ref = sub.add_parser("ref-stats", help="Inception statistics of a folder of real images")
    ref.add_argument("--images", type=Path, required=True)
    ref.add_argument("--out", type=Path, required=True)
    ref.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (else $FUSION_INCEPTION)")
    ref.add_argument("--size", type=int, default=256)
    fid = sub.add_parser("fid", help="FID (and CLIP score) of a checkpoint on COCO val captions")
    fid.add_argument("--checkpoint", required=True)
    fid.add_argument("--captions", type=Path, required=True, help="captions_val2014.json")
    fid.add_argument("--ref-stats", type=Path, required=True, help="npz with mu and sigma (U-ViT's or ref-stats')")
    fid.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (else $FUSION_INCEPTION)")
    fid.add_argument("--clip", help="CLIP ViT-L/14 folder for CLIP score (omit to skip)")
    fid.add_argument("--vae")
    fid.add_argument("--n", type=int, default=30000)
    fid.add_argument("--steps", type=int, default=STEPS)
    fid.add_argument("--cfg-scale", type=float, default=CFG_SCALE)
    fid.add_argument("--batch-size", type=int, default=100)
    fid.add_argument("--seed", type=int, default=0)
    fid.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    fid.add_argument("--out", type=Path, help="write the result JSON here too")
    args = p.parse_args(argv)

    if args.cmd == "ref-stats":
        exts = {".jpg", ".jpeg", ".png"}
        paths = sorted(q for q in args.images.rglob("*") if q.suffix.lower() in exts)
        mu, sigma = reference_statistics(paths, InceptionFeatures(args.inception), args.size)
        np.savez(args.out, mu=mu, sigma=sigma, n=len(paths))
        print(json.dumps({"out": str(args.out), "n": len(paths)}))
        return

    inception = InceptionFeatures(args.inception, args.device)
    scorer = ClipScorer(args.clip, args.device) if args.clip else None
    sampler = load_sampler(args.checkpoint, args.device, vae_path=args.vae, clip_path=args.clip)
    prompts = _val_captions(args.captions, args.n, args.seed)
    feats, clip_scores = [], []
    for i in range(0, len(prompts), args.batch_size):
        chunk = prompts[i : i + args.batch_size]
        seeds = list(range(args.seed + i, args.seed + i + len(chunk)))
        images = sampler.generate(chunk, seeds, args.cfg_scale, args.steps, args.batch_size)
        feats.append(inception(images))
        if scorer is not None:
            clip_scores.append(scorer.scores(images, chunk))
    ref_stats = np.load(args.ref_stats)
    mu, sigma = feature_statistics(np.concatenate(feats))
    result = {
        "fid": frechet_distance(mu, sigma, ref_stats["mu"], ref_stats["sigma"]),
        "clip_score": float(np.mean(np.concatenate(clip_scores))) if clip_scores else None,
        "n": len(prompts),
        "steps": args.steps,
        "cfg_scale": args.cfg_scale,
        **{k: v for k, v in sampler.provenance().items() if k in ("sha256", "name", "step", "code_version")},
    }
    text = json.dumps(result, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
