"""Per-showing image addresses (webapp/studies/imagealias.py): a repeat and a gold image have
an address of their own at every showing, nobody can make one, and only its evaluator's
browser is served by it."""

import re

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.narrow import present
from webapp.studies import imagealias
from webapp.studies.models import Entry, Evaluator, Image, Item, Slot

from .conftest import answer_data, current_task, join, shown_image

pytestmark = pytest.mark.django_db


def _with_repeats(study) -> tuple[Item, Item]:
    """A count item and a ranking shown twice to every slot (as evalstudy.design plans a
    consistency check: a second item with ``repeat_of``, the same image, last in the slot)."""
    count = present(Item.objects.filter(study=study, task="count", is_gold=False).first())
    rank = present(Item.objects.filter(study=study, task="rank").first())
    repeats = [Item.objects.create(study=study, key=f"{it.key}#repeat", task=it.task, prompt=it.prompt, seed=it.seed,
                                   variant=it.variant, image=it.image, true_count=it.true_count, repeat_of=it)
               for it in (count, rank)]
    for slot in Slot.objects.filter(study=study):
        slot.items = slot.items + [it.pk for it in repeats]
        slot.positions = {**slot.positions, str(repeats[1].pk): slot.positions[str(rank.pk)]}  # the same order
        slot.save()
    return count, rank


def _walk(client, study) -> list[tuple[int, list[str], str]]:
    """Every task of the evaluator, answered: (index, the JSON's image addresses, the page's HTML)."""
    seen = []
    while not (state := current_task(client, study))["done"]:
        task = state["task"]
        page = client.get(f"/e/{study.slug}/task/").content.decode()
        seen.append((task["number"] - 1, task["images"], page))
        client.post(f"/e/{study.slug}/task/", answer_data(task))
    return seen


def test_no_two_showings_share_an_address_repeats_and_gold_included(study):
    count, rank = _with_repeats(study)
    gold = present(Item.objects.filter(study=study, is_gold=True).first())
    clients = [join(Client(), study), join(Client(), study)]
    evaluators = list(Evaluator.objects.order_by("pk"))
    addresses: list[str] = []
    images_of: dict[str, list[int]] = {}
    for client, ev in zip(clients, evaluators, strict=True):
        for index, urls, page in _walk(client, study):
            # The page and the task script's JSON name the images alike; the page no other.
            assert re.findall(r'src="(/i/[^"]+)"', page) == urls
            for url in urls:
                image = present(shown_image(url, ev))
                images_of.setdefault(image.public_id, []).append(index)
                assert image.public_id not in url and client.get(url).status_code == 200
            addresses += urls
    # The repeated and the gold images were shown more than once, each time under a new address.
    for item in (count, gold):
        assert len(images_of[present(item.image).public_id]) >= 2
    rank_image = Image.objects.filter(prompt=rank.prompt, seed=rank.seed, source="model").first()
    assert len(images_of[present(rank_image).public_id]) == 4  # a ranking and its repeat, two evaluators
    assert len(addresses) == len(set(addresses)) == sum(len(v) for v in images_of.values())


def test_an_address_serves_only_its_evaluators_browser_and_cannot_be_made(study, settings):
    alice, bob = join(Client(), study), join(Client(), study)
    first, second = Evaluator.objects.order_by("pk")
    url = current_task(alice, study)["task"]["images"][0]
    image = present(shown_image(url, first))
    assert alice.get(url).status_code == 200
    assert bob.get(url).status_code == 404 and Client().get(url).status_code == 404
    # Bob's own address for the same place differs, and the image's public id serves neither.
    index = current_task(alice, study)["task"]["number"] - 1
    assert imagealias.image_alias(evaluator_id=second.pk, index=index, position=0) != url.rsplit("/", 1)[1]
    assert alice.get(f"/i/{image.public_id}").status_code == 404
    # Another place under the same tag, a changed tag, or garbage: nothing.
    alias = url.rsplit("/", 1)[1]
    raw = bytearray(imagealias.base64.urlsafe_b64decode(alias))
    for k in (3, 4, 20):  # the index's last byte, the position, the tag
        forged = bytearray(raw)
        forged[k] ^= 1
        assert alice.get(f"/i/{imagealias.base64.urlsafe_b64encode(bytes(forged)).decode()}").status_code == 404
    assert alice.get("/i/" + "A" * imagealias.ALIAS_LENGTH).status_code == 404
    assert alice.get("/i/" + alias[:-1] + "*").status_code == 404
    # A new key: the old addresses serve while the old key is a fallback, then no more.
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "another secret key " * 3, [old]
    assert alice.get(url).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert alice.get(url).status_code == 404


def test_the_address_says_nothing_of_the_image(study):
    """Two evaluators at the same place of their tasks get different addresses for the same
    image; one evaluator's address names its place, never the image or its variant."""
    join(Client(), study)
    ev = Evaluator.objects.get()
    for entry in Entry.objects.filter(evaluator=ev).select_related("item", "item__image"):
        alias = imagealias.image_alias(evaluator_id=ev.pk, index=entry.index, position=0)
        assert len(alias) == imagealias.ALIAS_LENGTH
        showing = present(imagealias.showing_from_alias(alias, evaluator_ids=[ev.pk + 1, ev.pk]))
        assert (showing.evaluator_id, showing.index, showing.position) == (ev.pk, entry.index, 0)
        # In the clear: the place (what the evaluator sees: task n, the k-th image); the rest
        # is the tag, which depends on the evaluator and the place only.
        raw = imagealias.base64.urlsafe_b64decode(alias)
        assert raw[:5] == entry.index.to_bytes(4, "big") + b"\x00"
        assert all(img.public_id.encode() not in raw for img in Image.objects.filter(study=study))


def test_researchers_still_see_images_by_public_id(study):
    image = present(Image.objects.filter(study=study).first())
    researcher = UserFactory()
    staff = Client()
    staff.force_login(researcher)
    assert staff.get(f"/i/{image.public_id}").status_code == 404
    study.researchers.add(researcher)
    assert staff.get(f"/i/{image.public_id}").status_code == 200
