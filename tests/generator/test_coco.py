import json

import numpy as np
import pytest
import torch
from PIL import Image

from generator import coco
from generator.data import CocoCacheSource
from generator.encoders import SDVAECodec, load_codec, load_text_encoder


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


@pytest.mark.parametrize("w, h", [(61, 40), (40, 67), (50, 50)])
def test_center_crop_is_uvits_crop_then_lanczos(w, h):
    """U-ViT's datasets.center_crop: the square [(h-s)//2, (h+s)//2) x [(w-s)//2, (w+s)//2),
    s the shorter side, then a Lanczos resize; not a bicubic resize of the short side first."""
    rng = np.random.default_rng(w * h)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)
    want = img.crop(box).resize((32, 32), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(coco.center_crop(img, 32)), np.asarray(want))
    if w != h:
        bicubic = img.resize((round(w * 32 / s), round(h * 32 / s)), Image.Resampling.BICUBIC)
        assert not np.array_equal(np.asarray(coco.center_crop(img, 32))[:, :8], np.asarray(bicubic)[:32, :8])


def test_captions_keep_the_file_order_of_each_image(tmp_path):
    """pycocotools (and so U-ViT) lists an image's captions in the order of the file."""
    f = tmp_path / "captions.json"
    f.write_text(json.dumps({"images": [{"id": 2, "file_name": "b.jpg"}, {"id": 1, "file_name": "a.jpg"}],
                             "annotations": [{"id": 9, "image_id": 1, "caption": "later id first"},
                                             {"id": 3, "image_id": 1, "caption": "earlier id second"},
                                             {"id": 5, "image_id": 2, "caption": "b"}]}))
    assert coco.read_captions(f) == [("a.jpg", ["later id first", "earlier id second"]), ("b.jpg", ["b"])]


def _encode(images, captions, out, vae, clip, *extra):
    return coco.main([
        "encode", "--images", str(images), "--captions", str(captions), "--out", str(out),
        "--vae", str(vae), "--clip", str(clip), "--text-len", "16", "--size", "32", "--batch-size", "1",
        "--device", "cpu", *extra,
    ])


def test_the_layout_is_checked_before_the_weights_are_looked_for(tmp_path, monkeypatch):
    """No COCO folder and no weights: the first error is the images folder, not the VAE."""
    monkeypatch.delenv("FUSION_SD_VAE", raising=False)
    captions = tmp_path / "captions_train2014.json"
    captions.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                    "annotations": [{"id": 1, "image_id": 1, "caption": "a"}]}))
    with pytest.raises(coco.LayoutError, match="no images folder at"):
        _encode(tmp_path / "coco" / "train2014", captions, tmp_path / "out", tmp_path / "no-vae", tmp_path / "no-clip")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing", ["vae", "clip"])
def test_missing_encoder_weights_end_the_command_with_how_to_get_them(fake_coco, tmp_path, tiny_vae_dir,
                                                                      tiny_clip_text_dir, missing):
    """As the metrics commands do (docs/reproducing-the-paper.md, section 1): one message
    saying what is missing, where it looked and how to get it, not MissingWeightsError's
    traceback; and nothing written."""
    images, captions = fake_coco
    vae = tmp_path / "no-vae" if missing == "vae" else tiny_vae_dir
    clip = tmp_path / "no-clip" if missing == "clip" else tiny_clip_text_dir
    out = tmp_path / "cache"
    with pytest.raises(SystemExit) as err:
        _encode(images, captions, out, vae, clip)
    assert not isinstance(err.value, coco.LayoutError)
    message = str(err.value.code)
    assert message.startswith("encode: ") and f"no-{missing}" in message and "To get them" in message
    assert not out.exists()


@pytest.mark.parametrize("layout, says", [
    ("images one folder too high", "They are one folder down: pass --images"),
    ("a missing image", "1 of the 3 captioned images are not in"),
    ("a flat list of captions", "holds a list, not COCO's captions object"),
    ("an instances file", "is an instances (object detection) file"),
    ("no annotations key", "has no list 'annotations'"),
    ("not JSON", "is not JSON"),
])
def test_each_bad_layout_is_named_before_anything_is_written(fake_coco, tmp_path, tiny_vae_dir,
                                                             tiny_clip_text_dir, layout, says):
    images, captions = fake_coco
    data = json.loads(captions.read_text())
    if layout == "images one folder too high":
        images = images.parent
    elif layout == "a missing image":
        (images / "COCO_train2014_000000000001.jpg").unlink()
    elif layout == "a flat list of captions":
        captions.write_text(json.dumps([a["caption"] for a in data["annotations"]]))
    elif layout == "an instances file":
        captions.write_text(json.dumps({"images": data["images"], "annotations": [
            {"id": 1, "image_id": 10, "bbox": [0, 0, 4, 4], "category_id": 1}]}))
    elif layout == "no annotations key":
        captions.write_text(json.dumps({"images": data["images"]}))
    else:
        captions.write_text("images,captions\n")
    out = tmp_path / "cache"
    with pytest.raises(coco.LayoutError) as err:
        _encode(images, captions, out, tiny_vae_dir, tiny_clip_text_dir)
    assert says in str(err.value) and "expected COCO 2014's layout" in str(err.value)
    assert not out.exists()


class Killed(BaseException):
    """Stands for SIGKILL inside the encode loop."""


def test_an_encode_killed_midway_resumes_to_the_same_cache(fake_coco, tmp_path, tiny_vae_dir, tiny_clip_text_dir,
                                                           monkeypatch):
    images, captions = fake_coco
    _encode(images, captions, tmp_path / "straight", tiny_vae_dir, tiny_clip_text_dir)

    killed = tmp_path / "killed"
    original, calls = SDVAECodec.encode_moments, []

    def die_on_the_second_batch(self, pixels):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return original(self, pixels)

    with monkeypatch.context() as m:
        m.setattr(SDVAECodec, "encode_moments", die_on_the_second_batch)
        with pytest.raises(Killed):
            _encode(images, captions, killed, tiny_vae_dir, tiny_clip_text_dir)
    assert not (killed / "meta.json").exists()
    assert json.loads((killed / coco.PROGRESS_FILE).read_text())["done_batches"] == 1
    with pytest.raises(SystemExit, match="partial .1 of 3 batches encoded.: rerun the same"):
        CocoCacheSource(killed)

    resumed = []
    with monkeypatch.context() as m:
        def encode_spy(self, p):
            resumed.append(1)
            return original(self, p)

        m.setattr(SDVAECodec, "encode_moments", encode_spy)
        _encode(images, captions, killed, tiny_vae_dir, tiny_clip_text_dir)
    assert len(resumed) == 2  # batches 2 and 3 only
    for name in ("moments.npy", "text.npy", "caption_offsets.npy", "captions.json", "empty_text.npy", "meta.json"):
        assert (killed / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    with pytest.raises(SystemExit, match="partial cache of another encode"):
        (killed / "meta.json").unlink()
        _encode(images, captions, killed, tiny_vae_dir, tiny_clip_text_dir, "--size", "16")


@pytest.mark.parametrize("what, says", [
    ("missing", "no COCO cache at"),
    ("raw", "holds COCO's images, not the encoded cache"),
    ("empty", "is not a finished cache"),
])
def test_training_refuses_what_is_not_a_finished_cache(fake_coco, tmp_path, what, says):
    (tmp_path / "empty").mkdir()
    folder = {"missing": tmp_path / "nowhere", "raw": fake_coco[0], "empty": tmp_path / "empty"}[what]
    with pytest.raises(SystemExit) as err:
        CocoCacheSource(folder)
    assert says in str(err.value) and "run `python -m generator.coco encode" in str(err.value)


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
