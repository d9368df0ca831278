"""The admin of studies: a client of the services, like every other page.

What the services guard cannot be edited here: a study's protocol and plan are frozen from
its creation (``study_create``), its status changes only through the actions below (which
call ``study_open`` / ``study_close``), and the rows the study's plan and its evaluators
made (items, slots, evaluators, entries, responses, images) are shown, never edited: an
edited response would leave the stored results stale under an unchanged fingerprint.
Checkpoints and their assignment to variants live in webapp/generation/admin.py.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

from . import lifecycle, places, selectors
from .models import CountResponse, Entry, Evaluator, Image, Item, Prompt, RankResponse, Slot, Study, Variant

# Fixed when the study is created from its protocol; part of what the results describe.
FROZEN_FIELDS = ("slug", "protocol", "protocol_hash", "plan_seed", "invite_token", "status",
                 "created_at", "opened_at", "closed_at")
# Shown to evaluators (completion code) or describing the study: editable while a draft.
DRAFT_FIELDS = ("title", "description", "completion_code")


def act_on_each(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *,
                act: Callable[[Any], object], refused: type[Exception], label: Callable[[Any], str],
                done: str, refusal_level: int = messages.ERROR) -> None:
    """An admin action through a service: `act` on each selected row, one message per row,
    the service's refusal (`refused`) as its message; a refused row is left as it is."""
    for obj in queryset:
        try:
            act(obj)
        except refused as exc:
            model_admin.message_user(request, f"{label(obj)}: {exc}", refusal_level)
        else:
            model_admin.message_user(request, f"{label(obj)} {done}", messages.SUCCESS)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows written by services only: listed and shown, never added, changed or deleted here.

    ``secret_fields`` are never a filter of the list: Django's changelist takes any field of
    the model from the URL (``?field__startswith=a``), which would read a hidden value a
    character at a time. Such a URL is refused as a bad request (400)."""

    secret_fields: tuple[str, ...] = ()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if lookup.split(LOOKUP_SEP, 1)[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ("index", "name", "checkpoint")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Study | None = None) -> bool:
        return False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "status", "created_at", "opened_at")
    list_filter = ("status",)
    search_fields = ("slug", "title")
    fields = FROZEN_FIELDS[:1] + DRAFT_FIELDS + ("researchers",) + FROZEN_FIELDS[1:]
    filter_horizontal = ("researchers",)
    inlines = [VariantInline]
    actions = ["open_studies", "close_studies"]

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status != Study.Status.DRAFT:
            return FROZEN_FIELDS + DRAFT_FIELDS
        return FROZEN_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a study is made from a protocol: `manage.py create_study` (study_create)

    def has_delete_permission(self, request: HttpRequest, obj: Study | None = None) -> bool:
        return obj is None or obj.status == Study.Status.DRAFT  # never a study with answers

    def get_actions(self, request: HttpRequest) -> dict[str, tuple[Callable[..., str], str, str] | None]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would delete open studies with their answers
        return actions

    @admin.action(description="Open the selected draft studies (every image must exist)", permissions=["change"])
    def open_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        act_on_each(self, request, queryset, act=lambda study: lifecycle.study_open(study=study),
                    refused=lifecycle.StudySetupError, label=lambda study: study.slug, done="is open.")

    @admin.action(description="Close the selected open or paused studies (no more answers)", permissions=["change"])
    def close_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        act_on_each(self, request, queryset, act=lambda study: lifecycle.study_close(study=study),
                    refused=lifecycle.StudySetupError, label=lambda study: study.slug, done="is closed.",
                    refusal_level=messages.WARNING)


@admin.register(Prompt)
class PromptAdmin(ViewOnlyAdmin):
    list_display = ("text", "kind", "study", "object", "count")
    list_filter = ("kind", "study")


@admin.register(Image)
class ImageAdmin(ViewOnlyAdmin):
    list_display = ("public_id", "study", "variant", "prompt", "seed", "source", "judge_only")
    list_filter = ("study", "source", "judge_only", "variant__name")


@admin.register(Item)
class ItemAdmin(ViewOnlyAdmin):
    list_display = ("id", "study", "task", "prompt", "seed", "is_gold")
    list_filter = ("study", "task", "is_gold")


@admin.register(Slot)
class SlotAdmin(ViewOnlyAdmin):
    list_display = ("study", "number", "seed")


# What the panel knows a participant by. Only the study's own researchers see them, on its
# participants page (webapp/research/run_views.py): for an admin of the site they are a
# person's identity, and the session id is what keeps a place its participant's own
# (joining.evaluator_join: whoever has it may continue the place and collect the code).
PANEL_ID_FIELDS = ("external_id", "external_study_id", "external_session_id")


@admin.register(Evaluator)
class EvaluatorAdmin(ViewOnlyAdmin):
    list_display = ("pseudonym", "study", "joined_at", "consented_at", "finished_at", "released_at", "is_simulated")
    list_filter = ("study", "is_simulated")
    # Not by external id: a search would tell any admin whether a panel id took part, and where.
    search_fields = ("pseudonym",)
    secret_fields = ("browser", *PANEL_ID_FIELDS)
    actions = ["release_places"]

    def get_exclude(self, request: HttpRequest, obj: Evaluator | None = None) -> tuple[str, ...]:
        """The browser token always (a live session's credential); the panel ids unless
        ``request.user`` is one of the evaluator's study's researchers."""
        user = request.user
        own = obj is not None and user.is_authenticated and obj.study.researchers.filter(pk=user.pk).exists()
        return ("browser",) if own else ("browser", *PANEL_ID_FIELDS)

    def has_release_permission(self, request: HttpRequest) -> bool:
        """Admins only: the rows stay view-only; releasing goes through ``places.evaluator_release``."""
        return selectors.user_is_admin(user=request.user)

    @admin.action(description="Release the selected participants' places (their answers are kept)",
                  permissions=["release"])
    def release_places(self, request: HttpRequest, queryset: QuerySet[Evaluator]) -> None:
        act_on_each(self, request, queryset, act=lambda ev: places.evaluator_release(evaluator=ev),
                    refused=places.PlaceError, label=lambda ev: ev.pseudonym,
                    done="has had their place released; their answers are kept.")


@admin.register(Entry)
class EntryAdmin(ViewOnlyAdmin):
    list_display = ("evaluator", "index", "item")


@admin.register(CountResponse)
class CountResponseAdmin(ViewOnlyAdmin):
    list_display = ("evaluator", "item", "answer", "cant_tell", "seconds", "created_at")
    exclude = secret_fields = ("browser",)


@admin.register(RankResponse)
class RankResponseAdmin(ViewOnlyAdmin):
    list_display = ("evaluator", "item", "width", "skipped", "skip_reason", "seconds", "created_at")
    exclude = secret_fields = ("browser",)
