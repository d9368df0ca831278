"""The evaluator's way through a study: invite link, consent, instructions, tasks, completion.

Views are thin: forms check shape, services check ownership and state and write. Nothing an
evaluator receives (URL, HTML, JSON, header, image) names a variant or checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit import ALL
from django_ratelimit.core import is_ratelimited
from django_ratelimit.decorators import ratelimit
from django_ratelimit.exceptions import Ratelimited

from . import selectors, services
from .forms import CountAnswerForm, RankAnswerForm
from .models import Entry, Evaluator, Image, Item, Study

EXTERNAL_ID_PARAMS = ("PROLIFIC_PID", "worker_id", "workerId", "external_id")


READ_METHODS = ("GET", "HEAD")
TAKEOVER_SALT = "fusion-eval.takeover"
TAKEOVER_MAX_AGE = 15 * 60  # seconds the "continue here?" question stays valid
SIGNED_OUT_MESSAGE = ("You chose to go on with this study in another browser, so this one is signed out. "
                      "Your answers are saved. To go on here instead, use your invite link again.")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _rate(setting: str) -> Callable[[str, HttpRequest], str]:
    """A django-ratelimit rate read from the settings when the request comes (tests change it)."""
    return lambda group, request: getattr(settings, setting)


def _unavailable(request: HttpRequest, study: Study, message: str, status: int) -> HttpResponse:
    return render(request, "studies/unavailable.html", {"study": study, "message": message}, status=status)


def evaluator_view(*, methods: tuple[str, ...] = READ_METHODS, consent_required: bool = False,
                   answers: bool = False):
    """Decorate a view of ``/e/<slug>/...`` that belongs to the evaluator this browser holds.

    The wrapped view is called as ``view(request, study, evaluator)``. A visitor who has not
    joined the study in this browser gets a 404, one whose evaluator another browser took
    over a 403 saying so; with ``consent_required``, an evaluator who has not agreed yet is
    sent to the consent page. Methods outside ``methods`` get a 405, and no answer is ever
    cached. With ``answers``, a POST counts against the evaluator's answer rate
    (FUSION_RATE_ANSWER); over it, a 429.
    """

    def decorator(view: Callable[[HttpRequest, Study, Evaluator], HttpResponse]):
        @wraps(view)
        def wrapped(request: HttpRequest, slug: str) -> HttpResponse:
            study = get_object_or_404(Study, slug=slug)
            evaluator = selectors.evaluator_from_session(session=request.session, study=study)
            if evaluator is None:
                if selectors.session_signed_out(session=request.session, study=study):
                    return _unavailable(request, study, SIGNED_OUT_MESSAGE, 403)
                raise Http404("You have not joined this study.")
            if consent_required and evaluator.consented_at is None:
                return redirect("studies:consent", slug=slug)
            if answers and request.method == "POST" and is_ratelimited(
                request, group="studies.answer", key=lambda group, request: str(evaluator.pk),
                rate=_rate("FUSION_RATE_ANSWER"), method=ALL, increment=True,
            ):
                raise Ratelimited()
            return view(request, study, evaluator)

        return never_cache(require_http_methods(list(methods))(wrapped))

    return decorator


def _remember(request: HttpRequest, evaluator: Evaluator) -> None:
    """This browser holds ``evaluator`` from now on."""
    known = dict(request.session.get(selectors.SESSION_KEY, {}))
    known[str(evaluator.study_id)] = evaluator.pk
    request.session[selectors.SESSION_KEY] = known
    browsers = dict(request.session.get(selectors.BROWSER_SESSION_KEY, {}))
    browsers[str(evaluator.pk)] = evaluator.browser
    request.session[selectors.BROWSER_SESSION_KEY] = browsers


def _next_page(study: Study, evaluator: Evaluator) -> HttpResponse:
    return redirect("studies:consent" if evaluator.consented_at is None else "studies:task", slug=study.slug)


# --------------------------------------------------------------------------- joining


@never_cache
@require_http_methods(list(READ_METHODS))
@ratelimit(group="studies.join", key="ip", rate=_rate("FUSION_RATE_JOIN"), method=ALL, block=True)
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
        except services.InvalidExternalId as exc:
            return _unavailable(request, study, str(exc), 400)
        except services.StudyUnavailable as exc:
            return _unavailable(request, study, str(exc), 403)
        except services.ActiveElsewhere as exc:
            ticket = signing.dumps({"e": exc.evaluator.pk, "b": exc.evaluator.browser}, salt=TAKEOVER_SALT)
            return render(request, "studies/takeover.html", {"study": study, "ticket": ticket}, status=409)
        _remember(request, evaluator)
    return _next_page(study, evaluator)


@never_cache
@require_POST
@ratelimit(group="studies.join", key="ip", rate=_rate("FUSION_RATE_JOIN"), method=ALL, block=True)
def join_continue(request: HttpRequest, invite_token: str) -> HttpResponse:
    """"Continue here": this browser takes the evaluator over, the other is signed out.

    The ticket comes from the question page of ``join``; it names the evaluator and the
    browser that held it then, so a ticket is good for one take-over, for a while.
    """
    study = get_object_or_404(Study, invite_token=invite_token)
    try:
        data = signing.loads(request.POST.get("ticket", ""), salt=TAKEOVER_SALT, max_age=TAKEOVER_MAX_AGE)
        evaluator = Evaluator.objects.get(pk=int(data["e"]), study=study, browser=str(data["b"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError, Evaluator.DoesNotExist):
        return _unavailable(request, study, "This question has expired. Use your invite link again.", 400)
    evaluator = services.evaluator_take_over(evaluator=evaluator)
    _remember(request, evaluator)
    return _next_page(study, evaluator)


@evaluator_view(methods=("GET", "HEAD", "POST"))
@ratelimit(group="studies.consent", key="ip", rate=_rate("FUSION_RATE_CONSENT"), method="POST", block=True)
def consent(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """The consent page; agreeing takes a slot (rate-limited per address, as joining is)."""
    if request.method == "POST":
        if request.POST.get("agree") != "yes":
            return render(request, "studies/consent.html", {"study": study, "declined": True})
        try:
            services.evaluator_consent(evaluator=evaluator)
        except services.StudyUnavailable as exc:
            return _unavailable(request, study, str(exc), 403)
        return redirect("studies:instructions", slug=study.slug)
    return render(request, "studies/consent.html", {"study": study})


@evaluator_view(consent_required=True)
def instructions(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    tasks = set(Entry.objects.filter(evaluator=evaluator).values_list("item__task", flat=True).distinct())
    return render(request, "studies/instructions.html", {"study": study, "has_count": "count" in tasks, "has_rank": "rank" in tasks})


# --------------------------------------------------------------------------- tasks


def _task_context(entry: Entry) -> dict:
    images = selectors.entry_images(entry=entry)
    item = entry.item
    return {
        "entry": entry,
        "kind": item.task,
        "token": services.entry_token_make(entry=entry),
        "image_urls": [reverse("studies:image", args=[img.public_id]) for img in images],
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


@evaluator_view(methods=("GET", "HEAD", "POST"), consent_required=True, answers=True)
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
    context = {"study": study, "progress": progress, "error": error, "study_open": study.is_open, **_task_context(entry)}
    if not study.is_open and error is None:
        context["error"] = {"code": "study_closed", "message": "This study is closed; no more answers are accepted."}
    template = "studies/count.html" if entry.item.task == Item.Task.COUNT else "studies/rank.html"
    return render(request, template, context, status=status)


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


@evaluator_view(methods=("POST",), answers=True)
def undo(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    slug = study.slug
    try:
        services.response_undo_last(evaluator=evaluator)
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
