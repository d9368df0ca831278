"""The evaluator path in a fixed number of queries, whatever the size of the study.

Each endpoint has a budget (BUDGET) of SQL statements, counted as production runs them:
the SAVEPOINTs that nest each atomic block inside the test's own transaction are left out.
The same walk through a small study and a larger one (more slots, more tasks) must cost
exactly the same per request, and no answer may cost more than the first: a query added
per image, per task, per slot or per answer given fails here.
"""
import json
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import PromptFactory, build_open_study, make_image
from webapp.studies.models import CountResponse, Item, RankResponse, Slot

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"

# What each request needs, in statements (SQLite and PostgreSQL alike), with production's
# sessions: read from the shared cache (no query), written through to the database
# (webapp/sessions.py). The evaluator pages read the evaluator with its study in one query
# (selectors.evaluator_from_session_by_slug); the arrival's reads and writes are statements
# made once per process (webapp/studies/sqlreads.py).
BUDGET = {
    # study by invite token; study re-read by the service; the external id seen before?;
    # "every slot held" (held slots and all slots counted in one statement); INSERT
    # evaluator; INSERT session (no look-up of the new key first).
    "join": 6,
    # evaluator with study; the first free slot (its length: the number of tasks); the
    # people who finished (the time estimate's key).
    "consent page": 3,
    # evaluator with study; study and evaluator again under their row locks (slots are
    # taken under them); the places this address holds (FUSION_SLOTS_PER_ADDRESS); the first
    # free slot; INSERT the entries (one statement, any number of tasks); UPDATE evaluator.
    "consent": 7,
    # evaluator with study; the entries counted by kind of task; the people who finished.
    "instructions page": 3,
    # "Start": evaluator with study; UPDATE started_at. With a practice item: evaluator
    # with study; UPDATE session (this browser read the instructions).
    "start": 2,
    "start practice": 2,
    # evaluator with study; the practice page itself reads nothing more (the protocol is parsed once per process).
    "practice page": 2,
    # evaluator with study; UPDATE started_at (the tasks open); and the page with its feedback.
    "practice": 3,
    # evaluator with study; the next task with its item, prompt and image and the progress
    # (one statement: sqlreads); then one more: a ranking's images (one query, any number
    # of images), or the time the task was first shown (one UPDATE, the first time only:
    # time on task is measured by the server from then), or, when every task is answered,
    # the progress counted on its own. A ranking shown the first time: both.
    "state": 3,
    # evaluator with study; the entry with its item; INSERT the answer; the next task with
    # the progress (one statement; "was that the last?" is its answer); UPDATE evaluator
    # (last seen, finished); the next task's first-shown time (one UPDATE), or after the
    # last task the progress counted on its own. Plus a ranking's images, for a ranking
    # stored and for a ranking next (see _budget).
    "answer": 6,
    # An evaluator's image: the image of the showing its alias names, if this browser holds
    # the evaluator (sqlreads.showing_image_file), in one statement.
    "image": 1,
}


def _budget(key: str) -> int:
    """The budget of one request of the walk: ``key`` is e.g. "answer rank->count" or
    "state ->rank again" (again: shown before, no first-shown UPDATE)."""
    kind, _, rest = key.partition(" ")
    stored, _, shown = rest.split()[0].partition("->") if rest else ("", "", "")
    if kind == "answer":
        return BUDGET["answer"] + (stored == "rank") + (shown == "rank")
    if kind == "state":  # a ranking shown the first time needs its images and the UPDATE
        return BUDGET["state"] + (shown == "rank" and not key.endswith("again"))
    return BUDGET[key]  # the arrival's requests: by their whole name


def _statements(ctx: CaptureQueriesContext) -> int:
    return sum(1 for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def _grow(study, n_prompts: int) -> None:
    """``n_prompts`` more counting prompts, one image per variant each, added to every slot."""
    new = []
    for k in range(n_prompts):
        prompt = PromptFactory(study=study, kind="count", text=f"{k + 2} extra triangles", object="triangle",
                               object_plural="triangles", count=k % 5 + 1)
        for v in study.variants.all():
            img = make_image(study=study, prompt=prompt, variant=v, seed=300 + k)
            new.append(Item.objects.create(study=study, key=f"count:{v.name}:extra:{k}", task="count", prompt=prompt,
                                           seed=img.seed, variant=v, image=img, true_count=k % 5 + 1).pk)
    for slot in Slot.objects.filter(study=study):
        slot.items = slot.items + new
        slot.save(update_fields=["items"])


def _walk(study, label: str) -> dict[str, list[int]]:
    """One evaluator's way through the study by its JSON API: statements per request, by
    request and by the kinds of task it handles ("answer rank->count": a ranking is stored
    and the next task is a count)."""
    client = Client()
    seen: dict[str, list[int]] = {}

    def measured(name, call):
        with CaptureQueriesContext(connection) as ctx:
            response = call()
        assert response.status_code in (200, 302), (label, name, response.status_code, response.content[:200])
        return response, _statements(ctx)

    def next_kind(state: dict) -> str:
        return "done" if state["done"] else state["task"]["kind"]

    worker = label.encode().hex()[:24].ljust(24, "0")  # shaped like a Prolific id, as the demo's panel checks
    _, n = measured("join", lambda: client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": worker}))
    seen.setdefault("join", []).append(n)
    _, n = measured("consent page", lambda: client.get(f"/e/{study.slug}/consent/"))
    seen.setdefault("consent page", []).append(n)
    _, n = measured("consent", lambda: client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}))
    seen.setdefault("consent", []).append(n)
    _, n = measured("instructions page", lambda: client.get(f"/e/{study.slug}/instructions/"))
    seen.setdefault("instructions page", []).append(n)
    state = client.get(f"/e/{study.slug}/state/").json()
    assert not state["done"] and "task" not in state  # the instructions (and practice) come first
    r, n = measured("start", lambda: client.post(state["next"]))
    if r["Location"].endswith("/practice/"):
        seen.setdefault("start practice", []).append(n)
        _, n = measured("practice page", lambda: client.get(r["Location"]))
        seen.setdefault("practice page", []).append(n)
        _, n = measured("practice", lambda: client.post(r["Location"], {"answer": "1"}))
        seen.setdefault("practice", []).append(n)
    else:
        seen.setdefault("start", []).append(n)
    response, n = measured("state", lambda: client.get(f"/e/{study.slug}/state/"))
    state = response.json()
    seen.setdefault(f"state ->{next_kind(state)}", []).append(n)
    while not state["done"]:
        task = state["task"]
        for url in task["images"]:  # as the browser loads the task page's images
            _, n = measured("image", lambda url=url: client.get(url))
            seen.setdefault("image", []).append(n)
        if task["kind"] == "count":
            data = {"kind": "count", "token": task["token"], "answer": "2"}
        else:
            data = {"kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}}
        response, n = measured("answer", lambda data=data: client.post(f"/e/{study.slug}/task/", data,
                                                                       HTTP_ACCEPT="application/json"))
        state = response.json()
        assert state["ok"], state
        seen.setdefault(f"answer {task['kind']}->{next_kind(state)}", []).append(n)
        # the state of every position too (a reload): the task was shown already by the answer
        response, n = measured("state", lambda: client.get(f"/e/{study.slug}/state/"))
        seen.setdefault(f"state ->{next_kind(response.json())} again", []).append(n)
    return seen


def test_each_evaluator_endpoint_keeps_its_query_budget_at_every_size(settings):
    settings.SESSION_ENGINE = "webapp.sessions"  # production's: sessions read from the shared cache
    # The demo's protocol (a consent section, a panel with Prolific ids, a practice item),
    # and without the practice item: "Start" leads straight to the tasks.
    protocol = json.loads(DEMO.read_text())
    no_practice = {k: v for k, v in protocol.items() if k != "practice"}
    small = build_open_study(n_slots=3, protocol=no_practice)
    large = build_open_study(n_slots=40, protocol=no_practice)
    _grow(large, 6)  # 24 more tasks per evaluator
    demo = build_open_study(n_slots=3, protocol=protocol)
    walks = {"small": _walk(small, "small"), "large": _walk(large, "large"), "demo": _walk(demo, "demo")}
    assert "practice" in walks["demo"] and "start" in walks["small"]
    answered = [CountResponse.objects.filter(item__study=s).count() + RankResponse.objects.filter(item__study=s).count()
                for s in (small, large, demo)]
    assert answered == [11, 35, 11]
    for label, walk in walks.items():
        assert {"join", "consent page", "consent", "instructions page", "state ->count", "answer count->count",
                "answer count->rank", "image"} <= set(walk), walk
        for key, counts in walk.items():
            # the same request costs the same at every position: nothing per answer given
            assert len(set(counts)) == 1, (label, key, counts)
            assert counts[0] <= _budget(key), (label, key, counts, _budget(key))
    for key in set(walks["small"]) & set(walks["large"]) & set(walks["demo"]):
        # ... and in every size of study: nothing per slot, task or image
        assert walks["small"][key][0] == walks["large"][key][0] == walks["demo"][key][0], (key, walks)


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.mark.django_db(transaction=True)
def test_joining_opens_no_transaction_of_its_own(settings):
    """In production a request runs in autocommit: joining's reads need no common snapshot and
    its one INSERT settles a race on the panel id by itself, so joining sends no BEGIN,
    COMMIT or savepoint around them (each is a round trip to the database on the way in of a
    launch burst). The session's INSERT, written after the view, keeps Django's own."""
    settings.SESSION_ENGINE = "webapp.sessions"
    protocol = json.loads(DEMO.read_text())
    study = build_open_study(n_slots=3, protocol={k: v for k, v in protocol.items() if k != "practice"})
    with CaptureQueriesContext(connection) as ctx:
        response = Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "a" * 24})
    assert response.status_code == 302
    sql = [q["sql"] for q in ctx.captured_queries]
    session_insert = next(k for k, s in enumerate(sql) if s.startswith("INSERT") and "session" in s)
    joining = sql[:session_insert]
    assert [s for s in joining if s.startswith(TRANSACTION_CONTROL)] == [], joining
    assert len(joining) <= BUDGET["join"], joining


@pytest.mark.django_db(transaction=True)
def test_start_is_one_update_without_a_transaction_around_it(settings):
    """"Start" on the instructions writes one timestamp: one UPDATE, in autocommit its own
    transaction, with no BEGIN and COMMIT around it (two round trips on everybody's way in)."""
    settings.SESSION_ENGINE = "webapp.sessions"
    protocol = json.loads(DEMO.read_text())
    study = build_open_study(n_slots=3, protocol={k: v for k, v in protocol.items() if k != "practice"})
    client = Client()
    client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "b" * 24})
    client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(f"/e/{study.slug}/instructions/")
    assert response.status_code == 302 and response["Location"].endswith("/task/")
    sql = [q["sql"] for q in ctx.captured_queries]
    assert [s for s in sql if s.startswith(TRANSACTION_CONTROL)] == [], sql
    assert len(sql) == BUDGET["start"], sql
