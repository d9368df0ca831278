"""Guards for what no other test pins down: screen order per evaluator, image access across
slots and studies, concurrent joins on PostgreSQL.

Each was checked by breaking the code it guards on purpose (positions ignored, the slot
check in ``sqlreads.showing_image_file`` dropped, the study lock in ``evaluator_consent``
dropped, the IntegrityError branch of ``evaluator_join`` turned into a raise) and watching
it fail.
"""

import threading

import pytest
from django.db import connection
from django.test import Client

from tests.factories import UserFactory, build_open_study
from tests.narrow import present
from webapp.studies.models import Entry, Evaluator, Image, Item

from .conftest import answer_data, current_task, join, shown_image

pytestmark = pytest.mark.django_db


def _run_at_once(target, n: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)


def _variant_order(urls: list[str], evaluator: Evaluator) -> list[int]:
    return [present(present(shown_image(url, evaluator)).variant).index for url in urls]


def test_every_evaluator_sees_the_ranking_images_in_their_entry_s_stored_order(study):
    """The factories give slot 0 the identity order; slots 1 and 2 are rotated, so an
    implementation that ignored the stored positions would fail for them."""
    checked = 0
    for _ in range(3):
        client = join(Client(), study)
        ev = present(Evaluator.objects.order_by("-pk").first())
        while not (state := current_task(client, study))["done"]:
            task = state["task"]
            if task["kind"] == "rank":
                entry = Entry.objects.get(evaluator=ev, index=task["number"] - 1)
                assert _variant_order(task["images"], ev) == entry.positions
                page = client.get(f"/e/{study.slug}/task/").content.decode()
                assert [page.index(url) for url in task["images"]] == sorted(page.index(url) for url in task["images"])
                checked += 1
            client.post(f"/e/{study.slug}/task/", answer_data(task))
    assert checked == 6  # two captions for each of three evaluators
    assert {tuple(p) for p in Entry.objects.filter(item__task="rank").values_list("positions", flat=True)} != {
        (0, 1, 2, 3)
    }


def test_an_image_outside_the_evaluator_s_own_slot_is_a_404(study):
    # Slot 0 leaves out one count item and one caption: its evaluator never sees their images.
    slot = study.slots.get(number=0)
    count_item = present(Item.objects.filter(study=study, task="count", is_gold=False).first())
    rank_item = present(Item.objects.filter(study=study, task="rank").first())
    slot.items = [pk for pk in slot.items if pk not in (count_item.pk, rank_item.pk)]
    slot.save()
    client = join(Client(), study)
    assert Evaluator.objects.get().slot_id == slot.pk
    hidden = [count_item.image] + list(Image.objects.filter(prompt=rank_item.prompt, seed=rank_item.seed))
    for image in hidden:
        assert image is not None
        assert client.get(f"/i/{image.public_id}").status_code == 404
    shown = current_task(client, study)["task"]["images"][0]
    assert client.get(shown).status_code == 200
    # An image of another study, even one the same browser has joined later, is not this slot's.
    other = build_open_study()
    foreign = present(Image.objects.filter(study=other).first())
    assert client.get(f"/i/{foreign.public_id}").status_code == 404
    # The study's researcher sees every image of it, and none of the other study.
    researcher = UserFactory()
    study.researchers.add(researcher)
    staff = Client()
    staff.force_login(researcher)
    assert all(staff.get(f"/i/{present(img).public_id}").status_code == 200 for img in hidden)
    assert staff.get(f"/i/{foreign.public_id}").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks across threads: PostgreSQL only")
def test_concurrent_joins_on_postgresql_never_share_a_slot(settings):
    settings.FUSION_RATE_CONSENT = "1000/m"  # twelve people behind one address, all at once
    settings.FUSION_SLOTS_PER_ADDRESS = 0  # (a lab: its places-per-address cap lifted)
    study = build_open_study(n_slots=5)
    results: list[int] = []
    barrier = threading.Barrier(12)

    def one_person():
        client = Client()
        try:
            barrier.wait()
            if client.get(f"/join/{study.invite_token}/").status_code == 302:
                results.append(client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code)
        finally:
            connection.close()

    _run_at_once(one_person, 12)
    slots = list(Evaluator.objects.filter(study=study, slot__isnull=False).values_list("slot_id", flat=True))
    assert len(slots) == len(set(slots)) == 5
    assert results.count(302) == 5 and set(results) <= {302, 403}
    for ev in Evaluator.objects.filter(study=study, slot__isnull=False):
        assert Entry.objects.filter(evaluator=ev).count() == len(present(ev.slot).items)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent transactions: PostgreSQL only")
def test_concurrent_joins_with_one_panel_id_make_one_evaluator(settings):
    """Joining takes no lock: the unique (study, external_id) constraint decides. Eight
    browsers opening one participant's link at once make one evaluator; one browser holds it
    and the others are asked to continue there (409), none gets an error."""
    settings.FUSION_RATE_JOIN = "1000/m"
    study = build_open_study(n_slots=5)
    codes: list[int] = []
    barrier = threading.Barrier(8)

    def one_browser():
        try:
            barrier.wait()
            codes.append(Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "a" * 24}).status_code)
        finally:
            connection.close()

    _run_at_once(one_browser, 8)
    assert Evaluator.objects.filter(study=study).count() == 1
    assert sorted(codes) == [302] + [409] * 7
