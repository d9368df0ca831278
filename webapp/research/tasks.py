"""Celery tasks of the research app: "Update results" outside the web request.

``results_update`` runs on the ``default`` queue (no route names it). It takes the
update's id, re-reads it, and returns early when it is finished; the analysis it stores
is keyed by the state of the responses, so a message delivered twice (acks_late after a
crash) computes nothing new.
"""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def results_update(update_id: int) -> str:
    """Compute and store the current results of the update's study; returns its final state."""
    return services.results_update_run(update_id=update_id)
