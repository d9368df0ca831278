"""Judge-only images (the protocol's ``analysis.judge_images_per_cell``): generated through
the real batch path with tiny checkpoints, shown to no evaluator, exported as judge-only
rows, and used by the stored analysis' prediction-powered intervals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from evalstudy.responses import read_responses
from tests.factories import UserFactory
from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, make_tiny_checkpoints, small_protocol
from webapp.generation import part_runner, selectors, services
from webapp.generation.models import Batch
from webapp.research import exports, reports
from webapp.research import selectors as research_selectors
from webapp.research import services as research_services
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies import selectors as study_selectors
from webapp.studies import sqlreads as study_sqlreads
from webapp.studies.models import Entry, Image, Item, Study

pytestmark = pytest.mark.django_db

K = 2  # judge-only images per grid cell and variant
SEED = 100  # the protocol's sampling.seed: the evaluators' count images use 100, the judge's 101 and 102


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    return make_tiny_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture(autouse=True)
def _worker_settings(settings):
    settings.FUSION_GENERATION_CHUNK = 4
    settings.FUSION_TORCH_THREADS = 1


def make_study(checkpoints: dict[str, Path], *, judge: int = K, slug: str = "judge") -> Study:
    """2 count prompts (1 and 2 circles, one image each) and 1 caption, for 4 variants."""
    protocol = small_protocol(counts=(1, 2), objects=("circle",), captions=1)
    protocol["sampling"]["seed"] = SEED
    if judge:
        protocol["analysis"]["judge_images_per_cell"] = judge
    study = study_lifecycle.study_create(protocol=protocol, slug=slug, base_dir=str(DEMO_PROTOCOL.parent))
    for variant in study.variants.all():
        services.checkpoint_register(name=f"tiny {variant.name}", path=checkpoints[variant.name], variant=variant)
    return study


def generate(study: Study) -> Batch:
    batch = services.batch_launch(study=study, steps=2, part_size=4, open_when_complete=True)
    results = [part_runner.part_run(part_id=p.pk, claim=f"c{p.pk}", worker="test")
               for p in batch.parts.order_by("number")]
    assert set(results) == {"done"}
    batch.refresh_from_db()
    study.refresh_from_db()
    return batch


@pytest.fixture
def generated(tiny_checkpoints) -> Study:
    study = make_study(tiny_checkpoints)
    batch = generate(study)
    assert batch.status == Batch.Status.COMPLETE and study.status == Study.Status.OPEN, batch.note
    return study


def test_the_batch_makes_k_judge_only_images_per_cell_and_variant_with_seeds_after_the_evaluators(generated):
    study = generated
    count_items = Item.objects.filter(study=study, task=Item.Task.COUNT, is_gold=False, repeat_of__isnull=True)
    evaluator_seeds = set(count_items.values_list("seed", flat=True))
    assert evaluator_seeds == {SEED}
    for variant in study.variants.all():
        judged = Image.objects.filter(variant=variant, judge_only=True)
        cells = set(count_items.filter(variant=variant).values_list("prompt_id", flat=True))
        # 2 cells x K images, seeds sampling.seed + images_per_prompt + j, never an evaluator's seed
        assert sorted(judged.values_list("prompt_id", "seed")) == sorted(
            (pid, SEED + 1 + j) for pid in cells for j in range(K))
        for img in judged:
            # generated like the others: the same sampler and steps, a PNG on disk, the judge's reading
            assert img.auto_count is not None and img.steps == 2 and img.checkpoint_id == variant.checkpoint_id
            assert (Path(settings.MEDIA_ROOT) / img.file).is_file() and img.provenance["seed"] == img.seed
    assert Image.objects.filter(study=study, judge_only=True).count() == 4 * 2 * K
    assert Image.objects.filter(study=study, judge_only=False, source=Image.Source.MODEL).count() == 4 * 3
    # Nothing is left to make, and the plan said how many were for the judge.
    plan = selectors.study_plan(study=study)
    assert plan.missing == 0 and plan.judge_only == 4 * 2 * K


def test_no_evaluator_is_ever_shown_a_judge_only_image(generated):
    study = generated
    judged = set(Image.objects.filter(study=study, judge_only=True).values_list("pk", flat=True))
    assert judged
    assert not Item.objects.filter(study=study, image_id__in=judged).exists()
    research_services.study_simulate_responses(study=study, n_evaluators=4, seed=1)
    entries = Entry.objects.filter(evaluator__study=study).select_related("item", "item__image", "evaluator")
    assert entries.exists()
    shown = {img.pk for entry in entries for img in study_selectors.entry_images(entry=entry)}
    assert shown and not shown & judged
    # Nor served at any place of any evaluator's tasks.
    for entry in entries:
        for position in range(len(study_selectors.entry_images(entry=entry))):
            file = study_sqlreads.showing_image_file(evaluator_id=entry.evaluator_id, browser=entry.evaluator.browser,
                                                     index=entry.index, position=position)
            assert file is not None and file not in {img.file for img in Image.objects.filter(pk__in=judged)}


def test_the_export_has_one_judge_only_row_per_image_and_the_analysis_uses_them(generated):
    study = generated
    # People's answers, as far as the analysis can tell: a dry run's simulated evaluators.
    research_services.study_simulate_responses(study=study, n_evaluators=4, seed=1)
    text = "".join(exports.csv_chunks(study=study, include_simulated=True))
    rows = list(csv.DictReader(io.StringIO(text)))
    judge_rows = [r for r in rows if r["evaluator_id"] == ""]
    images = {img.public_id: img for img in Image.objects.filter(study=study, judge_only=True)
              .select_related("variant", "prompt")}
    assert len(judge_rows) == len(images) == 4 * 2 * K
    for r in judge_rows:
        img = images[r["image_id"]]
        assert (r["task"], r["variant"], r["prompt"], r["object"]) == (
            "count", present(img.variant).name, img.prompt.text, "circle")
        assert (int(r["true_count"]), int(r["seed"]), int(r["auto_count"])) == (img.prompt.count, img.seed,
                                                                                img.auto_count)
        assert r["answer_count"] == "" and r["item_id"].startswith("judge:")
    assert len({r["item_id"] for r in judge_rows}) == len(judge_rows)
    read_responses(io.StringIO(text, newline=""))  # evalstudy accepts them
    jsonl = "".join(exports.jsonl_chunks(study=study, salt="s", include_simulated=True))
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert sorted(r["image_id"] for r in records if r["evaluator_id"] == "") == sorted(images)

    stored = research_services.study_result_get_or_compute(study=study, n_boot=50, include_simulated=True)
    assert stored is not None
    ppi = research_selectors.study_result_analysis(result=stored).prediction_powered
    assert ppi is not None and ppi.by_variant and ppi.differences
    assert {rec.n_judge_only for rec in ppi.by_variant} == {2 * K}
    assert {rec.n_judge_only for rec in ppi.differences} == {2 * 2 * K}
    # The dashboard's and the report's prediction-powered table fills in.
    analysis = research_selectors.study_result_analysis(result=stored)
    sections = reports.result_sections(result=analysis, auto=research_selectors.auto_counter_by_variant(study=study))
    tables = {t.key: t for section in sections for t in section["tables"]}
    assert "prediction-powered" in tables and {row[5] for row in tables["prediction-powered"].rows} >= {str(2 * K)}


def test_a_study_without_the_option_gets_no_judge_only_image_or_row(tiny_checkpoints):
    study = make_study(tiny_checkpoints, judge=0, slug="nojudge")
    assert not any(selectors.study_judge_work(study=study).values())
    batch = services.batch_launch(study=study, steps=2, part_size=4)
    assert batch.total_images == 4 * 3


def test_the_generation_page_counts_the_judge_only_images_before_launch(tiny_checkpoints):
    study = make_study(tiny_checkpoints)
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    html = client.get(f"/generation/study/{study.slug}/").content.decode()
    # 3 evaluators' images + 2 cells x K judge-only ones, per variant
    assert '<th id="plan-missing">28</th>' in html
    assert f"{4 * 2 * K} are for the automatic judge only" in html


def test_a_judge_only_image_is_refused_even_where_its_prompt_and_seed_match_an_evaluators_ranking(generated):
    """The guard in the showing's rule and its statement itself: an image marked judge-only is
    never served, even if it were made at the prompt and seed of a ranking an evaluator holds."""
    study = generated
    research_services.study_simulate_responses(study=study, n_evaluators=1, seed=2)
    entry = Entry.objects.filter(evaluator__study=study, item__task=Item.Task.RANK).select_related("item").first()
    assert entry is not None
    shown = study_selectors.entry_images(entry=entry)[0]

    def orm() -> Image | None:
        return study_selectors.showing_image(evaluator=entry.evaluator, index=entry.index, position=0)

    def served() -> str | None:
        return study_sqlreads.showing_image_file(evaluator_id=entry.evaluator_id, browser=entry.evaluator.browser,
                                                 index=entry.index, position=0)

    assert orm() == shown and served() == shown.file
    Image.objects.filter(pk=shown.pk).update(judge_only=True)
    assert orm() is None and served() is None
