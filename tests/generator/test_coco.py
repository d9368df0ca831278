import json

import numpy as np
import pytest
import torch
from PIL import Image

from generator import coco
from generator.data import CocoCacheSource
from generator.encoders import load_codec, load_text_encoder


@pytest.fixture
def fake_coco(tmp_path):
    """Three JPEGs of odd sizes and a captions file in the COCO 2014 format."""
    images = tmp_path / "train2014"
    images.mkdir()
    rng = np.random.default_rng(0)
    entries, annotations = [], []
    for i, (w, h) in enumerate([(48, 40), (40, 64), (50, 50)]):
        name = f"COCO_train2014_{i:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / name)
        entries.append({"id": 10 + i, "file_name": name, "width": w, "height": h})
        for j in range(2 + i):
            annotations.append({"id": 100 * i + j, "image_id": 10 + i, "caption": f"picture {i} caption {j} "})
    captions = tmp_path / "captions_train2014.json"
    captions.write_text(json.dumps({"images": entries, "annotations": annotations}))
    return images, captions


def test_center_crop_keeps_the_middle_square():
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 0, 0), (15, 0, 45, 30))  # the central 30x30 square is red
    out = coco.center_crop(img, 16)
    assert out.size == (16, 16)
    assert np.asarray(out)[4:12, 4:12, 0].min() > 200


def test_encode_command_caches_moments_and_text(fake_coco, tmp_path, tiny_vae_dir, tiny_clip_text_dir):
    images, captions = fake_coco
    out = tmp_path / "cache"
    meta = coco.main([
        "encode", "--images", str(images), "--captions", str(captions), "--out", str(out),
        "--vae", str(tiny_vae_dir), "--clip", str(tiny_clip_text_dir), "--text-len", "16",
        "--size", "32", "--batch-size", "2", "--device", "cpu",
    ])
    assert meta["n_images"] == 3 and meta["n_captions"] == 9 and meta["latent_shape"] == [4, 16, 16]

    offsets = np.load(out / "caption_offsets.npy")
    assert offsets.tolist() == [0, 2, 5, 9]
    captions = json.loads((out / "captions.json").read_text())
    assert captions[1] == ["picture 1 caption 0", "picture 1 caption 1", "picture 1 caption 2"]

    codec = load_codec(meta["codec"], vae_path=tiny_vae_dir)
    text_encoder = load_text_encoder(meta["text_encoder"], clip_path=tiny_clip_text_dir)
    pixels = coco.to_tensor([coco.center_crop(Image.open(images / "COCO_train2014_000000000001.jpg"), 32)])
    mean, std = codec.encode_moments(pixels)
    moments = np.load(out / "moments.npy")
    assert moments.shape == (3, 2, 4, 16, 16)
    assert np.allclose(moments[1, 0], mean[0].numpy(), atol=1e-5)
    assert np.allclose(moments[1, 1], std[0].numpy(), atol=1e-5)
    text = np.load(out / "text.npy")
    assert text.shape == (9, 16, 32) and text.dtype == np.float16
    assert np.allclose(text[2], text_encoder.encode(["picture 1 caption 0"])[0].numpy(), atol=2e-3)
    assert np.allclose(np.load(out / "empty_text.npy"), text_encoder.encode([""])[0].numpy(), atol=1e-5)

    # The training source reads the cache without running any encoder.
    source = CocoCacheSource(out)
    g = torch.Generator().manual_seed(0)
    x0, ctx = source.batch(5, g)
    assert x0.shape == (5, 4, 16, 16) and ctx.shape == (5, 16, 32)
    assert source.empty.shape == (16, 32)
    captions_seen, previews = source.preview(2)
    assert captions_seen == ["picture 0 caption 0", "picture 1 caption 0"] and previews.shape == (2, 16, 32)
