"""The admin of generation: batches, parts and image set imports as the workers left them;
checkpoints and their variants, changed only through the services that check them.

A checkpoint is registered from the generation page or ``manage.py register_checkpoint``
(its sha256 and config are read from the weights, never typed in); a variant gets its
checkpoint through the "assign a checkpoint" action, which calls
``variants_assign_checkpoints`` and so refuses a checkpoint whose stored config
contradicts the variant, or any change once the study has left draft.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from webapp.studies.admin import ViewOnlyAdmin, act_on_each
from webapp.studies.models import Checkpoint, Variant

from . import services
from .models import Batch, ImageSetImport, Part


class PartInline(admin.TabularInline):
    model = Part
    extra = 0
    can_delete = False
    fields = (
        "number", "variant", "status", "size", "images_done", "attempts", "requeues", "worker", "heartbeat_at", "error",
    )
    readonly_fields = fields


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Read-only; a batch is stopped by the "cancel" action (``batch_cancel``), never deleted:
    its rows are the provenance of the images it made, and deleting a running one would leave
    its workers writing for a batch that no longer exists."""

    list_display = ("id", "study", "status", "total_images", "cfg_scale", "steps", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("study", "status", "cfg_scale", "steps", "sampler", "part_size", "total_images", "note",
                       "created_by", "created_at", "started_at", "finished_at")
    inlines = [PartInline]
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # batches are launched from the generation page, which checks the study

    def has_delete_permission(self, request: HttpRequest, obj: Batch | None = None) -> bool:
        return False

    @admin.action(description="Cancel the selected batches", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        act_on_each(self, request, queryset, act=lambda batch: services.batch_cancel(batch=batch),
                    refused=services.GenerationError, label=lambda batch: f"Batch {batch.pk}", done="cancelled.")


@admin.register(Part)
class PartAdmin(admin.ModelAdmin):
    list_display = (
        "id", "batch", "number", "variant", "status", "images_done", "size", "attempts", "worker", "heartbeat_at",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in Part._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Part | None = None) -> bool:
        return False  # a part goes with its batch, which is cancelled, not deleted


@admin.register(ImageSetImport)
class ImageSetImportAdmin(admin.ModelAdmin):
    """Read-only; an import whose worker or message was lost (it stays queued or running, and
    the study takes no other) is released by the "mark failed" action (``imageset_import_abandon``)."""

    list_display = ("id", "study", "status", "upload_name", "attempts", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("study", "status", "upload_name", "upload_file", "resize", "summary", "problems", "attempts",
                       "created_by", "created_at", "started_at", "finished_at")
    actions = ["mark_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploaded on the generation page, which checks the study

    def has_delete_permission(self, request: HttpRequest, obj: ImageSetImport | None = None) -> bool:
        return False

    @admin.action(description="Mark the selected imports failed (their worker was lost)", permissions=["change"])
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[ImageSetImport]) -> None:
        act_on_each(self, request, queryset, act=lambda job: services.imageset_import_abandon(job=job),
                    refused=services.GenerationError, label=lambda job: f"Import {job.pk}", done="marked failed.")


@admin.register(Checkpoint)
class CheckpointAdmin(ViewOnlyAdmin):
    list_display = ("name", "sha256", "registered_at")


class AssignCheckpointForm(forms.Form):
    checkpoint = forms.ModelChoiceField(queryset=Checkpoint.objects.order_by("name"), required=False,
                                        empty_label="(none)")


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    """Every field read-only; the checkpoint changes through the action only."""

    list_display = ("study", "index", "name", "checkpoint")
    list_filter = ("study",)
    actions = ["assign_checkpoint"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # variants come from the study's protocol

    def has_delete_permission(self, request: HttpRequest, obj: Variant | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Variant | None = None) -> list[str]:
        return [f.name for f in Variant._meta.fields]

    @admin.action(description="Assign a checkpoint to the selected variants", permissions=["change"])
    def assign_checkpoint(self, request: HttpRequest, queryset: QuerySet[Variant]) -> HttpResponse | None:
        form = AssignCheckpointForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            checkpoint = form.cleaned_data["checkpoint"]
            try:
                services.variants_assign_checkpoints(assignments=[(v, checkpoint) for v in queryset])
            except services.GenerationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{queryset.count()} variants now use {checkpoint or 'no checkpoint'}.",
                                  messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/assign_checkpoint.html", {
            **self.admin_site.each_context(request), "title": "Assign a checkpoint", "form": form,
            "variants": queryset, "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })
