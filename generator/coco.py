"""MS-COCO 2014: images center-cropped to 256, and a one-off encoding into a training cache.

    python -m generator.coco encode --images coco/train2014 \\
        --captions coco/annotations/captions_train2014.json --out var/coco-train

checks the layout first (the captions file's shape, every image it lists present), then
runs the frozen encoders once and writes, under --out:

    moments.npy          (N, 2, C, h, w) float32  posterior mean and std of each image (unscaled)
    text.npy             (M, T, D) float16        token embeddings of every caption
    caption_offsets.npy  (N + 1,) int64           captions of image i are rows offsets[i]:offsets[i+1]
    captions.json        list of N lists of str   the caption texts
    empty_text.npy       (T, D) float32           the empty caption's tokens, for CFG training
    encode.json          what is being encoded and how many batches are done (progress)
    meta.json            codec and text encoder specs, shapes; written last, marks completion

The two large arrays are filled batch by batch, and encode.json records each batch once it
is on disk: a killed encode, rerun with the same command, goes on from the first batch not
recorded and ends with the same files as an uninterrupted run. With CLIP ViT-L/14 (77 x 768)
the text file is large: ~414k train captions take ~49 GB in float16 (U-ViT stores float32).

Images and captions follow U-ViT's datasets.py (MSCOCODatabase): images by COCO id, each
image's captions in the annotation file's order, and its `center_crop`: the central
square of the image, then a Lanczos resize to 256 x 256. One difference: an image without
captions (none in COCO 2014) is left out, where U-ViT would keep an image no caption can
be drawn for.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from generator.encoders import SD_VAE_SCALE, Codec, PixelCodec, SDVAECodec, TextEncoder, load_text_encoder
from generator.weights import MissingWeightsError

CACHE_FORMAT = "fusion-eval/coco-cache/1"
PROGRESS_FILE = "encode.json"
EXPECTED_LAYOUT = (
    "expected COCO 2014's layout: --images a folder holding the JPEGs themselves (train2014/"
    "COCO_train2014_000000000009.jpg, ...) and --captions annotations/captions_train2014.json, an object with "
    "'images' ([{'id', 'file_name'}, ...]) and 'annotations' ([{'image_id', 'caption'}, ...])"
)


class LayoutError(SystemExit):
    """A COCO folder or captions file that is not what `encode` needs; the message names
    the problem and the expected layout. Raised before anything is written."""


def center_crop(image: Image.Image, size: int = 256) -> Image.Image:
    """U-ViT's MS-COCO preprocessing (datasets.py, center_crop): the central square of the
    image (side the shorter edge), then resized to size x size with Lanczos."""
    arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    side = min(h, w)
    arr = arr[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
    return Image.fromarray(arr).resize((size, size), Image.Resampling.LANCZOS)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images of equal size -> (B, 3, H, W) float32 in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def read_captions(captions_json: Path) -> list[tuple[str, list[str]]]:
    """[(file_name, [captions...])] for every image with a caption, ordered by image id,
    each image's captions in file order (pycocotools' getAnnIds order, as U-ViT reads them).
    Raises LayoutError for anything but a COCO captions file."""
    captions_json = Path(captions_json)
    if not captions_json.is_file():
        raise LayoutError(f"no captions file at {captions_json}; {EXPECTED_LAYOUT}")
    try:
        data = json.loads(captions_json.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"{captions_json} is not JSON ({e}); {EXPECTED_LAYOUT}") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{captions_json} holds a {type(data).__name__}, not COCO's captions object; "
                          f"{EXPECTED_LAYOUT}")
    missing = [k for k in ("images", "annotations") if not isinstance(data.get(k), list)]
    if missing:
        raise LayoutError(f"{captions_json} has no list {' or '.join(map(repr, missing))}; {EXPECTED_LAYOUT}")
    anns = data["annotations"]
    if anns and not all(isinstance(a, dict) and isinstance(a.get("caption"), str) for a in anns):
        kind = ("an instances (object detection) file" if any(isinstance(a, dict) and "bbox" in a for a in anns)
                else "a file whose annotations are not captions")
        raise LayoutError(f"{captions_json} is {kind}: its annotations have no 'caption'. Use "
                          f"annotations/captions_train2014.json; {EXPECTED_LAYOUT}")
    try:
        files = {im["id"]: im["file_name"] for im in data["images"]}
        by_image: dict[int, list[str]] = {}
        for ann in anns:
            by_image.setdefault(ann["image_id"], []).append(ann["caption"].strip())
    except (KeyError, TypeError) as e:
        raise LayoutError(f"{captions_json}: an image or annotation lacks {e}; {EXPECTED_LAYOUT}") from None
    unknown = sorted(set(by_image) - set(files))
    if unknown:
        raise LayoutError(f"{captions_json}: {len(unknown)} annotations name image ids not in 'images' "
                          f"(first: {unknown[0]}); {EXPECTED_LAYOUT}")
    return [(files[i], by_image[i]) for i in sorted(by_image)]


def check_images(images_dir: Path, items: list[tuple[str, list[str]]]) -> None:
    """Every listed image must be a file in images_dir; else LayoutError naming how many
    are missing, the first, and where they are when they sit one folder off."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise LayoutError(f"no images folder at {images_dir}; {EXPECTED_LAYOUT}")
    missing = [name for name, _ in items if not (images_dir / name).is_file()]
    if not missing:
        return
    first = missing[0]
    hint = ""
    below = [d for d in sorted(images_dir.iterdir()) if d.is_dir() and (d / first).is_file()]
    if below:
        hint = f" They are one folder down: pass --images {below[0]}."
    elif (images_dir.parent / first).is_file():
        hint = f" They are one folder up: pass --images {images_dir.parent}."
    raise LayoutError(f"{len(missing)} of the {len(items)} captioned images are not in {images_dir} (first: "
                      f"{first}).{hint} {EXPECTED_LAYOUT}")


def check_layout(images_dir: Path, captions_json: Path, limit: int | None = None) -> list[tuple[str, list[str]]]:
    """The captioned images ``encode`` would read (the first ``limit``), each present in
    images_dir; else LayoutError. Reads no weights and writes nothing."""
    items = read_captions(captions_json)[:limit]
    if not items:
        raise LayoutError(f"no captioned images in {captions_json}; {EXPECTED_LAYOUT}")
    check_images(images_dir, items)
    return items


def _write_json(path: Path, obj: object) -> None:
    """Atomically: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def encode(
    images_dir: Path,
    captions_json: Path,
    out: Path,
    codec: Codec,
    text_encoder: TextEncoder,
    size: int = 256,
    batch_size: int = 32,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Write the cache described in the module docstring, or finish a partial one; returns
    its meta dict. The layout is checked before anything is written."""
    out = Path(out)
    items = check_layout(images_dir, captions_json, limit)
    n_captions = sum(len(c) for _, c in items)
    offsets = np.concatenate([[0], np.cumsum([len(c) for _, c in items])]).astype(np.int64)
    latent_shape = (codec.channels, size // codec.downsample, size // codec.downsample)
    text_shape = (n_captions, text_encoder.text_len, text_encoder.dim)
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
    # What this encode is: a partial cache is finished only by the same encode.
    plan = {**meta, "batch_size": batch_size, "files": [name for name, _ in items]}
    if (out / "meta.json").is_file():
        done = json.loads((out / "meta.json").read_text())
        if done == meta:
            return done
        raise SystemExit(f"{out} holds a complete cache of another encode; use a new --out")
    progress_file = out / PROGRESS_FILE
    n_batches = -(-len(items) // batch_size)
    done_batches = 0
    if progress_file.is_file():
        saved = json.loads(progress_file.read_text())
        if saved["plan"] != plan:
            raise SystemExit(f"{out} holds a partial cache of another encode (other images, encoders, size or "
                             "--batch-size); rerun that command to finish it, or use a new --out")
        done_batches = saved["done_batches"]
        mode = "r+"
    else:
        out.mkdir(parents=True, exist_ok=True)
        need = 4 * len(items) * 2 * int(np.prod(latent_shape)) + 2 * int(np.prod(text_shape))
        free = shutil.disk_usage(out).free
        if need > free:
            raise SystemExit(f"the cache needs {need / 1e9:.1f} GB and {out} has {free / 1e9:.1f} GB free")
        mode = "w+"
    if mode == "w+":
        moments = np.lib.format.open_memmap(out / "moments.npy", mode="w+", dtype=np.float32,
                                            shape=(len(items), 2, *latent_shape))
        text = np.lib.format.open_memmap(out / "text.npy", mode="w+", dtype=np.float16, shape=text_shape)
        _write_json(progress_file, {"plan": plan, "done_batches": 0})
    else:
        moments = np.load(out / "moments.npy", mmap_mode="r+")
        text = np.load(out / "text.npy", mmap_mode="r+")
    for b in tqdm(range(done_batches, n_batches), initial=done_batches, total=n_batches, desc="encode",
                  disable=not progress):
        start = b * batch_size
        chunk = items[start : start + batch_size]
        pixels = to_tensor([center_crop(Image.open(Path(images_dir) / name), size) for name, _ in chunk]).to(device)
        mean, std = codec.encode_moments(pixels)
        moments[start : start + len(chunk), 0] = mean.cpu().numpy()
        moments[start : start + len(chunk), 1] = std.cpu().numpy()
        caps = [c for _, cs in chunk for c in cs]
        lo = offsets[start]
        text[lo : lo + len(caps)] = text_encoder.encode(caps).cpu().numpy().astype(np.float16)
        moments.flush()
        text.flush()
        _write_json(progress_file, {"plan": plan, "done_batches": b + 1})
    del moments, text
    np.save(out / "caption_offsets.npy", offsets)
    np.save(out / "empty_text.npy", text_encoder.encode([""])[0].cpu().numpy().astype(np.float32))
    (out / "captions.json").write_text(json.dumps([c for _, c in items]))
    _write_json(out / "meta.json", meta)
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
    enc.add_argument("--batch-size", type=int, default=32, help="images per encoder call and per progress record")
    enc.add_argument("--limit", type=int, help="first N images only (for trials)")
    enc.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    # The paths first: a wrong --images or --captions is named before any missing weights are.
    check_layout(args.images, args.captions, args.limit)
    text_len = args.text_len or (77 if args.text_encoder == "clip" else 16)
    try:
        codec = (
            SDVAECodec.load(args.vae, args.scale_factor, args.allow_download)
            if args.codec == "sd-vae"
            else PixelCodec()
        ).to(args.device)
        text_encoder = load_text_encoder({"name": args.text_encoder, "text_len": text_len}, args.clip,
                                         args.allow_download)
    except MissingWeightsError as exc:  # what is missing, where it looked, how to get it: not a traceback
        raise SystemExit(f"encode: {exc}") from exc
    meta = encode(
        args.images, args.captions, args.out, codec, text_encoder.to(args.device),
        args.size, args.batch_size, args.limit, args.device,
    )
    print(json.dumps(meta))
    return meta


if __name__ == "__main__":
    main()
