"""Preview and rehearsal copies: trying a study costs no place and stores no answer."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import UserFactory
from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, small_protocol
from webapp.research import participants
from webapp.studies import lifecycle, preview, recruitment
from webapp.studies.models import CountResponse, Entry, Evaluator, Image, Item, RankResponse, Slot, Study

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse  # the test client's response, in the stubs only

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(study):
    """A researcher of the study who may create studies (a rehearsal copy is one)."""
    user = UserFactory(username="res")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="studies", codename="add_study"))
    study.researchers.add(user)
    client = Client()
    client.force_login(user)
    return client


def stored() -> tuple[int, int, int, int]:
    return (Evaluator.objects.count(), Entry.objects.count(), CountResponse.objects.count(),
            RankResponse.objects.count())


def token_of(page: str) -> str:
    return present(re.search(r'name="token" value="([^"]+)"', page)).group(1)


def answer(client: Client, study: Study, page: str, *, count: str = "2") -> _MonkeyPatchedWSGIResponse:
    data = {"token": token_of(page)}
    if 'name="kind" value="count"' in page:
        data.update(kind="count", answer=count)
    else:
        n = len(re.findall(r'name="rank_\d+"', page))
        data.update(kind="rank", **{f"rank_{i}": str(i + 1) for i in range(n)})
    return client.post(f"/run/{study.slug}/preview/task/", data)


def test_a_researcher_previews_the_whole_study_and_nothing_is_stored(study, researcher):
    before, places = stored(), participants.study_places(study=study)
    r = researcher.post(f"/run/{study.slug}/preview/")
    assert r.status_code == 302 and r["Location"] == f"/run/{study.slug}/preview/task/"
    state = researcher.session[preview.SESSION_KEY]
    slot_items = {tuple(s.items) for s in Slot.objects.filter(study=study)}
    assert tuple(state["items"]) in slot_items  # drawn like a real slot's
    kinds = set()
    for _ in range(len(state["items"])):
        page = researcher.get(f"/run/{study.slug}/preview/task/")
        html = page.content.decode()
        assert page.status_code == 200 and 'id="preview-banner"' in html and 'id="undo"' not in html
        kinds.add("count" if 'value="count"' in html else "rank")
        for url in re.findall(r'src="(/i/[0-9a-f]{32})"', html):
            assert researcher.get(url).status_code == 200
        assert answer(researcher, study, html).status_code == 302
    assert kinds == {"count", "rank"}
    done = researcher.get(f"/run/{study.slug}/preview/task/")
    assert b"Nothing you answered was stored" in done.content and b'id="preview-banner"' in done.content
    assert stored() == before and participants.study_places(study=study) == places


def test_a_replayed_or_invalid_preview_answer_is_refused_and_does_not_advance(study, researcher):
    researcher.post(f"/run/{study.slug}/preview/")
    first = researcher.get(f"/run/{study.slug}/preview/task/").content.decode()
    bad = answer(researcher, study, first, count="-3") if 'value="count"' in first else None
    if bad is not None:
        assert bad.status_code == 400 and b"digits 0 to 9" in bad.content
    assert answer(researcher, study, first).status_code == 302
    replay = answer(researcher, study, first)
    assert replay.status_code == 400 and b"another task" in replay.content
    assert researcher.session[preview.SESSION_KEY]["at"] == 1


def test_only_the_studys_researchers_and_admins_may_preview(study):
    stranger = Client()
    stranger.force_login(UserFactory(username="other"))
    assert stranger.post(f"/run/{study.slug}/preview/").status_code == 404
    assert Client().post(f"/run/{study.slug}/preview/").status_code in (302, 404)  # to the login page
    assert preview.SESSION_KEY not in stranger.session


def test_a_preview_of_a_draft_study_draws_one_of_the_plans_opening_would_make(tmp_path, settings):
    from tests.webapp.test_imagesets import make_rows, write_folder
    from webapp.generation.imagesets import imageset_import

    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    draft = lifecycle.study_create(protocol=protocol, slug="draft", base_dir=str(DEMO_PROTOCOL.parent))
    user = UserFactory(username="res")
    draft.researchers.add(user)
    client = Client()
    client.force_login(user)
    r = client.post("/run/draft/preview/")
    assert r.status_code == 409 and b"images are still missing" in r.content
    imageset_import(study=draft, path=write_folder(tmp_path / "set", make_rows(draft, NEUTRAL_VARIANTS)))
    r = client.post("/run/draft/preview/")
    assert r.status_code == 302, re.findall(r"run-error\">([^<]*)", r.content.decode())
    state = client.session[preview.SESSION_KEY]
    by_key = {it.key: it for it in Item.objects.filter(study=draft)}
    plans = [[by_key[k].pk for _, k in p.items] for p in lifecycle.study_assignment_plans(study=draft, by_key=by_key)]
    assert state["items"] in plans
    for _ in range(len(state["items"])):
        page = client.get("/run/draft/preview/task/").content.decode()
        assert answer(client, draft, page).status_code == 302
    draft.refresh_from_db()
    assert draft.status == "draft" and not Slot.objects.filter(study=draft).exists() and stored() == (0, 0, 0, 0)


def test_a_rehearsal_copy_is_a_separate_draft_with_the_same_protocol_and_images(study, researcher, settings):
    r = researcher.post(f"/run/{study.slug}/rehearsal/", {"slug": "dry-run"})
    assert r.status_code == 302 and r["Location"] == "/run/dry-run/"
    copy = Study.objects.get(slug="dry-run")
    assert copy.status == "draft" and copy.protocol == study.protocol and copy.protocol_hash == study.protocol_hash
    assert set(copy.researchers.all()) == set(study.researchers.all())
    originals = {(i.variant.name if i.variant else None, i.prompt.text, i.seed): i
                 for i in Image.objects.filter(study=study).select_related("variant", "prompt")}
    copies = {(i.variant.name if i.variant else None, i.prompt.text, i.seed): i
              for i in Image.objects.filter(study=copy).select_related("variant", "prompt")}
    assert copies.keys() == originals.keys()
    for key, img in copies.items():
        old = originals[key]
        assert img.public_id != old.public_id and img.study_id == copy.pk
        assert img.variant is None or (img.variant.study_id, img.variant.name) == (copy.pk, present(old.variant).name)
        media = Path(settings.MEDIA_ROOT)
        assert (media / img.file).read_bytes() == (media / old.file).read_bytes()
    assert sorted(Item.objects.filter(study=copy).values_list("key", flat=True)) == sorted(
        Item.objects.filter(study=study, repeat_of__isnull=True).values_list("key", flat=True))
    assert not Item.objects.filter(study=copy).exclude(image__isnull=True).exclude(image__study=copy).exists()
    # The copy has no slot, no evaluator and no answer of the original's: it is planned when it opens.
    assert not Slot.objects.filter(study=copy).exists() and not Evaluator.objects.filter(study=copy).exists()
    # Its own plan: its testers learn nothing of the original's (the plan's seed is its secret).
    assert copy.plan_seed != study.plan_seed
    again = researcher.post(f"/run/{study.slug}/rehearsal/", {"slug": "dry-run"})
    assert again.status_code == 409 and b"exists already" in again.content


def test_a_rehearsal_copy_gives_its_testers_a_completion_code_of_its_own(study, researcher):
    """A tester who finishes a rehearsal is shown the copy's completion code, never the
    study's: with the study's, a dry run would hand out the code that a panel such as
    Prolific accepts as proof of having done the real study (probe 6)."""
    for slug in ("dry-run", "dry-run-2"):
        assert researcher.post(f"/run/{study.slug}/rehearsal/", {"slug": slug}).status_code == 302
    first, second = (Study.objects.get(slug=s) for s in ("dry-run", "dry-run-2"))
    shown = [present(recruitment.return_link(copy, "completion")).code for copy in (first, second)]
    assert all(shown) and study.completion_code not in shown
    assert shown[0] != shown[1]  # drawn for each copy, not a second fixed code to learn once
    assert all(code is not None and code.startswith(lifecycle.REHEARSAL_CODE_PREFIX) for code in shown)
    # A study without a code (the panel gives none) gets none in its copies either.
    Study.objects.filter(pk=study.pk).update(completion_code="")
    study.refresh_from_db()
    assert researcher.post(f"/run/{study.slug}/rehearsal/", {"slug": "dry-run-3"}).status_code == 302
    assert Study.objects.get(slug="dry-run-3").completion_code == ""
