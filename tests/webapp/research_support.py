"""Helpers for the research app's tests: evaluators who answer through the real services."""
from __future__ import annotations

import random
from contextlib import contextmanager
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from webapp.studies import flow, joining
from webapp.studies.models import CountResponse, Entry, Evaluator, RankResponse, Study
from webapp.studies.selectors import entry_images


def answer_tasks(evaluator: Evaluator, *, rng: random.Random, limit: int | None = None, cant_tell_every: int = 7,
                 skip_every: int = 5) -> int:
    """Answer the evaluator's unanswered tasks in order (at most ``limit``) as a person would,
    through the submit services; counts near the truth, a "can't tell" and a skipped ranking
    now and then. Returns how many were answered."""
    joining.evaluator_start(evaluator=joining.evaluator_consent(evaluator=evaluator))
    done = 0
    entries = (Entry.objects.filter(evaluator=evaluator, count_response__isnull=True, rank_response__isnull=True)
               .select_related("item__prompt", "item__image", "item__variant").order_by("index"))
    for entry in entries:
        if limit is not None and done >= limit:
            break
        flow.entry_mark_shown(entry=entry, at=timezone.now() - timedelta(seconds=rng.uniform(1.5, 9.0)))
        token = flow.entry_token_make(entry=entry)
        if entry.item.task == "count":
            if rng.randrange(cant_tell_every) == 0:
                flow.count_response_submit(evaluator=evaluator, token=token, answer=None, cant_tell=True)
            else:
                truth = entry.item.true_count
                assert truth is not None  # a count item knows its true count
                flow.count_response_submit(evaluator=evaluator, token=token,
                                               answer=max(0, truth + rng.choice((-1, 0, 0, 0, 1))), cant_tell=False)
        else:
            entry_images(entry=entry)
            if rng.randrange(skip_every) == 0:
                flow.rank_response_submit(evaluator=evaluator, token=token, ranks=None, skip_reason="too_hard")
            else:
                ranks = list(range(1, len(entry.positions) + 1))
                rng.shuffle(ranks)
                flow.rank_response_submit(evaluator=evaluator, token=token, ranks=ranks)
        done += 1
    return done


def fill_study(study: Study, n_evaluators: int, *, seed: int = 0, external_ids: bool = True) -> list[Evaluator]:
    """n evaluators who join (with a worker id when asked) and answer every task."""
    rng = random.Random(seed)
    out = []
    for k in range(n_evaluators):
        ev = joining.evaluator_join(study=study, external_id=f"worker-{seed}-{k}" if external_ids else "")
        answer_tasks(ev, rng=rng)
        out.append(ev)
    return out


def researcher_of(study: Study, username: str = "alice"):
    user = get_user_model().objects.create_user(username=username, password="pw-for-tests")
    study.researchers.add(user)
    return user


@contextmanager
def celery_eager():
    """Tasks run in the calling process for the block (as a worker would run them)."""
    from webapp.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def update_results(client, study: Study, **kwargs):
    """POST "Update results" and run the queued task once the request's transaction commits,
    as a worker would; returns the response."""
    from django.test import TestCase

    with celery_eager(), TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(f"/research/{study.slug}/results/update/", **kwargs)


def answers_stored(study: Study) -> int:
    """Count and rank answers stored for the study (what its results are computed from)."""
    return (CountResponse.objects.filter(evaluator__study=study).count()
            + RankResponse.objects.filter(evaluator__study=study).count())
