"""Rankings of any width (2 to 6 variants) and ties, from the protocol to the database.

The width is the protocol's number of variants; ties are the protocol's
``preference_task.allow_ties``. A ranking of the wrong width, a tie the study does not
allow and a malformed tie are refused with a message and store nothing; the database
refuses a malformed ranking of any width by itself.
"""

import csv
import io
import itertools
import random
import re
from collections import Counter

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from evalstudy.ranks import RankError, check_ranks
from tests.factories import fill_study_images
from tests.narrow import present
from webapp.research import exports
from webapp.studies import flow, lifecycle
from webapp.studies.models import Entry, Image, RankResponse, Slot

from .conftest import current_task, join

pytestmark = pytest.mark.django_db

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
CAPTIONS = ("a red circle", "two blue squares", "a green triangle", "three yellow circles")


def ranking_protocol(n: int, *, allow_ties: bool, evaluators: int = 2) -> dict:
    """A ranking-only protocol with ``n`` variants (2 is pairwise A/B)."""
    task: dict = {"captions": list(CAPTIONS)}
    if allow_ties:
        task["allow_ties"] = True
    return {
        "name": f"{n}-way", "variants": list(NAMES[:n]),
        "sampling": {"cfg_scale": 1.0, "steps": 2, "sampler": "dpm_solver", "seed": 0},
        "preference_task": task, "evaluators": {"n": evaluators, "overlap": evaluators},
    }


def open_study(n: int, *, allow_ties: bool, evaluators: int = 2, slug: str = ""):
    study = lifecycle.study_create(protocol=ranking_protocol(n, allow_ties=allow_ties, evaluators=evaluators),
                                  slug=slug or f"w{n}{'t' if allow_ties else ''}")
    fill_study_images(study)
    return lifecycle.study_open(study=study)


def stored() -> int:
    return RankResponse.objects.count()


def post(client: Client, study, data: dict):
    task = current_task(client, study)["task"]
    return client.post(f"/e/{study.slug}/task/", {"kind": "rank", "token": task["token"], **data},
                       HTTP_ACCEPT="application/json")


def ranks_data(ranks) -> dict:
    return {f"rank_{i}": str(r) for i, r in enumerate(ranks)}


# --------------------------------------------------------------------------- the service


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_a_ranking_of_the_protocols_width_is_stored_with_its_images(n):
    study = open_study(n, allow_ties=False)
    client = join(Client(), study)
    task = current_task(client, study)["task"]
    assert len(task["images"]) == n
    ranks = list(range(n, 0, -1))
    r = post(client, study, ranks_data(ranks))
    assert r.status_code == 200, r.content
    resp = RankResponse.objects.get()
    assert resp.width == n and resp.ranks == ranks
    assert all(getattr(resp, f) is not None for f in RankResponse.IMAGE_FIELDS[:n])
    assert all(getattr(resp, f) is None for f in RankResponse.IMAGE_FIELDS[n:] + RankResponse.RANK_FIELDS[n:])


def test_a_rank_for_an_image_the_task_does_not_show_is_named_as_such():
    # Probe 4: a crafted form with only rank_5 on a 4-image task read "this answer ranks 6".
    study = open_study(4, allow_ties=False)
    client = join(Client(), study)
    r = post(client, study, {"rank_5": "1"})
    assert r.status_code == 400 and stored() == 0
    error = r.json()["error"]
    assert error["code"] == "wrong_width" and "shows 4 images" in error["message"] and "image 6" in error["message"]


@pytest.mark.parametrize(
    "n, allow_ties, data, code",
    [
        (3, False, ranks_data([1, 2]), "incomplete"),
        (3, False, ranks_data([1, 2, 3, 4]), "wrong_width"),
        (3, False, ranks_data([1, 1, 3]), "tie_not_allowed"),
        (3, False, {"all_equal": "on"}, "tie_not_allowed"),
        (3, False, {"choice": "left"}, "wrong_width"),
        (5, True, ranks_data([1, 2, 2, 3, 4]), "malformed_tie"),
        (5, True, ranks_data([2, 2, 3, 4, 5]), "malformed_tie"),
        (5, True, ranks_data([1, 2, 3, 4, 6]), "out_of_range"),
        (5, True, {**ranks_data([1, 2, 3, 4, 5]), "all_equal": "on"}, "both"),
        (2, False, {"choice": "same"}, "tie_not_allowed"),
        (2, False, ranks_data([1, 1]), "tie_not_allowed"),
        (2, True, {"choice": "left", "skip_reason": "too_hard"}, "both"),
        (2, True, {"choice": "sideways"}, "invalid_choice"),
    ],
)
def test_a_ranking_the_study_cannot_take_is_refused_with_a_message_and_stores_nothing(n, allow_ties, data, code):
    study = open_study(n, allow_ties=allow_ties)
    client = join(Client(), study)
    r = post(client, study, data)
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and "/" not in error["message"]
    assert stored() == 0


def test_the_service_refuses_a_wrong_width_a_forbidden_tie_and_a_malformed_tie_itself():
    """Not only the form: a caller of the service (the admin, a command) gets the same refusals."""
    study = open_study(4, allow_ties=False, slug="svc")
    client = join(Client(), study)
    evaluator = study.evaluators.get()
    token = current_task(client, study)["task"]["token"]
    for ranks, code in (([1, 2, 3], "wrong_width"), ([1, 1, 3, 4], "tie_not_allowed"),
                        ([1, 2, 3, 3], "tie_not_allowed"), ([1, 2, 3, 4, 5], "wrong_width")):
        with pytest.raises(flow.SubmissionError) as err:
            flow.rank_response_submit(evaluator=evaluator, token=token, ranks=ranks)
        assert err.value.code == code and err.value.status == 400
    assert stored() == 0


def test_ties_are_stored_as_competition_ranks_and_all_equally_good_is_not_a_skip():
    study = open_study(5, allow_ties=True)
    client = join(Client(), study)
    assert post(client, study, ranks_data([1, 2, 2, 4, 5])).status_code == 200
    assert post(client, study, {"all_equal": "on"}).status_code == 200
    assert post(client, study, {"skip_reason": "all_bad"}).status_code == 200
    tie, good, bad = RankResponse.objects.order_by("pk")
    assert tie.ranks == [1, 2, 2, 4, 5] and not tie.skipped
    assert good.ranks == [1] * 5 and not good.skipped and good.skip_reason == ""
    assert bad.skipped and bad.skip_reason == "all_bad" and bad.ranks == [None] * 5


@pytest.mark.parametrize("choice, ranks", [("left", [1, 2]), ("right", [2, 1]), ("same", [1, 1])])
def test_pairwise_choices_are_stored_as_ranks_by_screen_position(choice, ranks):
    study = open_study(2, allow_ties=True)
    client = join(Client(), study)
    assert post(client, study, {"choice": choice}).status_code == 200
    resp = RankResponse.objects.get()
    assert resp.width == 2 and resp.ranks == ranks and not resp.skipped


def test_the_pairwise_page_offers_about_the_same_only_when_ties_are_allowed():
    for allow_ties in (True, False):
        study = open_study(2, allow_ties=allow_ties, slug=f"pair-{allow_ties}".lower())
        client = join(Client(), study)
        page = client.get(f"/e/{study.slug}/task/").content.decode()
        assert 'id="pair-form"' in page and 'value="left"' in page and 'value="right"' in page
        assert ('value="same"' in page) == allow_ties
        assert "<kbd>1</kbd> left is better" in page and 'value="too_hard"' in page


def test_the_ranking_page_shows_the_protocols_width_and_the_tie_controls_only_with_ties():
    for n, allow_ties in ((3, False), (5, True)):
        study = open_study(n, allow_ties=allow_ties)
        client = join(Client(), study)
        page = client.get(f"/e/{study.slug}/task/").content.decode()
        assert page.count('class="tile"') == n and f"<kbd>{n}</kbd>" in page and f"to worst ({n})" in page
        assert f'name="rank_{n - 1}"' in page and f'name="rank_{n}"' not in page
        assert ('id="all-good"' in page) == allow_ties and ('id="tie"' in page) == allow_ties


@pytest.mark.parametrize("n, allow_ties, says", [
    (2, True, ("two images side by side", "about the same")),
    (3, False, ("three images", "best (1)", "worst (3)")),
    (5, True, ("five images", "worst (5)", "all equally good")),
])
def test_consent_and_instructions_describe_the_protocols_ranking(n, allow_ties, says):
    study = open_study(n, allow_ties=allow_ties)
    client = Client()
    client.get(f"/join/{study.invite_token}/")
    consent = client.get(f"/e/{study.slug}/consent/").content.decode()
    assert ("choose the better of two images" if n == 2 else f"order {says[0]}") in consent
    join(client, study)
    page = client.get(f"/e/{study.slug}/instructions/").content.decode()
    assert all(s in page for s in says) and "four images" not in page
    assert ("all equally good" in page) == (allow_ties and n > 2)


def test_a_researchers_preview_of_a_pairwise_study_shows_the_ab_page_and_stores_nothing():
    from tests.factories import UserFactory

    study = open_study(2, allow_ties=True, slug="preview-ab")
    user = UserFactory(username="res")
    study.researchers.add(user)
    client = Client()
    client.force_login(user)
    assert client.post(f"/run/{study.slug}/preview/").status_code == 302
    page = client.get(f"/run/{study.slug}/preview/task/").content.decode()
    assert 'id="pair-form"' in page and 'value="same"' in page and 'id="undo"' not in page
    token = present(re.search(r'name="token" value="([^"]+)"', page)).group(1)
    r = client.post(f"/run/{study.slug}/preview/task/", {"kind": "rank", "token": token, "choice": "same"})
    assert r.status_code == 302 and stored() == 0


def test_a_check_constraint_failure_is_a_400_not_already_answered(monkeypatch):
    """Only the unique constraint means "already answered"; a malformed row the database
    refuses (here with the service's own check switched off) is a plain 400."""
    study = open_study(3, allow_ties=True)
    client = join(Client(), study)
    monkeypatch.setattr(flow, "check_ranks", lambda *a, **k: None)
    r = post(client, study, ranks_data([1, 1, 2]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    assert stored() == 0
    monkeypatch.undo()
    token = current_task(client, study)["task"]["token"]
    evaluator = study.evaluators.get()
    flow.rank_response_submit(evaluator=evaluator, token=token, ranks=[1, 2, 3])
    with pytest.raises(flow.SubmissionError) as err:
        flow.rank_response_submit(evaluator=evaluator, token=token, ranks=[1, 2, 3])
    assert err.value.code == "already_answered" and err.value.status == 409


# --------------------------------------------------------------------------- the database


def _weak_orders(n: int, rng: random.Random, k: int) -> list[tuple[int, ...]]:
    """k random competition rankings of n images (ties included)."""
    out = []
    for _ in range(k):
        scores = [rng.randint(0, n - 1) for _ in range(n)]
        out.append(tuple(1 + sum(s2 > s for s2 in scores) for s in scores))
    return out


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_the_database_stores_exactly_the_well_formed_rankings_of_any_width(n):
    """Every candidate (exhaustive for n <= 3, random ones and random well-formed ties
    above) is stored iff evalstudy's check_ranks (ties allowed) accepts it."""
    study = open_study(n, allow_ties=True, evaluators=1, slug=f"db{n}")
    client = join(Client(), study)
    assert post(client, study, {"skip_reason": "too_hard"}).status_code == 200
    resp = RankResponse.objects.get()
    rng = random.Random(n)
    values = range(0, n + 2)
    if n <= 3:
        candidates = list(itertools.product(values, repeat=n))
    else:
        candidates = [tuple(rng.choice(values) for _ in range(n)) for _ in range(150)] + _weak_orders(n, rng, 150)
    accepted = refused = 0
    for ranks in candidates:
        try:
            check_ranks(ranks, n, allow_ties=True)
            well_formed = True
        except RankError:
            well_formed = False
        try:
            with transaction.atomic():
                RankResponse.objects.filter(pk=resp.pk).update(
                    skipped=False, skip_reason="", **dict(zip(RankResponse.RANK_FIELDS, ranks, strict=False)))
                raise _Stored
        except _Stored:
            stored_it = True
        except IntegrityError:
            stored_it = False
        assert stored_it == well_formed, ranks
        accepted += stored_it
        refused += not stored_it
    assert accepted and refused


class _Stored(Exception):
    """Rolls a successful update back (the next candidate starts from the skip)."""


def test_the_database_refuses_images_or_ranks_beyond_the_width_and_a_missing_image_within_it():
    study = open_study(3, allow_ties=False, evaluators=1, slug="layout")
    client = join(Client(), study)
    assert post(client, study, ranks_data([1, 2, 3])).status_code == 200
    resp = RankResponse.objects.get()
    other = Image.objects.exclude(pk__in=[resp.image_0_id, resp.image_1_id, resp.image_2_id]).first()
    for change in ({"image_3": other}, {"rank_3": 4}, {"image_2": None}, {"width": 4}, {"width": 1}, {"width": 7}):
        with pytest.raises(IntegrityError), transaction.atomic():
            RankResponse.objects.filter(pk=resp.pk).update(**change)


# --------------------------------------------------------------------------- design and exports


def test_pairwise_positions_are_counterbalanced_per_evaluator_and_per_caption():
    study = open_study(2, allow_ties=True, evaluators=4, slug="balance")
    per_item: dict[int, Counter] = {}
    for slot in Slot.objects.filter(study=study):
        sides = Counter(tuple(p) for p in slot.positions.values())
        assert set(sides) <= {(0, 1), (1, 0)} and abs(sides[(0, 1)] - sides[(1, 0)]) <= 1, sides
        for item_id, p in slot.positions.items():
            per_item.setdefault(item_id, Counter())[tuple(p)] += 1
    assert per_item and all(c[(0, 1)] == c[(1, 0)] for c in per_item.values()), per_item


def test_the_csv_has_one_row_per_variant_with_the_tied_ranks_as_stored():
    study = open_study(3, allow_ties=True, evaluators=1, slug="csv3")
    client = join(Client(), study)
    assert post(client, study, ranks_data([2, 1, 2])).status_code == 200
    assert post(client, study, {"all_equal": "on"}).status_code == 200
    rows = list(csv.DictReader(io.StringIO("".join(exports.csv_chunks(study=study)))))
    first, second = [[r for r in rows if r["item_id"] == key] for key in dict.fromkeys(r["item_id"] for r in rows)]
    entry = Entry.objects.get(evaluator__study=study, index=0)
    by_variant = {r["variant"]: r["rank"] for r in first}
    assert by_variant == {NAMES[v]: str(rank) for v, rank in zip(entry.positions, (2, 1, 2), strict=True)}
    assert sorted(r["position"] for r in first) == ["0", "1", "2"]
    assert [r["rank"] for r in second] == ["1", "1", "1"] and {r["skipped"] for r in second} == {"0"}


# --------------------------------------------------------------------------- the migration


BEFORE, AFTER = ("studies", "0004_entry_shown_at_evaluator_started_at"), ("studies", "0005_rank_width_and_ties")


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_four_wide_ranking_and_skip_valid():
    """Rows written before rankings had a width become width 4, ranks and images as they were."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        old = executor.loader.project_state([BEFORE]).apps
        study = old.get_model("studies", "Study").objects.create(slug="old", title="old", protocol={},
                                                                 protocol_hash="0")
        prompt = old.get_model("studies", "Prompt").objects.create(study=study, kind="rank", text="a red circle")
        item = old.get_model("studies", "Item").objects.create(study=study, key="rank:0", task="rank", prompt=prompt,
                                                               seed=1)
        images = []
        for i in range(4):
            variant = old.get_model("studies", "Variant").objects.create(study=study, name=NAMES[i], index=i)
            images.append(old.get_model("studies", "Image").objects.create(
                study=study, prompt=prompt, variant=variant, seed=1, file=f"{i}.png"))
        Evaluator, Entry_, Rank = (old.get_model("studies", m) for m in ("Evaluator", "Entry", "RankResponse"))
        written = {}
        for k, ranks in enumerate(([2, 4, 1, 3], None)):
            ev = Evaluator.objects.create(study=study, pseudonym=f"ev-{k}")
            entry = Entry_.objects.create(evaluator=ev, index=0, item=item, positions=[0, 1, 2, 3])
            written[k] = Rank.objects.create(
                entry=entry, evaluator=ev, item=item, seconds=3.0, skipped=ranks is None,
                skip_reason="too_hard" if ranks is None else "",
                **{f"image_{i}": img for i, img in enumerate(images)},
                **{f"rank_{i}": None if ranks is None else ranks[i] for i in range(4)}).pk
        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        # Read by today's model, less the columns later migrations add (the schema is 0005's).
        later = ("away_seconds",)
        ranked, skipped = (RankResponse.objects.defer(*later).get(pk=written[k]) for k in (0, 1))
        assert ranked.width == 4 and ranked.ranks == [2, 4, 1, 3]
        stored = [getattr(ranked, f"{f}_id") for f in RankResponse.IMAGE_FIELDS]
        assert stored == [img.pk for img in images] + [None] * 2
        assert skipped.width == 4 and skipped.skipped and skipped.ranks == [None] * 4
    finally:  # the schema of every later test in this process
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_an_undone_answer_is_described_in_the_evaluators_words_for_any_width():
    from webapp.studies.selectors import describe_answer

    def rank(*ranks):
        return RankResponse(width=len(ranks), **dict(zip(RankResponse.RANK_FIELDS, ranks, strict=False)))

    assert describe_answer(rank(1, 2)) == "left is better"
    assert describe_answer(rank(2, 1)) == "right is better"
    assert describe_answer(rank(1, 1)) == "about the same"
    assert describe_answer(rank(1, 1, 1)) == "all equally good"
    assert describe_answer(rank(2, 1, 2, 4, 5)) == "best to worst: image 2, image 1 = image 3, image 4, image 5"
    assert describe_answer(rank(3, 1, 2)) == "best to worst: image 2, image 3, image 1"


def test_simulated_evaluators_tie_images_only_where_the_protocol_allows_ties():
    from django.core.management import CommandError, call_command

    from webapp.research import services as research_services

    ties = open_study(5, allow_ties=True, evaluators=4, slug="sim-ties")
    call_command("simulate_responses", ties.slug, "--evaluators", "4", "--tie-margin", "0.3", "--skip-rate", "0")
    rankings = list(RankResponse.objects.filter(item__study=ties))
    assert len(rankings) == 4 * len(CAPTIONS)
    tied = [r for r in rankings if len(set(r.ranks)) < r.width]
    assert tied
    for r in rankings:
        check_ranks([rank or 0 for rank in r.ranks], 5, allow_ties=True)  # raises on a bad one (a None as 0)

    plain = open_study(3, allow_ties=False, evaluators=1, slug="sim-plain")
    with pytest.raises(CommandError, match="does not allow ties"):
        call_command("simulate_responses", plain.slug, "--evaluators", "1", "--tie-margin", "0.3")
    assert not RankResponse.objects.filter(item__study=plain).exists()
    research_services.study_simulate_responses(study=plain, n_evaluators=1, skip_rate=0)
    stored = RankResponse.objects.filter(item__study=plain)
    assert all(sorted(rank or 0 for rank in r.ranks) == [1, 2, 3] for r in stored)


@pytest.mark.parametrize("n", [2, 4])
def test_the_ranking_example_is_shown_as_the_evaluators_task_is(n):
    """A protocol's ranking example lists pictures from the best match to the worst: to an
    evaluator who compares two images it is the best beside the worst, labelled, without an
    explanation written for the longer list; to one who ranks n images, the list."""
    protocol = ranking_protocol(n, allow_ties=False)
    scenes = [{"object": "circle", "count": c} for c in (3, 2, 1, 4)]
    protocol["practice"] = {"rank_example": {"caption": "three circles", "images": scenes,
                                             "explanation": "Three circles first, four last."}}
    study = lifecycle.study_create(protocol=protocol, slug=f"example{n}")
    fill_study_images(study)
    study = lifecycle.study_open(study=study)
    client = Client()
    join(client, study)
    page = client.get(f"/e/{study.slug}/instructions/").content.decode()
    shown = re.findall(r'src="(/e/[^"]+/practice/example-\d+\.png)"', page)
    if n == 2:
        assert [s.rsplit("-", 1)[1] for s in shown] == ["0.png", "3.png"]
        assert "Matches better" in page and "Matches worse" in page
        assert "Three circles first" not in page
    else:
        assert [s.rsplit("-", 1)[1] for s in shown] == ["0.png", "1.png", "2.png", "3.png"]
        assert "Three circles first" in page
    assert all(client.get(url).status_code == 200 for url in shown)
