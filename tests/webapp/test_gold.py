"""Gold items blend in: a classifier on file size and pixel statistics cannot tell them from
the study's generated images, and their counts stay exact.

The generated images are real: the four demo checkpoints sample the study's count grid
(seeds other than those the look's constants were chosen on), as the generation worker
would, and the study's own opening renders the gold images.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image as PILImage
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from generator.counter import count_objects
from generator.synthetic import KINDS
from tests.factories import generate_study_images
from webapp.studies import lifecycle
from webapp.studies.gold import scene_render
from webapp.studies.imagefiles import png_bytes
from webapp.studies.models import Image

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "protocols" / "demo.json"
MAX_AUC = 0.65
# Clean renders on white, which the look replaces, are told apart well above that (0.87
# measured with the PNGs stored uncompressed, i.e. without the file-size channel).
CLEAN_MIN_AUC = 0.8


def _protocol() -> dict:
    doc = json.loads(DEMO.read_text())
    doc["sampling"]["seed"] = 5  # not the seeds RAGGEDNESS and WOBBLE were chosen on
    doc["preference_task"] = None
    # Four gold items per object and count: about as many gold images as generated ones.
    doc["quality_control"]["gold"] = [
        {"id": f"g-{obj}-{n}-{k}", "object": obj, "count": n, "colour": "red"}
        for obj in KINDS for n in range(1, 6) for k in range(4)
    ]
    doc["quality_control"]["repeats"] = 0
    return doc


def features(path: Path) -> list[float]:
    """File size, mean, variance, background share, edge density."""
    a = np.asarray(PILImage.open(path).convert("RGB"), dtype=np.float64)
    grey = a.mean(axis=-1)
    background = np.linalg.norm(255.0 - a, axis=-1) < 60
    edges = (np.mean(np.abs(np.diff(grey, axis=1)) > 40) + np.mean(np.abs(np.diff(grey, axis=0)) > 40)) / 2
    return [path.stat().st_size, a.mean(), a.var(), background.mean(), edges]


def cross_validated_auc(x: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression())
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds, scoring="roc_auc").mean())


@pytest.fixture
def opened_study():
    study = lifecycle.study_create(protocol=_protocol(), slug="gold-look", base_dir=str(DEMO.parent))
    generate_study_images(study)
    return lifecycle.study_open(study=study)


def test_gold_images_cannot_be_told_from_generated_ones_and_keep_their_counts(opened_study):
    study = opened_study
    media = Path(settings.MEDIA_ROOT)
    model = [media / f for f in Image.objects.filter(study=study, source="model").values_list("file", flat=True)]
    gold = list(Image.objects.filter(study=study, source="gold"))
    assert len(model) == 120 and len(gold) == 60
    # Exact counts: the renderer drew true_count shapes, and the counter reads them back.
    for img in gold:
        assert img.provenance["counter_confirmed"] is True
        assert count_objects(PILImage.open(media / img.file)) == img.true_count
        assert (img.width, img.height) == (24, 24)

    x = np.array([features(p) for p in model] + [features(media / g.file) for g in gold])
    y = np.array([0] * len(model) + [1] * len(gold))
    sizes = x[:, 0]
    assert sizes[y == 1].min() >= 0.8 * sizes[y == 0].min() and sizes[y == 1].max() <= 1.2 * sizes[y == 0].max()
    auc = cross_validated_auc(x, y)
    assert auc <= MAX_AUC, f"gold separable from generated images: cross-validated AUC {auc:.3f}"

    # The same classifier does see the difference the look removes: clean renders of the
    # same scenes on white stand out.
    clean_dir = media / "clean"
    clean_dir.mkdir()
    clean = []
    for img in gold:
        assert img.true_count is not None  # gold images are drawn with a known count
        path = clean_dir / f"{img.pk}.png"
        path.write_bytes(png_bytes(scene_render(kind=img.prompt.object, colour="red", count=img.true_count,
                                                seed=img.seed, size=24)))
        clean.append(features(path))
    assert cross_validated_auc(np.array([features(p) for p in model] + clean), y) > CLEAN_MIN_AUC
