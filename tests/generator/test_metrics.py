import json

import numpy as np
import pytest
import torch
from PIL import Image

import generator.metrics
from generator.checkpoint import save_ema
from generator.coco import center_crop
from generator.defaults import FID_CFG_SCALE
from generator.encoders import encoder_specs_for
from generator.metrics import (
    ClipScorer,
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
    main,
    val_prompts,
)
from generator.model import UViT
from generator.sample import Sampler
from generator.weights import MissingWeightsError
from tests.narrow import present


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_an_eigenvalue_computation():
    # tr((S1 S2)^1/2) is the sum of square roots of the eigenvalues of S1 S2, which are
    # real and non-negative for covariance matrices: an independent route to the trace.
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A weights file for the FID Inception with random weights that keep activations
    alive through its ~50 layers (He-normal convolutions, random BatchNorm affines)."""
    from generator.inception import FIDInceptionV3

    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.1)
            present(m.running_mean).normal_(std=0.1)
            present(m.running_var).uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


def _random_images(seed: int, n: int, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def features(inception_file):
    """Our Inception features of two small random image sets."""
    inception = InceptionFeatures(inception_file)
    return inception(_random_images(1, 6), batch_size=4), inception(_random_images(2, 5), batch_size=4)


@pytest.fixture
def reference(tmp_path):
    """pytorch-fid's modules, importable for one test only: its torchvision stand-in must
    not be in sys.modules while other code (transformers) looks for torchvision."""
    from tests.generator.pytorch_fid_reference import pytorch_fid

    with pytorch_fid(tmp_path / "torchvision") as ref:
        yield ref


# scipy's sqrtm takes about a minute at 2048 dimensions on a shared CPU: the distance
# tests use the first `dims` feature dimensions (the computation is the same at any size).
# 4 < the set sizes: full-rank covariances; 64 > them: singular ones, pytorch-fid's
# eps-on-the-diagonal branch.
@pytest.mark.parametrize("dims", [4, 64])
def test_fid_equals_pytorch_fids_computation_on_the_same_features(features, reference, monkeypatch, dims):
    a, b = (f[:, :dims] for f in features)
    assert features[0].shape == (6, 2048) and np.isfinite(features[0]).all() and features[0].std() > 0
    ours = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    # pytorch-fid's statistics and distance, handed the same activations.
    acts = iter([a, b])
    monkeypatch.setattr(reference.fid_score, "get_activations", lambda *args, **kwargs: next(acts))
    mu1, s1 = reference.fid_score.calculate_activation_statistics(["a"], None)
    mu2, s2 = reference.fid_score.calculate_activation_statistics(["b"], None)
    theirs = reference.fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours > 0 and ours == pytest.approx(theirs, rel=1e-9)


def test_a_set_is_at_distance_zero_from_itself(features):
    mu, sigma = feature_statistics(features[0][:, :4])
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_our_network_is_pytorch_fids_fid_inception(inception_file, features, reference, tmp_path, monkeypatch):
    """pytorch-fid's own network (its FID blocks on torchvision's Inception3), given the
    same weights file, has our parameter names and shapes and gives our features."""
    if not reference.real_network:
        pytest.skip("no torchvision wheel to build pytorch-fid's network from (FUSION_TORCHVISION_WHEEL)")
    state = torch.load(inception_file, weights_only=True)
    monkeypatch.setattr(reference.inception, "load_state_dict_from_url", lambda *a, **k: state)
    network = reference.inception.InceptionV3([3]).eval()  # loads `state` strictly: every name and shape
    assert len(state) == len(reference.inception.fid_inception_v3().state_dict())
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(_random_images(1, 6)):
        im.save(folder / f"{i}.png")
    files = sorted(folder.glob("*.png"), key=lambda f: int(f.stem))
    theirs = reference.fid_score.get_activations(files, network, batch_size=4, dims=2048, num_workers=0)
    assert np.allclose(features[0], theirs, rtol=1e-4, atol=1e-5)


def test_missing_inception_weights_say_where_and_how(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match="nope.pth") as err:
        InceptionFeatures(tmp_path / "nope.pth")
    assert "pt_inception-2015-12-05-6726825d.pth" in str(err.value)
    monkeypatch.delenv("FUSION_INCEPTION", raising=False)
    with pytest.raises(MissingWeightsError, match="FUSION_INCEPTION"):
        InceptionFeatures()


def test_other_weights_are_refused_naming_the_tensors(tmp_path, inception_file):
    state = torch.load(inception_file, weights_only=True)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head, not the FID one
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"Mixed_7c\.branch_pool\.conv\.weight.*fc\.weight: got \(1000, 2048\)"):
        InceptionFeatures(tmp_path / "other.pth")


def test_clip_score_is_100_times_the_cosine_of_the_embeddings(tiny_clip_model_dir):
    from transformers import CLIPModel, CLIPProcessor

    scorer = ClipScorer(tiny_clip_model_dir)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 250)]
    words = ["a red square", "green", "blue things", "white", "zz", "nothing"]  # <= 14 byte tokens
    # Every image with every prompt: with random weights some cosines are negative
    # (clipped to 0) and some positive.
    images = [Image.new("RGB", (48, 32), c) for c in colours for _ in words]
    prompts = words * len(colours)
    scores = scorer.scores(images, prompts, batch_size=3)
    # By hand: CLIP's embeddings of each image and each prompt, prepared by CLIPProcessor.
    model = CLIPModel.from_pretrained(tiny_clip_model_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_model_dir)
    with torch.no_grad():
        expected = []
        for image, prompt in zip(images, prompts, strict=True):
            inputs = processor(text=[prompt], images=[image], return_tensors="pt")
            out = model(**inputs)
            img, txt = out.image_embeds[0].numpy(), out.text_embeds[0].numpy()
            cos = float(img @ txt / np.linalg.norm(img) / np.linalg.norm(txt))
            expected.append(100 * max(cos, 0.0))
    assert max(expected) > 1 and min(expected) == 0  # the factor 100 and the clip at 0 are both seen
    assert scores == pytest.approx(expected, rel=1e-4, abs=1e-4)


# ---------------------------------------------------------------------------
# Reference statistics, streamed
# ---------------------------------------------------------------------------


def test_ref_stats_streams_the_images_and_equals_the_whole_list(inception_file, tmp_path, monkeypatch):
    folder = tmp_path / "val2014"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(40, 56), (48, 48), (60, 36), (44, 52), (50, 40)]):  # crops of every aspect
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"COCO_val2014_{i:012d}.png")
    paths = sorted(folder.glob("*.png"))
    inception = InceptionFeatures(inception_file)
    whole = feature_statistics(inception([center_crop(Image.open(p), 64) for p in paths], batch_size=2))

    opened: list[Image.Image] = []
    seen_at_call: list[tuple[int, int]] = []
    real_crop, real_call = generator.metrics.center_crop, InceptionFeatures.__call__

    def crop(im, size):
        opened.append(im)
        return real_crop(im, size)

    monkeypatch.setattr(generator.metrics, "center_crop", crop)

    def call(self, images, batch_size=50):
        seen_at_call.append((len(opened), len(images)))
        return real_call(self, images, batch_size)

    monkeypatch.setattr(InceptionFeatures, "__call__", call)
    out = tmp_path / "ref.npz"
    main(["ref-stats", "--images", str(folder), "--inception", str(inception_file), "--out", str(out),
          "--size", "64", "--batch-size", "2", "--device", "cpu"])
    # Never more than one batch of images read ahead of the network.
    assert seen_at_call == [(2, 2), (4, 2), (5, 1)]
    with np.load(out) as streamed:
        assert int(streamed["n"]) == 5
        assert np.array_equal(streamed["mu"], whole[0]) and np.array_equal(streamed["sigma"], whole[1])


# ---------------------------------------------------------------------------
# FID prompts, FID of a checkpoint, the sweep over a run's snapshots
# ---------------------------------------------------------------------------


def _coco_captions(path, captions_per_image):
    """A COCO-shaped captions file: image i (id 100 + i) has captions_per_image[i] captions."""
    images: list[dict] = []
    annotations: list[dict] = []
    for i, k in enumerate(captions_per_image):
        images.append({"id": 100 + i, "file_name": f"COCO_val2014_{100 + i:012d}.jpg"})
        annotations += [{"id": len(annotations) + 1, "image_id": 100 + i, "caption": f" image {i} caption {j} "}
                        for j in range(k)]
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_fid_prompts_draw_images_without_replacement_then_one_caption_each(tmp_path):
    # One image with 40 captions among 11 with one: drawn by annotation it would fill most prompts.
    captions = _coco_captions(tmp_path / "captions_val2014.json", [40] + [1] * 11)
    for seed in range(20):
        prompts = val_prompts(captions, 8, seed)
        ids = [image_id for image_id, _ in prompts]
        assert len(ids) == 8 and len(set(ids)) == 8  # no image repeats
        assert all(caption.startswith(f"image {image_id - 100} caption ") for image_id, caption in prompts)
    everything = val_prompts(captions, 100, seed=0)  # capped at the 12 images
    assert sorted(i for i, _ in everything) == list(range(100, 112))
    assert val_prompts(captions, 5, seed=4) == val_prompts(captions, 5, seed=4) != val_prompts(captions, 5, seed=5)
    # A sweep's FID-10k prompts are the first of the final FID-30k's (same seed).
    assert val_prompts(captions, 5, seed=4) == val_prompts(captions, 12, seed=4)[:5]
    # The 40-caption image's caption is drawn among its 40.
    picked = {c for seed in range(60) for i, c in val_prompts(captions, 12, seed) if i == 100}
    assert len(picked) > 20


class _PixelFeatures:
    """Stands in for the FID Inception in the command-line tests: 4 features per image (the
    channel means and the overall spread), so the Frechet distance is 4-dimensional."""

    def __init__(self, path=None, device="cpu"):
        pass

    def __call__(self, images, batch_size=50):
        arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float64) / 255 for im in images])
        return np.concatenate([arr.mean(axis=(1, 2)), arr.std(axis=(1, 2, 3))[:, None]], axis=1)


@pytest.fixture
def fid_inputs(tmp_path, tiny_cfg, monkeypatch):
    """A run with two EMA snapshots of different weights, a captions file, 4-d reference statistics."""
    monkeypatch.setattr(generator.metrics, "InceptionFeatures", _PixelFeatures)
    run = tmp_path / "run"
    codec, text = encoder_specs_for(tiny_cfg)
    for step, seed in ((50000, 0), (100000, 1)):
        torch.manual_seed(seed)
        save_ema(run / "snapshots" / f"step-{step:07d}.safetensors", UViT(tiny_cfg).state_dict(), tiny_cfg, codec,
                 text, step=step, name="tiny")
    rng = np.random.default_rng(0)
    ref = tmp_path / "ref.npz"
    np.savez(ref, mu=rng.uniform(0.3, 0.7, 4), sigma=np.diag(rng.uniform(0.01, 0.05, 4)), n=100)
    captions = _coco_captions(tmp_path / "captions_val2014.json", [2, 1, 3, 1, 1, 2, 1, 1])
    common = ["--captions", str(captions), "--ref-stats", str(ref), "--steps", "2", "--batch-size", "3",
              "--device", "cpu"]
    return run, common


def _run(argv, capsys):
    main(argv)
    return json.loads(capsys.readouterr().out)


def test_fid_samples_at_uvits_guidance_scale_and_records_it(fid_inputs, capsys, monkeypatch):
    run, common = fid_inputs
    scales: list[float] = []
    real_generate = Sampler.generate

    def generate(self, prompts, seeds, cfg_scale, *args):
        scales.append(cfg_scale)
        return real_generate(self, prompts, seeds, cfg_scale, *args)

    monkeypatch.setattr(Sampler, "generate", generate)
    result = _run(["fid", "--checkpoint", str(run / "snapshots" / "step-0050000.safetensors"), "--n", "4", *common],
                  capsys)
    assert FID_CFG_SCALE == 1.0  # U-ViT's MS-COCO scale, in the same form eps = cond + s (cond - uncond)
    assert scales == [1.0, 1.0] and result["cfg_scale"] == 1.0  # 4 images in batches of 3
    assert result["n"] == 4 and result["step"] == 50000 and result["fid"] > 0


def test_fid_sweep_picks_the_snapshot_of_lowest_fid_and_scores_it_on_more_images(fid_inputs, tmp_path, capsys,
                                                                                   monkeypatch):
    run, common = fid_inputs
    sweep = _run(["fid-sweep", "--run", str(run), "--n", "4", "--final-n", "6", *common,
                  "--out", str(tmp_path / "sweep.json")], capsys)
    assert json.loads((tmp_path / "sweep.json").read_text()) == sweep
    # Each snapshot's FID is `fid --n 4` of that snapshot.
    single = {s: _run(["fid", "--checkpoint", str(run / "snapshots" / f"step-{s:07d}.safetensors"), "--n", "4",
                       *common], capsys)["fid"] for s in (50000, 100000)}
    assert {r["step"]: r["fid"] for r in sweep["snapshots"]} == single and single[50000] != single[100000]
    best = min(single, key=lambda s: single[s])
    assert sweep["best"]["step"] == best and sweep["best"]["fid"] == single[best]
    final = sweep["final"]
    assert (final["step"], final["n"], final["cfg_scale"]) == (best, 6, 1.0)
    assert final["fid"] == _run(["fid", "--checkpoint", sweep["best"]["checkpoint"], "--n", "6", *common],
                                capsys)["fid"]
    # Run again: every result is read back from beside its snapshot, nothing is sampled.
    monkeypatch.setattr("generator.sample.load_sampler", lambda *a, **k: pytest.fail("sampled again"))
    assert _run(["fid-sweep", "--run", str(run), "--n", "4", "--final-n", "6", *common], capsys) == sweep


def test_fid_sweep_without_snapshots_says_how_to_get_them(fid_inputs, tmp_path):
    _, common = fid_inputs
    (tmp_path / "elsewhere").mkdir()  # a run trained without --keep-every
    with pytest.raises(SystemExit, match="--keep-every"):
        main(["fid-sweep", "--run", str(tmp_path / "elsewhere"), *common])
    with pytest.raises(SystemExit, match="^fid-sweep: --run .*nowhere: no such file or folder$"):
        main(["fid-sweep", "--run", str(tmp_path / "nowhere"), *common])


# ---------------------------------------------------------------------------
# The command line: missing inputs and weights end it with a message, not a traceback
# ---------------------------------------------------------------------------


def _no_network(*args, **kwargs):
    raise AssertionError("a network was loaded before the inputs were checked")


def test_cli_names_every_missing_input_before_loading_a_network(tmp_path, monkeypatch):
    monkeypatch.setattr(generator.metrics, "InceptionFeatures", _no_network)
    with pytest.raises(SystemExit) as err:
        generator.metrics.main(["fid", "--checkpoint", str(tmp_path / "run"), "--captions", str(tmp_path / "c.json"),
                                "--ref-stats", str(tmp_path / "ref.npz"), "--device", "cpu"])
    message = str(err.value.code)
    assert message.startswith("fid: ")
    for flag in ("--checkpoint", "--captions", "--ref-stats"):
        assert flag in message
    with pytest.raises(SystemExit, match="--images .*no such folder"):
        generator.metrics.main(["ref-stats", "--images", str(tmp_path / "val2014"), "--out", str(tmp_path / "o.npz")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="--images .*holds no"):
        generator.metrics.main(["ref-stats", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o.npz")])


def test_cli_without_the_inception_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("FUSION_INCEPTION", raising=False)
    (tmp_path / "val2014").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val2014" / "a.png")
    with pytest.raises(SystemExit) as err:  # not MissingWeightsError's traceback
        generator.metrics.main(["ref-stats", "--images", str(tmp_path / "val2014"), "--out", str(tmp_path / "o.npz"),
                                "--device", "cpu"])
    message = str(err.value.code)
    assert message.startswith("ref-stats: ") and "FUSION_INCEPTION" in message and "To get them" in message
    assert not (tmp_path / "o.npz").exists()
