"""The evaluator's tasks: a count or a ranking at a time, undo, the state the task script
polls, the completion page, and the images (to evaluators by a per-showing alias only,
``imagealias``; to researchers by public id).

Nothing an evaluator receives (URL, HTML, JSON, header, image) names a variant or checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from django.conf import settings
from django.forms import CharField
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from webapp.views import wants_json

from . import away as away_time
from . import flow, imagealias, selectors, sqlreads
from .forms import CountAnswerForm, RankAnswerForm
from .models import CountResponse, Entry, Evaluator, Image, Item, RankResponse, Study
from .views import AWAY_RATE, COUNT_BOX, READ_METHODS, TILE_BOX, _done_page, evaluator_view

# --------------------------------------------------------------------------- tasks


def _task_context(entry: Entry, *, study: Study, ranks: list[int | None] | None = None) -> dict:
    """What a task page shows; ``ranks`` (screen order) pre-fills a ranking, e.g. the
    partial one sent back with an error."""
    images = selectors.entry_images(entry=entry)
    item = entry.item
    urls = showing_urls(entry, len(images))
    ranks = ranks or [None] * len(urls)
    ranking = selectors.study_ranking(study=study, entry=entry) if item.task == Item.Task.RANK else None
    return {
        "tiles": [{"url": url, "rank": rank} for url, rank in zip(urls, ranks, strict=True)],
        "rank_choices": list(range(1, len(urls) + 1)),
        "ranking": ranking,
        "entry": entry,
        "kind": item.task,
        "token": flow.entry_token_make(entry=entry),
        "image_urls": urls,
        "display": selectors.image_display(
            width=images[0].width, height=images[0].height, box=COUNT_BOX if item.task == Item.Task.COUNT else TILE_BOX
        ),
        "question": item.prompt.question if item.task == Item.Task.COUNT else "",
        "caption": item.prompt.text if item.task == Item.Task.RANK else "",
    }


def showing_urls(entry: Entry, n_images: int) -> list[str]:
    """The addresses of an entry's images in screen order: one per showing (``imagealias``),
    so that a repeat, or a gold image another evaluator sees, has an address of its own."""
    return [reverse("studies:image", args=[imagealias.image_alias(
        evaluator_id=entry.evaluator_id, index=entry.index, position=k)]) for k in range(n_images)]


def _progress_json(progress: selectors.Progress) -> dict:
    """The progress as the task page's bar shows it (``percent``: its width)."""
    return {"answered": progress.answered, "total": progress.total, "percent": progress.percent}


def _task_json(entry: Entry | None, progress: selectors.Progress, done_url: str, study: Study, *,
               show: bool = True) -> dict:
    """The next task as the task script (tasks.js) and API clients read it; the task is
    marked shown, as the task page marks it when it is rendered (unless ``show`` is False:
    a HEAD request, which shows nobody anything)."""
    if entry is None:
        return {"done": True, "progress": _progress_json(progress), "next": done_url}
    if show:
        flow.entry_mark_shown(entry=entry)
    ctx = _task_context(entry, study=study)
    return {
        "done": False,
        "progress": _progress_json(progress),
        "task": {
            "kind": ctx["kind"],
            "question": ctx["question"],
            "caption": ctx["caption"],
            "images": ctx["image_urls"],
            "allow_ties": bool(ctx["ranking"] and ctx["ranking"].allow_ties),
            "token": ctx["token"],
            "number": entry.index + 1,
        },
    }


@evaluator_view(methods=("GET", "HEAD", "POST"), consent_required=True, answers=True)
def task(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    slug = study.slug
    if evaluator.started_at is None:  # the instructions (and practice) come first
        return redirect("studies:instructions", slug=slug)
    error = None
    status = 200
    if request.method == "POST":
        error, status, answered = _submit(request, study, evaluator)
        if answered is not None:
            if wants_json(request):
                done_url = reverse("studies:done", args=[slug])
                return JsonResponse(
                    {"ok": True, **_task_json(answered.next_entry, answered.progress, done_url, study)})
            return redirect("studies:task", slug=slug)
        if wants_json(request):
            return JsonResponse({"ok": False, "error": error}, status=status)
    entry, progress = selectors.evaluator_next_and_progress(evaluator=evaluator)
    if entry is None:
        return redirect("studies:done", slug=slug)
    # A HEAD puts nothing on a screen: the time on task starts, and an absence ends, only when
    # the task is shown.
    if study.accepts_answers and request.method != "HEAD":
        flow.entry_mark_shown(entry=entry)
        if request.method != "POST":  # the task on the screen again: its participant is back
            away_time.entry_away_close(entry=entry)
    prefill = _prefill(request, entry, posted=error is not None)
    context = {
        "study": study,
        "progress": progress,
        "error": error,
        "study_open": study.accepts_answers,
        # Where the task script reports time away (none once the study takes no answers).
        "away_url": reverse("studies:away", args=[slug]) if study.accepts_answers else "",
        "idle_after": settings.FUSION_IDLE_AFTER_SECONDS,
        **prefill,
        **_task_context(entry, study=study, ranks=prefill.get("ranks")),
    }
    if not study.accepts_answers and error is None:
        context["error"] = {"code": "study_closed", "message": "This study is closed; no more answers are accepted."}
    if entry.item.task == Item.Task.COUNT:
        template = "studies/count.html"
    else:
        template = "studies/pairwise.html" if context["ranking"].is_pairwise else "studies/rank.html"
    return render(request, template, context, status=status)


UNDONE_KEY = "fusion_undone"  # session: the answer an undo just removed, to show it again


def _prefill(request: HttpRequest, entry: Entry, *, posted: bool) -> dict:
    """What the task form starts with: the answer just sent back with an error (a partial
    ranking is kept), or the answer an undo removed, with a note saying so."""
    undone = request.session.pop(UNDONE_KEY, None)
    if posted:
        # A count task has one image and no ranks to keep.
        is_rank = entry.item.task == Item.Task.RANK
        ranks = [_int_or_none(request.POST.get(f"rank_{i}")) for i in range(len(entry.positions))] if is_rank else None
        return {"ranks": ranks, "answer_value": request.POST.get("answer", "")[:4]}
    if not undone or undone.get("entry") != entry.pk:
        return {}
    return {
        "ranks": undone.get("ranks"),
        "answer_value": undone.get("answer") or "",
        "notice": f"Undone: your answer to task {entry.index + 1} ({undone['text']}). Answer it again.",
    }


def _int_or_none(raw: str | None) -> int | None:
    # ASCII only: "²".isdigit() is true, but int("²") raises.
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 3 else None


def _submit(request: HttpRequest, study: Study, evaluator: Evaluator) -> tuple[dict | None, int, flow.Answered | None]:
    """Validate and store a POSTed answer; return (error, http status, the stored answer with the next task)."""
    kind = request.POST.get("kind")
    form: CountAnswerForm | RankAnswerForm
    if kind == "count":
        form = CountAnswerForm(request.POST)
    elif kind == "rank":
        form = RankAnswerForm(request.POST)
    else:
        return {"code": "invalid", "message": "Unknown kind of answer."}, 400, None
    if not form.is_valid():
        errors = form.errors.as_data()
        first = next(iter(errors.values()))[0]
        return {"code": first.code or "invalid", "message": " ".join(first.messages)}, 400, None
    data = form.cleaned_data
    try:
        if kind == "count":
            answered = flow.count_response_submit(
                evaluator=evaluator, token=data["token"], answer=data["answer"], cant_tell=bool(data["cant_tell"])
            )
        else:
            answered = flow.rank_response_submit(
                evaluator=evaluator, token=data["token"], ranks=data["ranks"],
                skip_reason=data.get("skip_reason") or "", all_equal=bool(data.get("all_equal")),
            )
    except flow.SubmissionError as exc:
        return {"code": exc.code, "message": exc.message}, exc.status, None
    return None, 200, answered


@evaluator_view(methods=("POST",), answers=True)
def undo(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    slug = study.slug
    last = selectors.evaluator_last_response(evaluator=evaluator)
    try:
        undone = flow.response_undo_last(evaluator=evaluator)
        if undone is not None and last is not None:
            request.session[UNDONE_KEY] = {
                "entry": undone.pk,
                "text": selectors.describe_answer(last),
                "answer": str(last.answer) if isinstance(last, CountResponse) and not last.cant_tell else "",
                "ranks": last.ranks if isinstance(last, RankResponse) and not last.skipped else None,
            }
    except flow.SubmissionError as exc:
        if wants_json(request):
            return JsonResponse({"ok": False, "error": {"code": exc.code, "message": exc.message}}, status=exc.status)
    if wants_json(request):
        nxt, progress = selectors.evaluator_next_and_progress(evaluator=evaluator)
        return JsonResponse({"ok": True, **_task_json(nxt, progress, reverse("studies:done", args=[slug]), study)})
    return redirect("studies:task", slug=slug)


# The longest token a task form carries: the answer forms' own limit (forms.py).
MAX_TOKEN = cast(CharField, CountAnswerForm.base_fields["token"]).max_length or 0


@evaluator_view(methods=("POST",), consent_required=True, rate=AWAY_RATE)
def away(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """The task script's report (``navigator.sendBeacon``) that its participant went away
    from the task on the page or came back (``away.entry_away_report``): ``token`` the task
    form's, ``state`` "away" or "back". A 204 with no body whether or not it changed
    anything (a stale report is harmless); a 4xx saying why for a bad or forged one."""
    token, state = request.POST.get("token", ""), request.POST.get("state", "")
    try:
        if len(token) > MAX_TOKEN:
            raise flow.SubmissionError("forged", "This form was not issued by this site.", 400)
        away_time.entry_away_report(evaluator=evaluator, token=token, state=state)
    except flow.SubmissionError as exc:
        return JsonResponse({"ok": False, "error": {"code": exc.code, "message": exc.message}}, status=exc.status)
    return HttpResponse(status=204)


@evaluator_view()
def state(request: HttpRequest, study: Study, evaluator: Evaluator) -> JsonResponse:
    """The evaluator's progress and current task, as JSON. Before the tasks, ``next`` is the
    page that comes first: consent (no tasks yet: 0 of 0, none done), then the instructions."""
    slug = study.slug
    if evaluator.consented_at is None:  # no tasks yet: nothing to read, none done
        return JsonResponse({"done": False, "progress": {"answered": 0, "total": 0, "percent": 0},
                             "next": reverse("studies:consent", args=[slug])})
    if evaluator.started_at is None:
        progress = selectors.evaluator_progress(evaluator=evaluator)
        return JsonResponse(
            {"done": False, "progress": _progress_json(progress),
             "next": reverse("studies:instructions", args=[slug])}
        )
    nxt, progress = selectors.evaluator_next_and_progress(evaluator=evaluator)
    return JsonResponse(_task_json(nxt, progress, reverse("studies:done", args=[slug]), study,
                                   show=request.method != "HEAD"))


@evaluator_view(consent_required=True)
def done(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """The completion code, to an evaluator who answered every task. One who has not
    consented is sent to the consent page (one who declined sees the declined page there,
    with the panel's code for that), and has no tasks to be out of: the code would be theirs
    for opening the link."""
    if evaluator.finished_at is None and selectors.evaluator_next_entry(evaluator=evaluator) is not None:
        return redirect("studies:task", slug=study.slug)
    return _done_page(request, study, evaluator)


# --------------------------------------------------------------------------- images


@require_http_methods(list(READ_METHODS))
def image(request: HttpRequest, key: str) -> HttpResponse:
    """An image: to its evaluator under the alias of one showing (``imagealias``), to the
    study's researchers and admins under its public id (the researcher pages and the
    preview). An evaluator's public ids are never served to them, nor named to them.

    The bytes are served as written (a PNG without text chunks); the headers name nothing.
    """
    # An evaluator's image in one statement (the request a browser makes most after the
    # pages); the study's researchers and admins through the ORM.
    holders = dict(selectors.session_holders(session=request.session))
    showing = imagealias.showing_from_alias(key, evaluator_ids=list(holders)) if holders else None
    file: str | None = None
    if showing is not None:
        file = sqlreads.showing_image_file(evaluator_id=showing.evaluator_id, browser=holders[showing.evaluator_id],
                                           index=showing.index, position=showing.position)
        if file is None:
            raise Http404("No such image.")
    else:
        img = Image.objects.select_related("study").filter(public_id=key).first()
        if img is None or not selectors.user_may_see_study(user=request.user, study=img.study):
            raise Http404("No such image.")
        file = img.file
    path = Path(settings.MEDIA_ROOT) / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Http404("No such image.") from None
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
