"""progress.json sends exactly the typed document (progress.ProgressJSON) that dashboard.js reads."""
import random
import re
from pathlib import Path

import pytest
from django.test import Client

from tests.typed_json import assert_reads_typed, assert_typed
from tests.webapp.research_support import answer_tasks, researcher_of
from webapp.research import progress
from webapp.studies import joining

pytestmark = pytest.mark.django_db

DASHBOARD_JS = Path(progress.__file__).parent / "static" / "research" / "dashboard.js"


def test_progress_json_is_the_typed_document(study):
    client = Client()
    client.force_login(researcher_of(study))
    answer_tasks(joining.evaluator_join(study=study, external_id="w1"), rng=random.Random(1), limit=3)
    doc = client.get(f"/research/{study.slug}/progress.json").json()
    assert_typed(doc, progress.ProgressJSON, "progress")
    for row in doc["per_evaluator"]:
        assert_typed(row, progress.EvaluatorProgress, "per_evaluator")
    for task, coverage in doc["items"]["by_task"].items():
        assert_typed(coverage, progress.TaskCoverage, f"items.by_task.{task}")


def test_every_field_dashboard_js_reads_from_the_document_is_in_the_type():
    """dashboard.js names the document ``p`` and ``p.items.by_task`` ``t``: each path it
    reads must be typed, as far as the type goes (``p.per_evaluator.forEach`` ends at a list)."""
    script = DASHBOARD_JS.read_text()
    reads = [tuple(m.split(".")[1:]) for m in re.findall(r"\bp(?:\.[a-z_]+)+", script)]
    reads += [("items", "by_task", *m.split(".")[1:]) for m in re.findall(r"\bt(?:\.[a-z_]+)+", script)]
    assert len(reads) > 10, "dashboard.js no longer reads the document as p.<key>: update this test"
    assert_reads_typed(reads, progress.ProgressJSON)


def test_planned_tasks_per_evaluator_and_answers_per_item_are_counted_per_evaluator(study):
    from webapp.studies.models import Entry

    client = Client()
    client.force_login(researcher_of(study))
    first = joining.evaluator_join(study=study, external_id="w1")
    answer_tasks(first, rng=random.Random(1), limit=5)
    second = joining.evaluator_join(study=study, external_id="w2")
    answer_tasks(second, rng=random.Random(2), limit=2)
    doc = client.get(f"/research/{study.slug}/progress.json").json()
    planned = {row["pseudonym"]: row["planned"] for row in doc["per_evaluator"]}
    for ev in (first, second):
        ev.refresh_from_db()
        assert planned[ev.pseudonym] == Entry.objects.filter(evaluator=ev).count() > 0
    by_task = doc["items"]["by_task"]
    assert by_task["count"]["answers"] + by_task["rank"]["answers"] == 7  # each answer of a planned item, once
    assert doc["items"]["started"] == len({e.item_id for e in Entry.objects.filter(
        evaluator__in=(first, second), item__repeat_of__isnull=True)
        if hasattr(e, "count_response") or hasattr(e, "rank_response")})


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_evaluators_who_consented_before_it_their_entries_as_planned_tasks():
    """progress.json reads ``Evaluator.planned_tasks`` (written on consent) instead of counting
    entries: the migration that added it counts the entries of those who consented before."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = ("studies", "0006_image_judge_only"), ("studies", "0007_evaluator_planned_tasks")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps
        study = old.get_model("studies", "Study").objects.create(slug="old", title="old", protocol={},
                                                                 protocol_hash="0")
        prompt = old.get_model("studies", "Prompt").objects.create(study=study, kind="rank", text="a red circle")
        items = [old.get_model("studies", "Item").objects.create(study=study, key=f"rank:{k}", task="rank",
                                                                 prompt=prompt, seed=k) for k in range(3)]
        OldEvaluator, OldEntry = (old.get_model("studies", m) for m in ("Evaluator", "Entry"))
        consented = OldEvaluator.objects.create(study=study, pseudonym="ev-consented")
        OldEntry.objects.bulk_create([OldEntry(evaluator=consented, index=k, item=item)
                                      for k, item in enumerate(items)])
        joined = OldEvaluator.objects.create(study=study, pseudonym="ev-joined")
        executor = MigrationExecutor(connection)
        executor.migrate([after])
        # The model as it is at `after` (today's has columns of later migrations).
        Evaluator = executor.loader.project_state([after]).apps.get_model("studies", "Evaluator")
        assert Evaluator.objects.get(pk=consented.pk).planned_tasks == 3
        assert Evaluator.objects.get(pk=joined.pk).planned_tasks == 0
    finally:  # the schema of every later test in this process
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
