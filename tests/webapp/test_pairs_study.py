"""A pairs study (preference_task.design "pairs") of 8 variants, end to end through the web
app: opened with an image of every variant per caption, each rank task an A/B page of two of
them, blind; answered by several evaluators; exported; analysed; its dashboard and report."""

import csv
import io
import json
import re
from collections import Counter
from itertools import combinations

import pytest
from django.test import Client

from evalstudy.analysis import analyze
from evalstudy.responses import read_responses
from tests.factories import fill_study_images
from tests.webapp.research_support import fill_study, researcher_of, update_results
from webapp.research import exports, services
from webapp.studies import flow, joining, lifecycle
from webapp.studies.models import Entry, Image, Item, RankResponse, Slot

from .conftest import current_task, join

pytestmark = pytest.mark.django_db

NAMES = tuple(f"model-{k}" for k in "abcdefgh")
CAPTIONS = ("a red circle", "two blue squares", "a green triangle", "three yellow circles", "a cat", "a dog")


def pairs_protocol(*, evaluators: int = 6, overlap: int = 3, allow_ties: bool = True) -> dict:
    task: dict = {"captions": list(CAPTIONS), "design": "pairs"}
    if allow_ties:
        task["allow_ties"] = True
    return {
        "name": "eight models", "variants": list(NAMES),
        "sampling": {"cfg_scale": 1.0, "steps": 2, "sampler": "dpm_solver", "seed": 0},
        "preference_task": task, "quality_control": {"repeats": 1},
        "evaluators": {"n": evaluators, "overlap": overlap},
        "analysis": {"comparisons": [[NAMES[7], NAMES[0]]], "n_boot": 200},
    }


def open_pairs_study(slug: str = "pairs8", **kwargs):
    study = lifecycle.study_create(protocol=pairs_protocol(**kwargs), slug=slug)
    fill_study_images(study)
    return lifecycle.study_open(study=study)


def test_opening_needs_an_image_of_every_variant_for_every_caption():
    study = lifecycle.study_create(protocol=pairs_protocol(), slug="missing")
    fill_study_images(study)
    Image.objects.filter(study=study, variant__name=NAMES[5]).first().delete()  # type: ignore[union-attr]
    with pytest.raises(lifecycle.StudySetupError, match="1 images are still missing"):
        lifecycle.study_open(study=study)


def test_the_slots_show_two_variants_per_rank_task_balanced_over_the_study():
    study = open_pairs_study()
    shown = []
    for slot in Slot.objects.filter(study=study):
        for item_pk, pos in slot.positions.items():
            assert len(pos) == 2 and pos[0] != pos[1] and set(pos) <= set(range(8))
            item = Item.objects.get(pk=int(item_pk))
            if item.repeat_of_id is not None:  # the repeat: the same pair, sides swapped
                assert slot.positions[str(item.repeat_of_id)] == pos[::-1]
            else:
                shown.append(frozenset(pos))
    assert len(shown) == len(CAPTIONS) * 3  # every caption to 3 evaluators
    by_variant = Counter(v for p in shown for v in p)
    assert max(by_variant.values()) - min(by_variant.values()) <= 1
    by_pair = Counter(shown)
    assert max(by_pair.values()) <= 1  # 18 showings of 28 pairs: none twice


def test_the_ab_page_shows_the_two_images_of_the_entry_and_names_no_model():
    study = open_pairs_study(slug="blind")
    client = join(Client(), study)
    task = current_task(client, study)["task"]
    while task["kind"] != "rank":
        answer = {"kind": "count", "token": task["token"], "count": "2"}
        client.post(f"/e/{study.slug}/task/", answer, HTTP_ACCEPT="application/json")
        task = current_task(client, study)["task"]
    assert len(task["images"]) == 2
    page = client.get(f"/e/{study.slug}/task/").content.decode()
    assert 'id="pair-form"' in page and page.count('class="tile"') == 2 and 'value="same"' in page
    text = page + json.dumps(task)
    for name in NAMES:
        assert name not in text
    for img in Image.objects.filter(study=study):  # no stored file name, which the variant's rows know
        assert img.file not in text and img.file.rsplit("/", 1)[-1] not in text


def test_answers_are_stored_at_width_two_and_a_wider_ranking_is_refused():
    study = open_pairs_study(slug="width")
    evaluator = joining.evaluator_join(study=study)
    joining.evaluator_start(evaluator=joining.evaluator_consent(evaluator=evaluator))
    entry = Entry.objects.filter(evaluator=evaluator, item__task="rank").order_by("index").first()
    assert entry is not None and len(entry.positions) == 2
    token = flow.entry_token_make(entry=flow.entry_mark_shown(entry=entry))
    with pytest.raises(flow.SubmissionError) as err:
        flow.rank_response_submit(evaluator=evaluator, token=token, ranks=[1, 2, 3])
    assert err.value.code == "wrong_width" and not RankResponse.objects.exists()
    flow.rank_response_submit(evaluator=evaluator, token=token, ranks=[2, 1])
    resp = RankResponse.objects.get()
    variants = sorted(study.variants.all(), key=lambda v: v.index)
    assert resp.width == 2 and resp.ranks == [2, 1]
    assert [resp.image_0.variant, resp.image_1.variant] == [variants[v] for v in entry.positions]


def test_answered_exported_and_analysed_as_a_pairs_study(tmp_path, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    study = open_pairs_study(slug="flow")
    fill_study(study, 6)
    rows = list(csv.DictReader(io.StringIO("".join(exports.csv_chunks(study=study)))))
    rank_rows = [r for r in rows if r["task"] == "rank"]
    per_ranking = Counter((r["evaluator_id"], r["item_id"]) for r in rank_rows)
    assert set(per_ranking.values()) == {2}  # a pair ranking is two rows
    assert {r["position"] for r in rank_rows} == {"0", "1"}
    # Every RankResponse is one pair of variants; the export names them as the images did.
    for resp in RankResponse.objects.select_related("image_0__variant", "image_1__variant"):
        assert resp.width == 2 and resp.image_0.variant != resp.image_1.variant
    path = tmp_path / "responses.csv"
    path.write_text("".join(exports.csv_chunks(study=study)), encoding="utf-8")
    proto = study.parsed_protocol
    assert proto is not None and proto.is_pairs
    table = read_responses(path, variants=proto.variants, allow_ties=True)
    result = analyze(table, proto, n_boot=100)
    pref = result.preference
    assert pref.design == "pairs" and pref.m == 2 and pref.n_rankings == len(per_ranking) - sum(
        1 for (e, i) in per_ranking if i.endswith("#repeat"))
    assert {p.variant for p in pref.by_variant} <= set(NAMES) and pref.pairs
    assert all(p.a in NAMES and p.b in NAMES for p in pref.pairs)
    assert [t.measure for t in result.tests.paired] == ["win_margin"]
    # The same numbers through the web app's own analysis (the export's table).
    stored = services.study_result_get_or_compute(study=study, n_boot=100, seed=0)
    assert stored is not None and stored.result["preference"]["design"] == "pairs"


def test_the_dashboard_report_figures_and_progress_render_a_pairs_study(settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    study = open_pairs_study(slug="dash")
    fill_study(study, 6)
    client = Client()
    client.force_login(researcher_of(study))
    assert update_results(client, study).status_code in (200, 302)
    for url in (f"/research/{study.slug}/", f"/research/{study.slug}/report/", f"/research/{study.slug}/report.md",
                f"/research/{study.slug}/results.json", f"/research/{study.slug}/progress.json"):
        r = client.get(url)
        assert r.status_code == 200, url
    report = client.get(f"/research/{study.slug}/report/").content.decode()
    assert "pairs design" in report and "Position bias (sides swapped within each pair)" in report
    assert NAMES[0] in report and NAMES[7] in report
    names = set(re.findall(r"/figures/([a-z-]+)\.(?:png|svg)", client.get(f"/research/{study.slug}/").content.decode()))
    assert {"preference", "pairwise-wins"} <= names


def test_a_preview_of_a_pairs_study_shows_the_ab_page():
    from tests.factories import UserFactory

    study = open_pairs_study(slug="preview")
    user = UserFactory(username="res")
    study.researchers.add(user)
    client = Client()
    client.force_login(user)
    assert client.post(f"/run/{study.slug}/preview/").status_code == 302
    page = client.get(f"/run/{study.slug}/preview/task/").content.decode()
    assert 'id="pair-form"' in page and page.count('class="tile"') == 2


def test_every_pair_is_shown_across_a_larger_study():
    study = open_pairs_study(slug="cover", evaluators=14, overlap=14)
    shown = {frozenset(p) for slot in Slot.objects.filter(study=study) for p in slot.positions.values()}
    assert shown == {frozenset(p) for p in combinations(range(8), 2)}
