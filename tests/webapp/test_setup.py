"""A study from a protocol file: variants, prompts, items and gold images; opening it."""

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image as PILImage

from evalstudy.protocol import load_protocol
from generator.counter import count_objects
from tests.factories import fill_study_images
from tests.narrow import present
from webapp.studies import lifecycle
from webapp.studies.models import Image, Item, Slot, Study

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def create_demo(slug="demo", **overrides):
    protocol = json.loads(DEMO.read_text())
    protocol.update(overrides)
    return lifecycle.study_create(protocol=protocol, slug=slug, base_dir=str(DEMO.parent))


fill_images = fill_study_images


def test_study_create_plans_every_item_of_the_protocol():
    study = create_demo()
    proto = load_protocol(DEMO)
    assert study.protocol_hash == proto.content_hash()
    assert list(study.variants.values_list("name", flat=True)) == list(proto.variants)
    ct = present(proto.count_task)
    n_count = len(ct.objects) * len(ct.counts) * max(1, len(ct.colours)) * ct.images_per_prompt * len(proto.variants)
    assert Item.objects.filter(study=study, task="count", is_gold=False).count() == n_count
    n_captions = present(proto.preference_task).captions.n
    assert n_captions is not None  # the demo protocol says how many captions it draws
    n_rank = n_captions * present(proto.preference_task).images_per_caption
    assert Item.objects.filter(study=study, task="rank").count() == n_rank
    assert study.prompts.filter(kind="count", text="two red squares").get().question == "How many squares can you see?"


def test_gold_images_are_rendered_at_open_with_their_true_count_and_the_models_size(settings):
    study = create_demo()
    gold = Item.objects.filter(study=study, is_gold=True)
    assert gold.count() == 2 and not gold.filter(image__isnull=False).exists()
    fill_images(study)
    lifecycle.study_open(study=study)
    model_size = present(Image.objects.filter(study=study, source="model").first()).width
    for item in gold:
        with PILImage.open(Path(settings.MEDIA_ROOT) / present(item.image).file) as img:
            assert img.size == (model_size, model_size)
            assert count_objects(img.convert("RGB")) == item.true_count


def test_gold_the_renderer_cannot_draw_is_refused():
    protocol = json.loads(DEMO.read_text())
    protocol["count_task"]["objects"].append({"name": "bus", "singular": "bus", "plural": "buses", "article": "a"})
    protocol["quality_control"]["gold"].append({"id": "g9", "object": "bus", "count": 2, "colour": "red"})
    with pytest.raises(lifecycle.StudySetupError, match="cannot draw"):
        lifecycle.study_create(protocol=protocol, slug="bus", base_dir=str(DEMO.parent))
    assert Study.objects.count() == 0


def test_invalid_protocol_stores_nothing():
    with pytest.raises(lifecycle.StudySetupError, match="Invalid protocol"):
        create_demo(variants=[])
    assert Study.objects.count() == 0 and Image.objects.count() == 0


def test_a_protocol_document_with_a_renamed_field_is_refused_by_name_and_stores_nothing():
    protocol = json.loads(DEMO.read_text())
    protocol["models"] = protocol.pop("variants")
    with pytest.raises(lifecycle.StudySetupError, match="Invalid protocol: .*variants") as err:
        lifecycle.study_create(protocol=protocol, slug="renamed", base_dir=str(DEMO.parent))
    assert "models" in str(err.value)
    assert Study.objects.count() == 0


def test_a_protocol_object_makes_the_study_its_document_makes():
    made = lifecycle.study_create(protocol=load_protocol(DEMO), slug="typed", base_dir=str(DEMO.parent))
    assert made.protocol_hash == load_protocol(DEMO).content_hash()
    assert made.protocol == load_protocol(DEMO).to_dict() and made.items.count() > 0


def test_duplicate_slug_is_refused():
    create_demo()
    with pytest.raises(lifecycle.StudySetupError, match="exists"):
        create_demo()
    assert Study.objects.count() == 1


def test_open_needs_every_image():
    study = create_demo()
    with pytest.raises(lifecycle.StudySetupError, match="missing"):
        lifecycle.study_open(study=study)
    study.refresh_from_db()
    assert study.status == "draft" and Slot.objects.count() == 0


def test_open_plans_slots_with_overlap_gold_and_repeats():
    study = create_demo()
    fill_images(study)
    lifecycle.study_open(study=study)
    study.refresh_from_db()
    proto = load_protocol(DEMO)
    assert study.status == "open"
    slots = list(Slot.objects.filter(study=study))
    assert len(slots) == proto.evaluators.n
    seen: Counter = Counter()
    items = {it.pk: it for it in Item.objects.filter(study=study)}
    for slot in slots:
        assert len(set(slot.items)) == len(slot.items)  # a repeat is its own item
        for pk in slot.items:
            it = items[pk]
            seen[it.repeat_of_id or pk] += 1
            if it.task == "rank":
                assert sorted(slot.positions[str(pk)]) == [0, 1, 2, 3]
    for pk, it in items.items():
        if it.repeat_of_id is None and not it.is_gold:
            assert seen[pk] >= proto.evaluators.overlap
        if it.is_gold:
            assert seen[pk] >= len(slots)
    assert Item.objects.filter(study=study, repeat_of__isnull=False).exists()


def test_create_study_command_refuses_a_bad_file(tmp_path):
    from django.core.management import CommandError, call_command

    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("create_study", str(bad), slug="x")
    bad.write_text("[" * 200_000)  # deeper than Python's JSON parser recurses
    with pytest.raises(CommandError, match="not valid JSON: nested too deeply"):
        call_command("create_study", str(bad), slug="x")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("create_study", str(tmp_path / "missing.json"), slug="x")
    assert Study.objects.count() == 0


def test_create_and_open_commands(capsys):
    from django.core.management import CommandError, call_command

    call_command("create_study", str(DEMO), slug="cmd")
    with pytest.raises(CommandError, match="missing"):
        call_command("study_status", "cmd", "--open")
    study = Study.objects.get(slug="cmd")
    fill_images(study)
    call_command("study_status", "cmd", "--open")
    assert Study.objects.get(slug="cmd").status == "open"


def test_create_study_makes_a_missing_researcher_account_without_a_password(capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("create_study", str(DEMO), "--slug", "cli", "--researcher", "alice")
    alice = get_user_model().objects.get(username="alice")
    assert not alice.has_usable_password()
    assert list(Study.objects.get(slug="cli").researchers.all()) == [alice]
    assert "changepassword alice" in capsys.readouterr().out


def test_create_study_with_a_bad_protocol_creates_no_account(tmp_path):
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(DEMO.read_text()), "variants": ["only-one"]}))
    with pytest.raises(CommandError, match="variants"):
        call_command("create_study", str(bad), "--slug", "cli", "--researcher", "bob")
    assert not get_user_model().objects.filter(username="bob").exists()
