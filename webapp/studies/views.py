"""The evaluator's way through a study: invite link, consent, instructions, tasks, completion.

Views are thin: forms check shape, services check ownership and state and write. Nothing an
evaluator receives (URL, HTML, JSON, header, image) names a variant or checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import selectors, services
from .forms import CountAnswerForm, RankAnswerForm
from .models import Entry, Evaluator, Image, Item, RankResponse, Study

EXTERNAL_ID_PARAMS = ("PROLIFIC_PID", "worker_id", "workerId", "external_id")
# The largest side, in CSS pixels, an image is given before the script fits it to the
# viewport (the page is usable without the script).
COUNT_BOX = 480
TILE_BOX = 256


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


READ_METHODS = ("GET", "HEAD")


def evaluator_view(*, methods: tuple[str, ...] = READ_METHODS, consent_required: bool = False):
    """Decorate a view of ``/e/<slug>/...`` that belongs to one joined evaluator.

    The wrapped view is called as ``view(request, study, evaluator)``. A visitor who has not
    joined the study in this browser gets a 404; with ``consent_required``, an evaluator who
    has not agreed yet is sent to the consent page. Methods outside ``methods`` get a 405,
    and no answer is ever cached.
    """

    def decorator(view: Callable[[HttpRequest, Study, Evaluator], HttpResponse]):
        @wraps(view)
        def wrapped(request: HttpRequest, slug: str) -> HttpResponse:
            study = get_object_or_404(Study, slug=slug)
            evaluator = selectors.evaluator_from_session(session=request.session, study=study)
            if evaluator is None:
                raise Http404("You have not joined this study.")
            if consent_required and evaluator.consented_at is None:
                return redirect("studies:consent", slug=slug)
            return view(request, study, evaluator)

        return never_cache(require_http_methods(list(methods))(wrapped))

    return decorator


def _remember(request: HttpRequest, evaluator: Evaluator) -> None:
    known = dict(request.session.get(selectors.SESSION_KEY, {}))
    known[str(evaluator.study_id)] = evaluator.pk
    request.session[selectors.SESSION_KEY] = known


# --------------------------------------------------------------------------- joining


@never_cache
@require_http_methods(list(READ_METHODS))
def join(request: HttpRequest, invite_token: str) -> HttpResponse:
    """The per-study invite link. It may carry an external worker id (e.g. PROLIFIC_PID)."""
    study = get_object_or_404(Study, invite_token=invite_token)
    evaluator = selectors.evaluator_from_session(session=request.session, study=study)
    if evaluator is None:
        external_id = next((request.GET[p] for p in EXTERNAL_ID_PARAMS if request.GET.get(p)), "")
        try:
            evaluator = services.evaluator_join(
                study=study, external_id=external_id, user=request.user if request.user.is_authenticated else None
            )
        except services.StudyUnavailable as exc:
            return render(request, "studies/unavailable.html", {"study": study, "message": str(exc)}, status=403)
        _remember(request, evaluator)
    return redirect("studies:consent" if evaluator.consented_at is None else "studies:task", slug=study.slug)


@evaluator_view(methods=("GET", "HEAD", "POST"))
def consent(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    if request.method == "POST":
        if request.POST.get("agree") != "yes":
            return render(request, "studies/consent.html", {"study": study, "declined": True})
        services.evaluator_consent(evaluator=evaluator)
        return redirect("studies:instructions", slug=study.slug)
    return render(request, "studies/consent.html", {"study": study})


@evaluator_view(consent_required=True)
def instructions(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    tasks = set(Entry.objects.filter(evaluator=evaluator).values_list("item__task", flat=True).distinct())
    return render(request, "studies/instructions.html", {"study": study, "has_count": "count" in tasks, "has_rank": "rank" in tasks})


# --------------------------------------------------------------------------- tasks


def _task_context(entry: Entry, *, ranks: list[int | None] | None = None) -> dict:
    """What a task page shows; ``ranks`` (screen order) pre-fills a ranking, e.g. the
    partial one sent back with an error."""
    images = selectors.entry_images(entry=entry)
    item = entry.item
    urls = [reverse("studies:image", args=[img.public_id]) for img in images]
    ranks = ranks or [None] * len(urls)
    return {
        "tiles": [{"url": url, "rank": rank} for url, rank in zip(urls, ranks)],
        "rank_choices": list(range(1, len(urls) + 1)),
        "entry": entry,
        "kind": item.task,
        "token": services.entry_token_make(entry=entry),
        "image_urls": urls,
        "display": selectors.image_display(image=images[0], box=COUNT_BOX if item.task == Item.Task.COUNT else TILE_BOX),
        "question": item.prompt.question if item.task == Item.Task.COUNT else "",
        "caption": item.prompt.text if item.task == Item.Task.RANK else "",
    }


def _task_json(entry: Entry | None, progress: selectors.Progress, done_url: str) -> dict:
    if entry is None:
        return {"done": True, "progress": {"answered": progress.answered, "total": progress.total}, "next": done_url}
    ctx = _task_context(entry)
    return {
        "done": False,
        "progress": {"answered": progress.answered, "total": progress.total},
        "task": {
            "kind": ctx["kind"], "question": ctx["question"], "caption": ctx["caption"],
            "images": ctx["image_urls"], "token": ctx["token"], "number": entry.index + 1,
        },
    }


@evaluator_view(methods=("GET", "HEAD", "POST"), consent_required=True)
def task(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    slug = study.slug
    error = None
    status = 200
    if request.method == "POST":
        error, status = _submit(request, evaluator)
        if error is None:
            if _wants_json(request):
                progress = selectors.evaluator_progress(evaluator=evaluator)
                nxt = selectors.evaluator_next_entry(evaluator=evaluator)
                return JsonResponse({"ok": True, **_task_json(nxt, progress, reverse("studies:done", args=[slug]))})
            return redirect("studies:task", slug=slug)
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": error}, status=status)
    entry = selectors.evaluator_next_entry(evaluator=evaluator)
    if entry is None:
        return redirect("studies:done", slug=slug)
    progress = selectors.evaluator_progress(evaluator=evaluator)
    prefill = _prefill(request, entry, posted=error is not None)
    context = {"study": study, "progress": progress, "error": error, "study_open": study.is_open,
               **prefill, **_task_context(entry, ranks=prefill.get("ranks"))}
    if not study.is_open and error is None:
        context["error"] = {"code": "study_closed", "message": "This study is closed; no more answers are accepted."}
    template = "studies/count.html" if entry.item.task == Item.Task.COUNT else "studies/rank.html"
    return render(request, template, context, status=status)


UNDONE_KEY = "fusion_undone"  # session: the answer an undo just removed, to show it again


def _prefill(request: HttpRequest, entry: Entry, *, posted: bool) -> dict:
    """What the task form starts with: the answer just sent back with an error (a partial
    ranking is kept), or the answer an undo removed, with a note saying so."""
    undone = request.session.pop(UNDONE_KEY, None)
    if posted:
        ranks = [_int_or_none(request.POST.get(f"rank_{i}")) for i in range(4)]
        return {"ranks": ranks, "answer_value": request.POST.get("answer", "")[:4]}
    if not undone or undone.get("entry") != entry.pk:
        return {}
    return {"ranks": undone.get("ranks"), "answer_value": undone.get("answer") or "",
            "notice": f"Undone: your answer to task {entry.index + 1} ({undone['text']}). Answer it again."}


def _int_or_none(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 3 else None


def _submit(request: HttpRequest, evaluator: Evaluator) -> tuple[dict | None, int]:
    """Validate and store a POSTed answer; return (error, http status)."""
    kind = request.POST.get("kind")
    form = CountAnswerForm(request.POST) if kind == "count" else RankAnswerForm(request.POST) if kind == "rank" else None
    if form is None:
        return {"code": "invalid", "message": "Unknown kind of answer."}, 400
    if not form.is_valid():
        errors = form.errors.as_data()
        first = next(iter(errors.values()))[0]
        return {"code": first.code or "invalid", "message": " ".join(first.messages)}, 400
    data = form.cleaned_data
    try:
        if kind == "count":
            services.count_response_submit(
                evaluator=evaluator, token=data["token"], answer=data["answer"], cant_tell=bool(data["cant_tell"])
            )
        else:
            services.rank_response_submit(
                evaluator=evaluator, token=data["token"], ranks=data["ranks"], skip_reason=data.get("skip_reason") or ""
            )
    except services.SubmissionError as exc:
        return {"code": exc.code, "message": exc.message}, exc.status
    return None, 200


@evaluator_view(methods=("POST",))
def undo(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    slug = study.slug
    last = selectors.evaluator_last_response(evaluator=evaluator)
    try:
        undone = services.response_undo_last(evaluator=evaluator)
        if undone is not None and last is not None:
            request.session[UNDONE_KEY] = {
                "entry": undone.pk, "text": selectors.describe_answer(last),
                "answer": "" if getattr(last, "cant_tell", True) else str(last.answer),
                "ranks": last.ranks if isinstance(last, RankResponse) and not last.skipped else None,
            }
    except services.SubmissionError as exc:
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": {"code": exc.code, "message": exc.message}}, status=exc.status)
    if _wants_json(request):
        progress = selectors.evaluator_progress(evaluator=evaluator)
        nxt = selectors.evaluator_next_entry(evaluator=evaluator)
        return JsonResponse({"ok": True, **_task_json(nxt, progress, reverse("studies:done", args=[slug]))})
    return redirect("studies:task", slug=slug)


@evaluator_view()
def state(request: HttpRequest, study: Study, evaluator: Evaluator) -> JsonResponse:
    """The evaluator's progress and current task, as JSON."""
    slug = study.slug
    progress = selectors.evaluator_progress(evaluator=evaluator)
    nxt = selectors.evaluator_next_entry(evaluator=evaluator) if evaluator.consented_at else None
    return JsonResponse(_task_json(nxt, progress, reverse("studies:done", args=[slug])))


@evaluator_view()
def done(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    if selectors.evaluator_next_entry(evaluator=evaluator) is not None:
        return redirect("studies:task", slug=study.slug)
    progress = selectors.evaluator_progress(evaluator=evaluator)
    return render(request, "studies/done.html", {"study": study, "progress": progress, "evaluator": evaluator})


# --------------------------------------------------------------------------- images


@require_http_methods(list(READ_METHODS))
def image(request: HttpRequest, public_id: str) -> HttpResponse:
    """An image under its opaque id, to its evaluators, the study's researchers and admins.

    The bytes are served as written (a PNG without text chunks); the headers name nothing.
    """
    img = Image.objects.select_related("study").filter(public_id=public_id).first()
    if img is None:
        raise Http404("No such image.")
    allowed = selectors.user_may_see_study(user=request.user, study=img.study) or selectors.evaluator_may_see_image(
        evaluator_ids=selectors.session_evaluator_ids(session=request.session), image=img
    )
    if not allowed:
        raise Http404("No such image.")
    path = Path(settings.MEDIA_ROOT) / img.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Http404("No such image.")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
