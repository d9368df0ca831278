from django.contrib import admin

from .models import Checkpoint, CountResponse, Entry, Evaluator, Image, Item, Prompt, RankResponse, Slot, Study, Variant


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "status", "created_at", "opened_at")
    list_filter = ("status",)
    search_fields = ("slug", "title")
    readonly_fields = ("protocol_hash", "invite_token", "created_at", "opened_at", "closed_at")
    filter_horizontal = ("researchers",)
    inlines = [VariantInline]


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ("name", "sha256", "registered_at")
    readonly_fields = ("sha256", "config", "registered_at")


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("text", "kind", "study", "object", "count")
    list_filter = ("kind", "study")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("public_id", "study", "variant", "prompt", "seed", "source")
    list_filter = ("study", "source", "variant__name")
    readonly_fields = ("public_id", "provenance", "created_at")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "task", "prompt", "seed", "is_gold")
    list_filter = ("study", "task", "is_gold")


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ("study", "number", "seed")


@admin.register(Evaluator)
class EvaluatorAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "study", "joined_at", "finished_at", "is_simulated")
    list_filter = ("study", "is_simulated")
    search_fields = ("pseudonym", "external_id")


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ("evaluator", "index", "item")


@admin.register(CountResponse)
class CountResponseAdmin(admin.ModelAdmin):
    list_display = ("evaluator", "item", "answer", "cant_tell", "seconds", "created_at")


@admin.register(RankResponse)
class RankResponseAdmin(admin.ModelAdmin):
    list_display = ("evaluator", "item", "skipped", "skip_reason", "seconds", "created_at")
