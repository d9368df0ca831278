"""Researchers' pages: their studies, a study's dashboard (live progress, results), exports.

Every view here is for the study's researchers and admins only. Anyone else who is logged in,
and any browser that joined a study as an evaluator, gets a 404, whether or not the study
exists; other visitors are sent to the researchers' login.
Views are thin: selectors read, services compute and store, exports format. No GET computes
an analysis: pages read the newest stored result (and say how old it is); only the
"Update results" task computes.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from webapp.studies import selectors as study_selectors
from webapp.studies.models import Study
from webapp.studies.selectors import session_evaluator_ids

from . import exports, progress, reports, selectors, services
from .forms import ReportDetailsForm
from .models import ReportDetails, ResultsUpdate, StudyResult

LOGIN_URL = reverse_lazy("research:login")
# Either kind of response (HttpResponse, StreamingHttpResponse): _attachment returns what it is given.
ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)


def researchers_only(view: Callable) -> Callable:
    """An evaluator's browser gets a 404; anyone else who is not logged in is sent to log in."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        if not request.user.is_authenticated and session_evaluator_ids(session=request.session):
            raise Http404("No such page.")
        return login_required(login_url=LOGIN_URL)(view)(request, *args, **kwargs)

    return wrapped


def researcher_view(view: Callable) -> Callable:
    """A view of one study (named by ``slug``) for its researchers and admins; 404 for anyone else."""

    @wraps(view)
    @researchers_only
    @never_cache
    def wrapped(request: HttpRequest, slug: str, *args: object, **kwargs: object) -> HttpResponseBase:

        study = selectors.researcher_study(user=request.user, slug=slug)
        if study is None:
            raise Http404("No such study.")
        return view(request, study, *args, **kwargs)

    return wrapped


def _attachment(response: ResponseT, study: Study, suffix: str) -> ResponseT:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{suffix.format(stamp=stamp)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------- login and home


class LoginView(auth_views.LoginView):
    template_name = "research/login.html"
    redirect_authenticated_user = True
    next_page = "research:home"  # a URL name: the view passes it through resolve_url()


class LogoutView(auth_views.LogoutView):
    next_page = "research:login"  # a URL name, as above


@researchers_only
@never_cache
def home(request: HttpRequest) -> HttpResponse:
    studies = selectors.researcher_studies(user=request.user)
    may_create = study_selectors.user_may_create_studies(user=request.user)
    return render(request, "research/home.html", {"studies": studies, "may_create_studies": may_create})


# --------------------------------------------------------------------------- dashboard


@researcher_view
@require_GET
def dashboard(request: HttpRequest, study: Study) -> HttpResponse:
    """Progress (drawn by dashboard.js from progress.json, which it asks for at once and then
    polls: the page does not compute it too) and the latest stored results.

    Viewing never starts an analysis: the results shown are the newest stored ones, marked
    out of date when answers have arrived since; "Update results" computes the current ones.
    """
    result = selectors.study_result_latest(study=study)
    fingerprint, n_responses = selectors.responses_fingerprint(
        study=study, include_simulated=result is not None and result.includes_simulated)
    details = ReportDetails.objects.filter(study=study).first()
    context = {
        "update": selectors.results_update_latest(study=study),
        "study": study,
        "result": result,
        "result_current": result is not None and result.fingerprint == fingerprint,
        "n_responses": n_responses,
        "analysis_part": reports.dashboard_analysis_part(study=study, result=result) if result else "",
        "protocol_rows": reports.protocol_rows(study.parsed_protocol),
        "planned_overlap": study.parsed_protocol.evaluators.overlap if study.parsed_protocol else None,
        "details_form": ReportDetailsForm(instance=details, initial=reports.details_from_consent(
            study.parsed_protocol) if details is None else None),
        "export_formats": _export_links(study),
        "n_simulated": study.evaluators.filter(is_simulated=True).count(),
    }
    return render(request, "research/dashboard.html", context)


def _export_links(study: Study) -> list[tuple[str, str, str]]:
    slug = study.slug
    return [
        ("Responses (CSV, evalstudy format)", reverse("research:export_csv", args=[slug]), "csv"),
        ("Responses (JSON Lines, with timestamps and provenance)", reverse("research:export_jsonl", args=[slug]),
         "jsonl"),
        ("Aggregates (JSON)", reverse("research:export_aggregates", args=[slug]), "aggregates"),
        ("Figures (PNG and SVG, zip)", reverse("research:export_figures", args=[slug]), "figures"),
        ("Frozen protocol (JSON)", reverse("research:export_protocol", args=[slug]), "protocol"),
        ("Report (HTML)", reverse("research:report_html", args=[slug]), "report"),
        ("Report (Markdown)", reverse("research:report_md", args=[slug]), "report-md"),
    ]


@researcher_view
@require_GET
def progress_json(request: HttpRequest, study: Study) -> JsonResponse:
    latest = selectors.study_result_latest(study=study)
    now, fingerprint = progress.study_progress_and_fingerprint(
        study=study, include_simulated=latest is not None and latest.includes_simulated)
    data: progress.ProgressJSON = {
        **now,
        "results": {
            "id": latest.pk if latest else None,
            "n_responses": latest.n_responses if latest else None,
            "current": latest is not None and latest.fingerprint == fingerprint,
            "update": selectors.results_update_status(study=study),
        },
    }
    return JsonResponse(data)


@researcher_view
@require_POST
def results_update(request: HttpRequest, study: Study) -> HttpResponse:
    """Queue "Update results" on a worker and return at once; the dashboard follows it."""
    _, created = services.results_update_request(study=study,
                                                 include_simulated=bool(request.POST.get("include_simulated")))
    messages.info(request, "Updating the results; this page shows them when they are ready." if created
                  else "An update of the results is already under way.")
    return redirect(reverse("research:dashboard", args=[study.slug]) + "#results")


@researcher_view
@require_GET
def results_json(request: HttpRequest, study: Study) -> HttpResponse:
    """The newest stored analysis (computed by "Update results", never here); its age and
    whether answers arrived since are in X-Results-* headers."""
    stored = selectors.study_result_stored(study=study)
    if stored.result is None:
        return JsonResponse({"error": _no_result_message(study, stored),
                             "update": reverse("research:results_update", args=[study.slug])}, status=404)
    return _result_headers(JsonResponse(stored.result.result), study, stored)


@researcher_view
@require_GET
def figure(request: HttpRequest, study: Study, name: str, fmt: str) -> HttpResponse:
    """A figure of the newest stored results (the dashboard shows these)."""
    result = selectors.study_result_latest(study=study)
    fig = selectors.result_figure(result=result, name=name, fmt=fmt) if result else None
    if fig is None:
        raise Http404("No such figure.")
    response = HttpResponse(bytes(fig.content), content_type=fig.content_type)
    if request.GET.get("download"):
        _attachment(response, study, f"{fig.filename}")
    return response


@researcher_view
@require_POST
def report_details(request: HttpRequest, study: Study) -> HttpResponse:
    form = ReportDetailsForm(request.POST, instance=ReportDetails.objects.filter(study=study).first())
    if form.is_valid():
        services.report_details_update(study=study, **form.cleaned_data)
        messages.success(request, "Report details saved.")
    else:
        messages.error(request, "Report details not saved: " + "; ".join(
            f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in form.errors.items()))
    return redirect(reverse("research:dashboard", args=[study.slug]) + "#report")


# --------------------------------------------------------------------------- exports


def _no_result_message(study: Study, stored: selectors.StoredResult) -> str:
    """Why a page has no results to show, and what to do about it."""
    if stored.n_responses == 0:
        return "No responses have been collected yet."
    update = stored.update
    if update is not None and update.state in ResultsUpdate.ACTIVE:
        return "The results are being updated; this page shows them when the update is done."
    if update is not None and update.state == ResultsUpdate.State.FAILED:
        return f"The last update of the results failed: {update.message}"
    return ('No results are stored yet: use "Update results" on the study\'s dashboard '
            f"({reverse('research:dashboard', args=[study.slug])}) to compute them.")


def _stale_note(stored: selectors.StoredResult) -> str:
    """'' when the stored result is of the responses as they stand; else how far behind it is."""
    if not stored.stale or stored.result is None:
        return ""
    return (f"stale: computed from {stored.result.n_responses} responses, {stored.n_responses} are stored now; "
            'update the results ("Update results" on the dashboard)')


def _result_headers(response: ResponseT, study: Study, stored: selectors.StoredResult) -> ResponseT:
    """The stored result's age and freshness, for clients of the JSON and file exports."""
    assert stored.result is not None
    computed_at = stored.result.computed_at
    response["X-Results-Computed-At"] = computed_at.isoformat()
    response["X-Results-Age-Seconds"] = str(int((timezone.now() - computed_at).total_seconds()))
    response["X-Results-Responses"] = str(stored.result.n_responses)
    response["X-Results-Stale"] = _stale_note(stored) or "no"
    return response


def _stored_result(study: Study) -> tuple[StudyResult, selectors.StoredResult] | HttpResponse:
    """The study's newest stored result for an export, or the 404 that says why there is none."""
    stored = selectors.study_result_stored(study=study)
    if stored.result is None:
        return HttpResponse(_no_result_message(study, stored), status=404, content_type="text/plain; charset=utf-8")
    return stored.result, stored


def _report_context(study: Study) -> dict:
    """The report of the newest stored result, with its age and a note when it is stale."""
    stored = selectors.study_result_stored(study=study)
    error = "" if stored.result is not None else _no_result_message(study, stored)
    context = reports.report_context(study=study, result=stored.result, analysis_error=error)
    context["stale_note"] = _stale_note(stored)
    return context


def _asks_simulated(request: HttpRequest) -> bool:
    """``?simulated=1``: a dry run's export, simulated evaluators included (and labelled)."""
    return request.GET.get("simulated") == "1"


@researcher_view
@require_GET
def export_csv(request: HttpRequest, study: Study) -> StreamingHttpResponse:
    response = StreamingHttpResponse(exports.csv_chunks(study=study, include_simulated=_asks_simulated(request)),
                                     content_type="text/csv; charset=utf-8")
    return _attachment(response, study, "responses-{stamp}.csv")


@researcher_view
@require_GET
def export_jsonl(request: HttpRequest, study: Study) -> StreamingHttpResponse:
    response = StreamingHttpResponse(exports.jsonl_chunks(study=study, salt=settings.FUSION_EXPORT_SALT,
                                                          include_simulated=_asks_simulated(request)),
                                     content_type="application/x-ndjson; charset=utf-8")
    return _attachment(response, study, "responses-{stamp}.jsonl")


@researcher_view
@require_GET
def export_aggregates(request: HttpRequest, study: Study) -> HttpResponse:
    found = _stored_result(study)
    if isinstance(found, HttpResponse):
        return found
    result, stored = found
    response = HttpResponse(exports.aggregates_json(result=result.result), content_type="application/json")
    return _result_headers(_attachment(response, study, "aggregates-{stamp}.json"), study, stored)


@researcher_view
@require_GET
def export_figures(request: HttpRequest, study: Study) -> HttpResponse:
    found = _stored_result(study)
    if isinstance(found, HttpResponse):
        return found
    result, stored = found
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for fig in result.figures.all():
            zf.writestr(fig.filename, bytes(fig.content))
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    return _result_headers(_attachment(response, study, "figures-{stamp}.zip"), study, stored)


@researcher_view
@require_GET
def export_protocol(request: HttpRequest, study: Study) -> HttpResponse:
    response = HttpResponse(exports.protocol_json(study=study), content_type="application/json")
    return _attachment(response, study, f"protocol-{study.protocol_hash[:12]}.json")


@researcher_view
@require_GET
def report_html(request: HttpRequest, study: Study) -> HttpResponse:
    response = HttpResponse(reports.report_html(_report_context(study)))
    if request.GET.get("download"):
        _attachment(response, study, "report-{stamp}.html")
    return response


@researcher_view
@require_GET
def report_md(request: HttpRequest, study: Study) -> HttpResponse:
    response = HttpResponse(reports.report_markdown(_report_context(study)),
                            content_type="text/markdown; charset=utf-8")
    return _attachment(response, study, "report-{stamp}.md")
