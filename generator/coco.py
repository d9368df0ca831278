"""MS-COCO 2014: images center-cropped to 256, and a one-off encoding into a training cache.

    python -m generator.coco encode --images coco/train2014 \\
        --captions coco/annotations/captions_train2014.json --out var/coco-train

runs the frozen encoders once and writes, under --out:

    moments.npy          (N, 2, C, h, w) float32  posterior mean and std of each image (unscaled)
    text.npy             (M, T, D) float16        token embeddings of every caption
    caption_offsets.npy  (N + 1,) int64           captions of image i are rows offsets[i]:offsets[i+1]
    captions.json        list of N lists of str   the caption texts
    empty_text.npy       (T, D) float32           the empty caption's tokens, for CFG training
    meta.json            codec and text encoder specs, shapes; written last, marks completion

With CLIP ViT-L/14 (77 x 768) the text file is large: ~414k train captions take ~49 GB
in float16, which is what U-ViT also stores (in float32). Images are ordered by COCO id.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from generator.encoders import SD_VAE_SCALE, PixelCodec, SDVAECodec, load_text_encoder

CACHE_FORMAT = "fusion-eval/coco-cache/1"


def center_crop(image: Image.Image, size: int = 256) -> Image.Image:
    """Resize the short side to `size` (bicubic) and crop the centre: U-ViT's COCO preprocessing."""
    w, h = image.size
    scale = size / min(w, h)
    image = image.convert("RGB").resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC
    )
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images of equal size -> (B, 3, H, W) float32 in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def read_captions(captions_json: Path) -> list[tuple[str, list[str]]]:
    """[(file_name, [captions...])] for every image with a caption, ordered by image id."""
    data = json.loads(Path(captions_json).read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    by_image: dict[int, list[str]] = defaultdict(list)
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        by_image[ann["image_id"]].append(ann["caption"].strip())
    return [(files[i], by_image[i]) for i in sorted(by_image)]


def encode(
    images_dir: Path,
    captions_json: Path,
    out: Path,
    codec,
    text_encoder,
    size: int = 256,
    batch_size: int = 32,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Write the cache described in the module docstring; returns its meta dict."""
    items = read_captions(captions_json)[:limit]
    if not items:
        raise SystemExit(f"no captioned images in {captions_json}")
    out.mkdir(parents=True, exist_ok=True)
    n_captions = sum(len(c) for _, c in items)
    offsets = np.concatenate([[0], np.cumsum([len(c) for _, c in items])]).astype(np.int64)
    latent_shape = (codec.channels, size // codec.downsample, size // codec.downsample)
    moments = np.lib.format.open_memmap(
        out / "moments.npy", mode="w+", dtype=np.float32, shape=(len(items), 2, *latent_shape)
    )
    text = np.lib.format.open_memmap(
        out / "text.npy", mode="w+", dtype=np.float16, shape=(n_captions, text_encoder.text_len, text_encoder.dim)
    )
    for start in tqdm(range(0, len(items), batch_size), desc="encode", disable=not progress):
        chunk = items[start : start + batch_size]
        pixels = to_tensor([center_crop(Image.open(images_dir / name), size) for name, _ in chunk]).to(device)
        mean, std = codec.encode_moments(pixels)
        moments[start : start + len(chunk), 0] = mean.cpu().numpy()
        moments[start : start + len(chunk), 1] = std.cpu().numpy()
        caps = [c for _, cs in chunk for c in cs]
        lo = offsets[start]
        text[lo : lo + len(caps)] = text_encoder.encode(caps).cpu().numpy().astype(np.float16)
    moments.flush()
    text.flush()
    np.save(out / "caption_offsets.npy", offsets)
    np.save(out / "empty_text.npy", text_encoder.encode([""])[0].cpu().numpy().astype(np.float32))
    (out / "captions.json").write_text(json.dumps([c for _, c in items]))
    meta = {
        "format": CACHE_FORMAT,
        "codec": codec.spec(),
        "text_encoder": text_encoder.spec(),
        "latent_shape": list(latent_shape),
        "image_size": size,
        "n_images": len(items),
        "n_captions": n_captions,
        "captions_file": Path(captions_json).name,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="MS-COCO 2014 tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    enc = sub.add_parser("encode", help="encode images and captions once into a training cache")
    enc.add_argument("--images", type=Path, required=True, help="folder of train2014 (or val2014) JPEGs")
    enc.add_argument("--captions", type=Path, required=True, help="captions_train2014.json")
    enc.add_argument("--out", type=Path, required=True)
    enc.add_argument("--codec", default="sd-vae", choices=["sd-vae", "pixel"])
    enc.add_argument("--scale-factor", type=float, default=SD_VAE_SCALE)
    enc.add_argument("--text-encoder", default="clip", choices=["clip", "minilm"])
    enc.add_argument("--text-len", type=int, help="tokens kept (default: 77 for CLIP, 16 for MiniLM)")
    enc.add_argument("--vae", help="SD VAE folder (else $FUSION_SD_VAE, else the HF cache)")
    enc.add_argument("--clip", help="CLIP ViT-L/14 folder (else $FUSION_CLIP, else the HF cache)")
    enc.add_argument("--allow-download", action="store_true")
    enc.add_argument("--size", type=int, default=256)
    enc.add_argument("--batch-size", type=int, default=32)
    enc.add_argument("--limit", type=int, help="first N images only (for trials)")
    enc.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    codec = (
        SDVAECodec.load(args.vae, args.scale_factor, args.allow_download)
        if args.codec == "sd-vae"
        else PixelCodec()
    ).to(args.device)
    text_len = args.text_len or (77 if args.text_encoder == "clip" else 16)
    text_encoder = load_text_encoder({"name": args.text_encoder, "text_len": text_len}, args.clip, args.allow_download)
    meta = encode(
        args.images, args.captions, args.out, codec, text_encoder.to(args.device),
        args.size, args.batch_size, args.limit, args.device,
    )
    print(json.dumps(meta))
    return meta


if __name__ == "__main__":
    main()
