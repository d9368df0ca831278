"""Researchers run their study from the web: create it from a protocol file, hand out the
invite link, open / pause / close it, and settle with the participants.

The pages use the research app's access rules (``researcher_view``: the study's
researchers and admins, 404 for anyone else). The participants' page is narrower: it
shows panel ids, so only the study's own researchers see it.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from webapp.studies import lifecycle, places, recruitment, selectors
from webapp.studies.models import Evaluator, Study
from webapp.uploads import refused_form, upload_cap, upload_refused

from . import participants
from .run_forms import MAX_PROTOCOL_BYTES, ProtocolUploadForm, StudyStatusForm
from .views import researcher_view, researchers_only


def protocol_upload_dir() -> Path:
    """Where relative paths inside an uploaded protocol (its captions file) are read from:
    an upload has no folder of its own, so it reads as if it were one of the shipped
    protocols (fixtures/protocols/, or protocols/ under FUSION_PROTOCOL_FILES_DIR)."""
    return settings.FUSION_PROTOCOL_FILES_DIR / "protocols"


# How each action reads on its button and in its confirmation (which status it needs is
# lifecycle.STUDY_TRANSITIONS').
ACTIONS = {
    "open": ("Open the study", "Participants can join with the invite link."),
    "pause": ("Pause the study", "Nobody new can join; people already in may finish."),
    "resume": ("Resume the study", "Participants can join again."),
    "close": ("Close the study", "Nobody can join or answer any more. This cannot be undone."),
}


def invite_links(study: Study) -> dict[str, str]:
    """The plain invite link, and the one to paste into the panel's study settings."""
    base = settings.FUSION_BASE_URL + reverse("studies:join", args=[study.invite_token])
    links = {"plain": base}
    rec = recruitment.recruitment_of(study)
    if rec is not None and rec.panel == "prolific":
        # Prolific substitutes {{%NAME%}} in a study URL with each participant's own value.
        params = (rec.participant_param, rec.study_param, rec.session_param)
        links["panel"] = base + "?" + "&".join(f"{p}={{{{%{p}%}}}}" for p in params)
    elif rec is not None:
        links["panel"] = f"{base}?{rec.participant_param}=..."
    return links


def _may_create_studies(request: HttpRequest, what: str) -> None:
    """PermissionDenied (a 403 naming the permission) unless the user may create studies."""
    if not selectors.user_may_create_studies(user=request.user):
        raise PermissionDenied(f"{what} needs the permission “Can add study” "
                               f"({selectors.CREATE_STUDY_PERMISSION}), which an admin gives to your account.")


@upload_cap(lambda: MAX_PROTOCOL_BYTES,
            may_upload=lambda request: selectors.user_may_create_studies(user=request.user))
@researchers_only
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def study_new(request: HttpRequest) -> HttpResponse:
    """Create a draft study by uploading its protocol; the uploader becomes its researcher."""
    _may_create_studies(request, "Creating a study")
    refused = upload_refused(request) if request.method == "POST" else None
    if refused is not None:  # past the cap while it arrived: nothing of it was kept
        form = refused_form(ProtocolUploadForm(request.POST), field="protocol", limit=refused)
        return render(request, "research/run/new.html", {"form": form}, status=413)
    form = ProtocolUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            assert request.user.is_authenticated  # researchers_only let in no one else
            study = lifecycle.study_create(protocol=data["protocol"], slug=data["slug"], title=data["title"],
                                          base_dir=str(protocol_upload_dir()), researchers=[request.user])
        except lifecycle.StudySetupError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("studies:run", slug=study.slug)
    return render(request, "research/run/new.html", {"form": form}, status=400 if form.errors else 200)


@researcher_view
def study_run(request: HttpRequest, study: Study, *, form: StudyStatusForm | None = None,
              error: str = "") -> HttpResponse:
    """The study's control page: status, invite link, places, and the actions it allows."""
    allowed = lifecycle.study_actions_allowed(status=study.status)
    return render(request, "research/run/run.html", {
        "study": study, "links": invite_links(study), "places": participants.study_places(study=study),
        "actions": [(name, ACTIONS[name][0]) for name in allowed], "confirm": form, "error": error,
        "confirm_text": ACTIONS[form.cleaned_data["action"]] if form is not None else None,
        "is_researcher": _is_researcher(request, study),
        "is_admin": selectors.user_is_admin(user=request.user),
        "may_copy": selectors.user_may_create_studies(user=request.user),
        "served_origin": _served_origin(request),
        "base_url": settings.FUSION_BASE_URL,
    }, status=409 if error else 200)


def _served_origin(request: HttpRequest) -> str:
    """The origin this page was reached at (scheme, host, port), to compare with FUSION_BASE_URL."""
    return request.build_absolute_uri("/").rstrip("/")


@require_POST
@researcher_view
def study_status(request: HttpRequest, study: Study) -> HttpResponse:
    """Change the study's status; the first POST asks for confirmation, the second acts."""
    form = StudyStatusForm(request.POST)
    if not form.is_valid():
        return study_run(request, study.slug, error="Unknown action.")
    action = form.cleaned_data["action"]
    if not form.cleaned_data["confirm"]:
        return study_run(request, study.slug, form=form)
    change = {"open": lifecycle.study_open, "pause": lifecycle.study_pause,
              "resume": lifecycle.study_resume, "close": lifecycle.study_close}[action]
    try:
        change(study=study)
    except lifecycle.StudySetupError as exc:
        return study_run(request, study.slug, error=str(exc))
    return redirect("studies:run", slug=study.slug)


def _is_researcher(request: HttpRequest, study: Study) -> bool:
    return request.user.is_authenticated and study.researchers.filter(pk=request.user.pk).exists()


def _own_study(request: HttpRequest, study: Study) -> None:
    if not _is_researcher(request, study):
        raise Http404("No such study.")


@researcher_view
def study_participants(request: HttpRequest, study: Study) -> HttpResponse:
    """Each participant's panel id, status, time, gold accuracy and exclusion, with what to do."""
    _own_study(request, study)
    rows = participants.participant_rows(study=study)
    return render(request, "research/run/participants.html", {
        "study": study, "rows": rows,
        "id_lists": [(s, len(ids), "\n".join(ids)) for s, ids in participants.ids_by_suggestion(rows).items()
                     if s != participants.Suggestion.WAIT],
        "panel": recruitment.panel_name(recruitment.recruitment_of(study)),
    })


@require_POST
@researcher_view
def study_release_place(request: HttpRequest, study: Study) -> HttpResponse:
    """Release a participant's place (``places.evaluator_release``: their answers are kept,
    the slot goes to the next newcomer, their panel id may start again with a new session).
    The study's own researchers only, as the participants page where the button is; admins
    have the same action in the Django admin. The participant is named by pseudonym."""
    _own_study(request, study)
    evaluator = Evaluator.objects.filter(study=study, pseudonym=request.POST.get("pseudonym", "")).first()
    if evaluator is None:
        messages.error(request, "No such participant in this study.")
    else:
        try:
            places.evaluator_release(evaluator=evaluator)
        except places.PlaceError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"The place of {evaluator.pseudonym} is released; their answers are kept.")
    return redirect("studies:participants", slug=study.slug)


@researcher_view
def study_participants_csv(request: HttpRequest, study: Study) -> HttpResponse:
    _own_study(request, study)
    response = HttpResponse(participants.participants_csv(participants.participant_rows(study=study)),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="participants-{study.slug}.csv"'
    return response


@require_POST
@researcher_view
def study_rehearsal_copy(request: HttpRequest, study: Study) -> HttpResponse:
    """Copy the study as a new draft for a dry run: its researchers (or an admin) only
    (``researcher_view``), and of them those who may create studies, since the copy is one."""
    _may_create_studies(request, "Copying a study for a rehearsal (a new study)")
    slug = request.POST.get("slug", "").strip() or f"{study.slug}-rehearsal"
    try:
        copy = lifecycle.study_copy_for_rehearsal(study=study, slug=slug[:50])
    except lifecycle.StudySetupError as exc:
        return study_run(request, study.slug, error=str(exc))
    return redirect("studies:run", slug=copy.slug)
