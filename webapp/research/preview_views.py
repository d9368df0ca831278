"""Preview pages: the evaluator's task pages for a study's researchers, storing nothing.

They render the evaluator's own templates with ``preview`` set (a banner on every page,
no undo); answers are checked by the evaluator's forms and then dropped. The drawn tasks
and the place in them are kept in the session (``preview.SESSION_KEY``).
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from webapp.studies import preview, selectors
from webapp.studies.forms import CountAnswerForm, RankAnswerForm
from webapp.studies.models import Item, Study
from webapp.studies.views import COUNT_BOX, TILE_BOX

from .views import researcher_view


def _state(request: HttpRequest, study: Study) -> dict | None:
    state = request.session.get(preview.SESSION_KEY)
    return state if state and state.get("study") == study.pk else None


@require_POST
@researcher_view
def preview_start(request: HttpRequest, study: Study) -> HttpResponse:
    """Draw a fresh sequence of tasks and show the first."""
    from .run_views import study_run

    try:
        request.session[preview.SESSION_KEY] = preview.preview_draw(study=study)
    except preview.PreviewError as exc:
        return study_run(request, study.slug, error=str(exc))
    return redirect("studies:preview_task", slug=study.slug)


@require_POST
@researcher_view
def preview_end(request: HttpRequest, study: Study) -> HttpResponse:
    request.session.pop(preview.SESSION_KEY, None)
    return redirect("studies:run", slug=study.slug)


def _check(request: HttpRequest, state: dict, kind: str) -> dict | None:
    """The error of a POSTed answer (as the evaluator's page would show it), or None.

    The token first: an answer sent for an earlier task (a replay, a second tab) is
    refused as such, whatever its shape."""
    if not preview.preview_token_ok(state=state, token=request.POST.get("token", "")):
        return {"code": "stale", "message": "That answer was for another task; answer the one shown."}
    form = CountAnswerForm(request.POST) if kind == "count" else RankAnswerForm(request.POST)
    if not form.is_valid():
        first = next(iter(form.errors.as_data().values()))[0]
        return {"code": first.code or "invalid", "message": " ".join(first.messages)}
    return None


@require_http_methods(["GET", "HEAD", "POST"])
@researcher_view
def preview_task(request: HttpRequest, study: Study) -> HttpResponse:
    state = _state(request, study)
    if state is None:
        return redirect("studies:run", slug=study.slug)
    task = preview.preview_task(study=study, state=state)
    error, status = None, 200
    if request.method == "POST" and task is not None:
        error = _check(request, state, task.item.task)
        if error is None:  # a valid answer: move on, store nothing
            state["at"] += 1
            request.session[preview.SESSION_KEY] = state
            return redirect("studies:preview_task", slug=study.slug)
        status = 400
    progress = selectors.Progress(answered=int(state["at"]), total=len(state["items"]))
    if task is None:
        return render(request, "studies/preview_done.html", {"study": study, "progress": progress, "preview": True})
    urls = [reverse("studies:image", args=[img.public_id]) for img in task.images]
    is_count = task.item.task == Item.Task.COUNT
    ranking = None if is_count else selectors.study_ranking(study=study)
    context = {
        "study": study, "preview": True, "progress": progress, "error": error, "study_open": True,
        "entry": task, "kind": task.item.task, "token": preview.preview_token(state=state), "image_urls": urls,
        "tiles": [{"url": url, "rank": None} for url in urls], "rank_choices": list(range(1, len(urls) + 1)),
        "display": selectors.image_display(width=task.images[0].width, height=task.images[0].height,
                                           box=COUNT_BOX if is_count else TILE_BOX),
        "question": task.item.prompt.question if is_count else "",
        "caption": "" if is_count else task.item.prompt.text,
        "ranking": ranking,
    }
    if ranking is None:
        template = "studies/count.html"
    else:
        template = "studies/pairwise.html" if ranking.is_pairwise else "studies/rank.html"
    return render(request, template, context, status=status)
