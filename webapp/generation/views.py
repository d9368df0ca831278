"""Admin pages for generation batches (plan, launch, watch, retry, cancel) and image set
imports (upload, watch).

Staff only: anonymous visitors are sent to the login page, signed-in non-staff get a 404
for the pages (which do not even confirm that a study exists) and everyone else a 403
from the JSON endpoint. Views are thin: forms check shape,
services check state and write, selectors read.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from webapp.studies.models import Study
from webapp.studies.selectors import user_is_admin
from webapp.uploads import refused_form, upload_cap, upload_refused

from . import follow, imagesets, selectors, services
from .forms import CheckpointRegisterForm, ImageSetForm, LaunchForm, VariantCheckpointsForm
from .imagesets import MAX_UPLOAD_BYTES
from .models import Batch, ImageSetImport


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous visitors are sent to log in; signed-in non-staff get a 404."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_is_admin(user=request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped


@never_cache
@staff_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/index.html", {
        "rows": selectors.studies_with_batches(), "checkpoints": selectors.checkpoints_all(),
        "register_form": CheckpointRegisterForm(),
    })


def _study_page(request: HttpRequest, study: Study, *, launch_form: LaunchForm | None = None,
                checkpoints_form: VariantCheckpointsForm | None = None,
                register_form: CheckpointRegisterForm | None = None, imageset_form: ImageSetForm | None = None,
                status: int = 200) -> HttpResponse:
    plan = selectors.study_plan(study=study)
    variants = [row.variant for row in plan.variants]
    batch = selectors.study_latest_batch(study=study)
    return render(request, "generation/study.html", {
        "study": study,
        "plan": plan,
        "batch": batch,
        "progress": selectors.batch_progress(batch=batch) if batch else None,
        "imageset": selectors.study_latest_import(study=study),
        "launch_form": launch_form or LaunchForm(initial={"cfg_scale": plan.cfg_scale, "steps": plan.steps}),
        "checkpoints_form": checkpoints_form or VariantCheckpointsForm(variants=variants),
        "register_form": register_form or CheckpointRegisterForm(),
        "imageset_form": imageset_form or ImageSetForm(),
    }, status=status)


@never_cache
@staff_required
@require_GET
def study(request: HttpRequest, slug: str) -> HttpResponse:
    return _study_page(request, get_object_or_404(Study, slug=slug))


@staff_required
@require_POST
def launch(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    form = LaunchForm(request.POST)
    if not form.is_valid():
        return _study_page(request, study, launch_form=form, status=400)
    data = form.cleaned_data
    try:
        batch = services.batch_launch(
            study=study, cfg_scale=data["cfg_scale"], steps=data["steps"], part_size=data["part_size"],
            open_when_complete=data["open_when_complete"], user=request.user,
        )
    except services.GenerationError as exc:
        form.add_error(None, str(exc))
        return _study_page(request, study, launch_form=form, status=409)
    messages.success(request, f"Batch {batch.pk} launched: {follow.batch_size_text(batch)}.")
    return redirect("generation:study", slug=slug)


def import_limit() -> int:
    """The most bytes an image set's upload may have (FUSION_IMPORT_MAX_BYTES)."""
    return int(getattr(settings, "FUSION_IMPORT_MAX_BYTES", MAX_UPLOAD_BYTES))


@upload_cap(import_limit, may_upload=lambda request: user_is_admin(user=request.user))
@staff_required
@require_POST
def import_images(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue an uploaded image set's zip for import on a worker; the study's page follows it.

    The import decodes, resizes and re-encodes every image (minutes for a large set), far
    longer than a request may take: the request only keeps the file and queues the task
    (``services.imageset_import_request``, ``import_runner``)."""
    study = get_object_or_404(Study, slug=slug)
    refused = upload_refused(request)  # past the cap while it arrived: nothing of it was kept
    if refused is not None:
        form = refused_form(ImageSetForm(request.POST), field="upload", limit=refused)
        return _study_page(request, study, imageset_form=form, status=413)
    form = ImageSetForm(request.POST, request.FILES)
    if not form.is_valid():
        return _study_page(request, study, imageset_form=form, status=400)
    upload = form.cleaned_data["upload"]
    try:
        job = services.imageset_import_request(study=study, upload=upload, resize=form.cleaned_data["resize"],
                                               user=request.user)
    except services.GenerationError as exc:
        form.add_error(None, str(exc))
        if study.status != Study.Status.DRAFT:  # its page has no import form to show the error beside
            messages.error(request, str(exc))
        return _study_page(request, study, imageset_form=form, status=409)
    messages.success(request, f"{job.upload_name} is queued for import {job.pk}: a worker checks and stores it, "
                              "and this page shows how it went.")
    return redirect("generation:study", slug=slug)


@staff_required
@require_POST
def assign_checkpoints(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    form = VariantCheckpointsForm(request.POST, variants=study.variants.order_by("index"))
    if not form.is_valid():
        return _study_page(request, study, checkpoints_form=form, status=400)
    try:
        services.variants_assign_checkpoints(assignments=form.assignments())
    except services.GenerationError as exc:
        form.add_error(None, str(exc))
        return _study_page(request, study, checkpoints_form=form, status=409)
    messages.success(request, "Checkpoints saved.")
    return redirect("generation:study", slug=slug)


@staff_required
@require_POST
def register_checkpoint(request: HttpRequest) -> HttpResponse:
    """Register a checkpoint from the index page, or from a study's page (its form sends
    ``study``: the page to come back to, which must exist before anything is registered)."""
    form = CheckpointRegisterForm(request.POST)
    next_slug = request.POST.get("study", "")
    study = get_object_or_404(Study, slug=next_slug) if next_slug else None
    if form.is_valid():
        try:
            checkpoint = services.checkpoint_register(name=form.cleaned_data["name"], path=form.cleaned_data["path"])
        except services.GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Registered {checkpoint.name} (sha256 {checkpoint.sha256[:12]}…).")
            if study is not None:
                return redirect("generation:study", slug=study.slug)
            return redirect("generation:index")
    if study is not None:
        return _study_page(request, study, register_form=form, status=400)
    return render(request, "generation/index.html", {
        "rows": selectors.studies_with_batches(), "checkpoints": selectors.checkpoints_all(), "register_form": form,
    }, status=400)


@never_cache
@require_GET
def progress(request: HttpRequest, pk: int) -> JsonResponse:
    if not user_is_admin(user=request.user):
        return JsonResponse({"error": "Staff only."}, status=403)
    batch = get_object_or_404(Batch, pk=pk)
    return JsonResponse(selectors.batch_progress(batch=batch))


@never_cache
@staff_required
@require_GET
def manifest_template(request: HttpRequest, slug: str) -> HttpResponse:
    """The manifest an image set for the study must hold (``image_set_template``), as a CSV
    download: every variant without images or a checkpoint, or the one named by ``?variant=``."""
    study = get_object_or_404(Study, slug=slug)
    variants = None
    if "variant" in request.GET:
        variants = list(study.variants.filter(name=request.GET["variant"]))
        if not variants:
            raise Http404("No such variant.")
    response = HttpResponse(imagesets.manifest_csv(selectors.manifest_template(study=study, variants=variants)),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-manifest.csv"'
    return response


@never_cache
@require_GET
def import_status(request: HttpRequest, pk: int) -> JsonResponse:
    if not user_is_admin(user=request.user):
        return JsonResponse({"error": "Staff only."}, status=403)
    job = get_object_or_404(ImageSetImport.objects.select_related("study"), pk=pk)
    return JsonResponse(selectors.imageset_import_status(job=job))


@staff_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch.objects.select_related("study"), pk=pk)
    try:
        n = services.batch_retry_failed(batch=batch)
    except services.GenerationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{follow.counted(n, 'failed part')} queued again.")
    return redirect("generation:study", slug=batch.study.slug)


@staff_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch.objects.select_related("study"), pk=pk)
    try:
        services.batch_cancel(batch=batch)
    except services.GenerationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Batch {batch.pk} cancelled.")
    return redirect("generation:study", slug=batch.study.slug)
