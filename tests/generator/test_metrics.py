import numpy as np
import pytest
import torch
from PIL import Image

from generator.metrics import ClipScorer, InceptionFeatures, count_accuracy, feature_statistics, frechet_distance
from generator.weights import MissingWeightsError


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


class _FakeInception(torch.nn.Module):
    """Stands in for NVIDIA's TorchScript Inception: uint8 (B, 3, H, W) -> (B, 2048)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        feats = x.float().mean(dim=(2, 3)) / 255.0  # (B, 3)
        return feats.repeat(1, 683)[:, :2048]


def test_inception_features_from_a_torchscript_file(tmp_path):
    path = tmp_path / "inception.pt"
    torch.jit.script(_FakeInception()).save(str(path))
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (40, 30), (0, 0, 255))]
    feats = InceptionFeatures(path)(images, batch_size=1)
    assert feats.shape == (2, 2048) and feats[0, 0] == 1.0 and feats[1, 2] == 1.0


def test_missing_inception_names_the_path(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        InceptionFeatures(tmp_path / "nope.pt")


def test_clip_score_with_a_tiny_clip_model(tiny_clip_model_dir):
    scorer = ClipScorer(tiny_clip_model_dir)
    images = [Image.new("RGB", (48, 32), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    scores = scorer.scores(images, ["a red square", "green", "blue things"], batch_size=2)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 100)).all()
    assert np.allclose(scores, scorer.scores(images, ["a red square", "green", "blue things"]))


def test_count_accuracy_overall_and_per_cell():
    r = count_accuracy([1, 1, 2, 2], [1, 2, 2, 4], ["circle", "circle", "circle", "square"])
    assert r["exact_match"] == 0.5 and r["mean_abs_error"] == 0.75 and r["n"] == 4
    assert r["by_group"]["circle/1"] == {"exact_match": 0.5, "mean_abs_error": 0.5, "n": 2}
    assert r["by_group"]["square/2"] == {"exact_match": 0.0, "mean_abs_error": 2.0, "n": 1}
