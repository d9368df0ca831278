import numpy as np
import pytest
import torch
from PIL import Image

from generator.metrics import (
    ClipScorer,
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
)
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
