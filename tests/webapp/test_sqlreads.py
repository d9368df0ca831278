"""webapp/studies/sqlreads.py reads what the ORM read: the same rows, the same values.

The hand-written statements replace ORM querysets on the evaluator path; each test reads
the same thing both ways, at every step of an evaluator's way, and compares every field of
every instance (JSON, datetimes and booleans pass through the backend's converters).
"""
import pytest
from django.db.models import Count, Q
from django.test import Client

from tests.factories import build_open_study, make_image
from tests.narrow import present
from webapp.studies import places, selectors, sqlreads
from webapp.studies.models import Entry, Evaluator, Image, Item, Study

from .conftest import answer_data, current_task, join

pytestmark = pytest.mark.django_db


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _orm_next(evaluator: Evaluator) -> Entry | None:
    return (Entry.objects.filter(evaluator=evaluator, count_response__isnull=True, rank_response__isnull=True)
            .select_related("item__prompt", "item__image").order_by("index").first())


def _orm_progress(evaluator: Evaluator) -> tuple[int, int]:
    counts = Entry.objects.filter(evaluator=evaluator).aggregate(
        total=Count("id"),
        answered=Count("id", filter=Q(count_response__isnull=False) | Q(rank_response__isnull=False)),
    )
    return counts["answered"], counts["total"]


def _same(raw: Entry | None, orm: Entry | None) -> None:
    assert (raw is None) == (orm is None)
    if raw is None or orm is None:
        return
    assert _values(raw) == _values(orm)
    assert _values(raw.item) == _values(orm.item)
    assert _values(raw.item.prompt) == _values(orm.item.prompt)
    assert (raw.item.image is None) == (orm.item.image is None)
    if orm.item.image is not None:
        assert _values(raw.item.image) == _values(orm.item.image)


def test_the_next_entry_and_progress_match_the_orm_at_every_step(study, django_assert_num_queries):
    client = join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    steps = 0
    while True:
        found = sqlreads.next_entry(evaluator_id=evaluator.pk)
        orm = _orm_next(evaluator)
        _same(found.entry if found else None, orm)
        if found is None:
            break
        assert (found.answered, found.total) == _orm_progress(evaluator)
        # one statement, the item, prompt and image already there (no lazy query after it)
        with django_assert_num_queries(1):
            entry = selectors.evaluator_next_entry(evaluator=evaluator)
            assert entry is not None
            _ = (entry.item.prompt.text, entry.item.image, entry.positions, entry.shown_at)
        task = current_task(client, study)["task"]  # marks it shown: shown_at is a datetime now
        assert client.post(f"/e/{study.slug}/task/", answer_data(task)).status_code == 302
        steps += 1
    assert steps == Entry.objects.filter(evaluator=evaluator).count() > 4
    # done: the progress comes from the aggregate, all answered
    assert selectors.evaluator_next_and_progress(evaluator=evaluator)[1] == selectors.Progress(steps, steps)


def test_an_item_without_an_image_reads_as_none(study):
    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    entry = present(Entry.objects.filter(evaluator=evaluator, item__task="rank").order_by("index").first())
    Entry.objects.filter(evaluator=evaluator, index__lt=entry.index).delete()  # the ranking comes first
    found = sqlreads.next_entry(evaluator_id=evaluator.pk)
    assert found is not None and found.entry.pk == entry.pk and found.entry.item.image is None
    _same(found.entry, _orm_next(evaluator))


def test_the_evaluator_with_its_study_matches_the_orm(study):
    join(Client(), study)
    other = Study.objects.create(slug="other", title="Other", status=Study.Status.OPEN, protocol={})
    evaluator = Evaluator.objects.get(study=study)
    ids = [evaluator.pk, evaluator.pk + 1000]
    raw = sqlreads.evaluator_with_study(evaluator_ids=ids, slug=study.slug)
    orm = Evaluator.objects.select_related("study").get(pk=evaluator.pk)
    assert raw is not None and _values(raw) == _values(orm) and _values(raw.study) == _values(orm.study)
    assert sqlreads.evaluator_with_study(evaluator_ids=ids, slug=other.slug) is None  # not in that study
    assert sqlreads.evaluator_with_study(evaluator_ids=[], slug=study.slug) is None


def test_an_entry_with_its_item_matches_the_orm_and_only_for_its_evaluator(study):
    join(Client(), study)
    join(Client(), study)
    first, second = Evaluator.objects.filter(study=study).order_by("pk")
    for entry in Entry.objects.filter(evaluator=first):
        raw = sqlreads.entry_with_item(index=entry.index, evaluator_id=first.pk)
        orm = Entry.objects.select_related("item").get(pk=entry.pk)
        assert raw is not None and _values(raw) == _values(orm) and _values(raw.item) == _values(orm.item)
        theirs = sqlreads.entry_with_item(index=entry.index, evaluator_id=second.pk)  # the same place, another's
        assert theirs is not None and theirs.evaluator_id == second.pk and theirs.pk != entry.pk
    last = Entry.objects.filter(evaluator=first).order_by("-index").first()
    assert last is not None and sqlreads.entry_with_item(index=last.index + 1, evaluator_id=first.pk) is None


def test_set_times_writes_a_timestamp_once_and_it_reads_back_as_the_orm_wrote_it(study):
    from datetime import timedelta

    from django.utils import timezone

    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    entry = present(Entry.objects.filter(evaluator=evaluator, shown_at__isnull=True).first())
    first = timezone.now().replace(microsecond=123456)
    assert sqlreads.set_times(Entry, entry.pk, {"shown_at": first}, unless_set="shown_at") == 1
    assert sqlreads.set_times(Entry, entry.pk, {"shown_at": first + timedelta(minutes=5)}, unless_set="shown_at") == 0
    entry.refresh_from_db()
    assert entry.shown_at == first  # the first showing stays: time on task is not restarted
    assert Entry.objects.filter(pk=entry.pk, shown_at=first).exists()  # the ORM compares it as equal
    later = first + timedelta(hours=1)
    assert sqlreads.set_times(Evaluator, evaluator.pk, {"last_seen_at": later, "finished_at": later}) == 1
    evaluator.refresh_from_db()
    assert evaluator.last_seen_at == later and evaluator.finished_at == later


def _orm_slots_held(study: Study, active_since) -> tuple[int, int]:
    from webapp.studies.models import Slot

    held = (Evaluator.objects.filter(study=study, abandoned_at__isnull=True, slot__isnull=False)
            .exclude(finished_at__isnull=True, last_seen_at__lt=active_since)
            .values("slot_id").distinct().count())
    return held, Slot.objects.filter(study=study).count()


def test_slots_held_counts_as_the_orm_did_in_every_state_of_an_evaluator(study):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.studies.models import Slot

    now = timezone.now()
    since = now - timedelta(minutes=30)
    slots = list(Slot.objects.filter(study=study).order_by("number"))
    assert sqlreads.slots_held_and_total(study_id=study.pk, active_since=since) == (0, len(slots)) == (0, 3)
    # active; silent but finished; never seen (NULL: not silent); then one silent and unfinished
    states: list[dict[str, object]] = [
        {"last_seen_at": now}, {"last_seen_at": now - timedelta(hours=2), "finished_at": now}, {"last_seen_at": None}]
    for k, (slot, fields) in enumerate(zip(slots, states, strict=True)):
        Evaluator.objects.create(study=study, slot=slot, external_id=f"w{k}", browser=f"b{k}", **fields)
        got = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
        assert got == _orm_slots_held(study, since) == (k + 1, 3), (k, got)
    Evaluator.objects.filter(external_id="w0").update(last_seen_at=now - timedelta(hours=1))  # silent: gone
    held = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
    assert held == _orm_slots_held(study, since) == (2, 3)
    Evaluator.objects.filter(external_id="w1").update(abandoned_at=now)  # abandoned: the slot is free
    held = sqlreads.slots_held_and_total(study_id=study.pk, active_since=since)
    assert held == _orm_slots_held(study, since) == (1, 3)


# --------------------------------------------------------------------------- the arrival


def _orm_free_slot(study: Study):
    from webapp.studies.models import Slot

    held = Evaluator.objects.filter(study=study, abandoned_at__isnull=True, slot__isnull=False).values_list("slot_id")
    return Slot.objects.filter(study=study).exclude(pk__in=held).order_by("number").first()


def test_the_free_slot_is_the_orms_as_evaluators_take_and_give_back_slots(study):
    from django.utils import timezone

    from webapp.studies.models import Slot

    other = build_open_study(slug="other-free")  # its evaluators hold its own slots, not these
    Evaluator.objects.create(study=other, slot=Slot.objects.filter(study=other).order_by("number").first(),
                             external_id="x", browser="x")
    slots = list(Slot.objects.filter(study=study).order_by("number"))
    for k, slot in enumerate(slots):
        raw = sqlreads.free_slot(study_id=study.pk)
        assert raw is not None and raw.pk == slot.pk and _values(raw) == _values(_orm_free_slot(study))
        Evaluator.objects.create(study=study, slot=slot, external_id=f"w{k}", browser=f"b{k}")
    assert sqlreads.free_slot(study_id=study.pk) is None and _orm_free_slot(study) is None  # full
    Evaluator.objects.filter(external_id="w1").update(abandoned_at=timezone.now())  # gave the second back
    raw = sqlreads.free_slot(study_id=study.pk)
    assert raw is not None and raw.pk == slots[1].pk == _orm_free_slot(study).pk


def test_a_row_by_its_fields_matches_the_orm_and_is_none_when_absent(study):
    join(Client(), study, PROLIFIC_PID="a" * 24)
    evaluator = Evaluator.objects.get(study=study)
    assert _values(sqlreads.row(Study, pk=study.pk)) == _values(Study.objects.get(pk=study.pk))
    assert _values(sqlreads.row(Study, invite_token=study.invite_token)) == _values(study)
    found = sqlreads.row(Evaluator, study=study.pk, external_id="a" * 24)
    assert found is not None and _values(found) == _values(evaluator)
    assert present(sqlreads.row(Evaluator, pk=evaluator.pk, for_update=True)).pk == evaluator.pk
    assert sqlreads.row(Evaluator, study=study.pk, external_id="b" * 24) is None
    assert sqlreads.row(Study, invite_token="nothing") is None


def test_the_place_holder_is_the_orms_unreleased_evaluator_of_the_id(study):
    join(Client(), study, PROLIFIC_PID="a" * 24)
    first = Evaluator.objects.get(study=study)
    assert _values(present(sqlreads.place_holder(study_id=study.pk, external_id="a" * 24))) == _values(first)
    places.evaluator_release(evaluator=first)
    assert sqlreads.place_holder(study_id=study.pk, external_id="a" * 24) is None  # released: not a holder
    join(Client(), study, PROLIFIC_PID="a" * 24)
    second = Evaluator.objects.get(study=study, released_at__isnull=True)
    assert second.pk != first.pk
    assert _values(present(sqlreads.place_holder(study_id=study.pk, external_id="a" * 24))) == _values(second)
    assert sqlreads.place_holder(study_id=study.pk, external_id="b" * 24) is None


def test_entry_tasks_and_finished_people_count_as_the_orm(study):
    from django.utils import timezone

    assert sqlreads.entry_tasks(evaluator_id=0) == {}
    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    orm = dict(Entry.objects.filter(evaluator=evaluator).values_list("item__task").annotate(n=Count("id")))
    assert sqlreads.entry_tasks(evaluator_id=evaluator.pk) == orm and set(orm) == {"count", "rank"}
    finished = Evaluator.objects.filter(study=study, finished_at__isnull=False, is_simulated=False)
    assert sqlreads.finished_people(study_id=study.pk) == finished.count() == 0
    Evaluator.objects.filter(pk=evaluator.pk).update(finished_at=timezone.now())
    Evaluator.objects.create(study=study, external_id="sim", browser="s", is_simulated=True, finished_at=timezone.now())
    assert sqlreads.finished_people(study_id=study.pk) == finished.count() == 1  # the simulated one is not a person


def test_inserted_entries_read_back_as_bulk_create_wrote_them(study, monkeypatch):
    from webapp.studies.models import Slot

    slot = present(Slot.objects.filter(study=study).order_by("number").first())
    rows = [(i, item_id, slot.positions.get(str(item_id), [])) for i, item_id in enumerate(slot.items)]
    assert any(order for _, _, order in rows) and any(not order for _, _, order in rows)  # rankings and counts
    a = Evaluator.objects.create(study=study, external_id="a", browser="a")
    b = Evaluator.objects.create(study=study, external_id="b", browser="b")
    monkeypatch.setattr(sqlreads, "ENTRY_ROWS_PER_INSERT", 3)  # several statements, the last one short
    sqlreads.insert_entries(evaluator_id=a.pk, rows=rows)
    Entry.objects.bulk_create([Entry(evaluator=b, index=i, item_id=item, positions=p) for i, item, p in rows])
    fields = ("index", "item_id", "positions", "shown_at")
    got = list(Entry.objects.filter(evaluator=a).order_by("index").values_list(*fields))
    assert got == list(Entry.objects.filter(evaluator=b).order_by("index").values_list(*fields))
    assert len(got) == len(rows) > 3


def test_the_model_image_width_is_the_orms_first_sized_model_image(study):
    from webapp.studies.models import Image

    def orm():
        sample = (Image.objects.filter(study=study, source=Image.Source.MODEL, judge_only=False)
                  .exclude(width=0).first())
        return sample.width if sample is not None else None

    models = Image.objects.filter(study=study, source=Image.Source.MODEL).order_by("id")
    first = models.first()
    assert first is not None and first.width > 0
    Image.objects.filter(pk=first.pk).update(width=0)  # not sized yet: the next one counts
    Image.objects.filter(pk=models[1].pk).update(width=77)
    assert sqlreads.model_image_width(study_id=study.pk) == orm() == 77
    models.update(width=0)
    assert sqlreads.model_image_width(study_id=study.pk) is None and orm() is None


def test_a_showings_image_file_is_the_one_the_orm_names(study):
    """showing_image_file agrees with selectors.showing_image (less what selectors._holds
    refuses) at every place of every evaluator's tasks and a few past them, on two studies:
    evaluators of different slots (one leaves out a count item and a caption), a gold image,
    a judge-only one, a gold image drawn at a ranking's caption and seed, a session whose
    token was replaced by another browser's, one with no token, an evaluator without one."""
    slot = study.slots.get(number=0)
    count_item = present(Item.objects.filter(study=study, task="count", is_gold=False).first())
    rank_item = present(Item.objects.filter(study=study, task="rank").first())
    slot.items = [pk for pk in slot.items if pk not in (count_item.pk, rank_item.pk)]
    slot.save()
    join(Client(), study)
    join(Client(), study)
    other = build_open_study()
    join(Client(), other)
    first, second, _ = Evaluator.objects.order_by("pk")
    assert first.slot is not None and first.slot.number == 0
    Evaluator.objects.filter(pk=second.pk).update(browser="")  # held by whoever knows it
    judged = present(Item.objects.filter(study=study, task="count", is_gold=False, pk__in=first.slot.items)
                     .exclude(pk=count_item.pk).first())
    Image.objects.filter(pk=present(judged.image).pk).update(judge_only=True)
    assert Image.objects.filter(source=Image.Source.GOLD, study=study).exists()
    # A gold image drawn at a ranking's caption and seed belongs to no ranking.
    shown_rank = present(Item.objects.filter(study=study, task="rank").exclude(pk=rank_item.pk).first())
    make_image(study=study, prompt=shown_rank.prompt, seed=shown_rank.seed, true_count=3)
    seen = {True: 0, False: 0}
    for ev in Evaluator.objects.all():
        for index in range(ev.entries.count() + 2):
            for position in range(6):
                image = selectors.showing_image(evaluator=ev, index=index, position=position)
                for token in (ev.browser, "another-browser", None):
                    holds = ev.browser == "" or token == ev.browser
                    file = sqlreads.showing_image_file(evaluator_id=ev.pk, browser=token, index=index,
                                                       position=position)
                    assert file == (image.file if image is not None and holds else None), (ev.pk, index, position)
                    seen[file is not None] += 1
    assert seen[True] and seen[False]
    # The judge-only image is at its place in the first evaluator's tasks, and nobody's.
    at = Entry.objects.get(evaluator=first, item=judged).index
    assert selectors.showing_image(evaluator=first, index=at, position=0) is None


def test_a_rankings_images_match_the_orm_with_their_variants(study):
    """Every ranking item's images by variant index, each with its variant loaded; a gold
    image of the same prompt and seed, and an image only the judge reads, are not among them."""

    def orm(item: Item) -> dict[int, Image]:
        images = Image.objects.filter(study_id=item.study_id, prompt_id=item.prompt_id, seed=item.seed,
                                      source=Image.Source.MODEL, judge_only=False).select_related("variant")
        return {present(img.variant).index: img for img in images}

    items = list(Item.objects.filter(study=study, task="rank"))
    assert len(items) == 2
    first = items[0]
    make_image(study=study, prompt=first.prompt, seed=first.seed, true_count=3)  # gold: no variant
    hidden = Image.objects.filter(prompt=first.prompt, seed=first.seed, variant__index=2).get()
    Image.objects.filter(pk=hidden.pk).update(judge_only=True)
    for item in items:
        raw, expected = sqlreads.rank_images(item=item), orm(item)
        assert sorted(raw) == sorted(expected) == ([0, 1, 3] if item == first else [0, 1, 2, 3])
        for index, image in raw.items():
            assert _values(image) == _values(expected[index])
            assert _values(present(image.variant)) == _values(present(expected[index].variant))


def test_mark_shown_writes_once_and_only_for_the_next_task(study):
    """A task is marked shown once, and only while every earlier task is answered: a request
    that read the next task before an undo took the evaluator back writes nothing."""
    from django.utils import timezone

    join(Client(), study)
    evaluator = Evaluator.objects.get(study=study)
    first, second = Entry.objects.filter(evaluator=evaluator).order_by("index")[:2]
    now = timezone.now().replace(microsecond=654321)
    assert sqlreads.mark_shown(entry_id=second.pk, at=now) == 0  # the first task is unanswered
    assert sqlreads.mark_shown(entry_id=first.pk, at=now) == 1
    assert sqlreads.mark_shown(entry_id=first.pk, at=timezone.now()) == 0  # shown already: kept
    assert Entry.objects.get(pk=first.pk).shown_at == now
    assert Entry.objects.get(pk=second.pk).shown_at is None
