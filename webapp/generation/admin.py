from django.contrib import admin

from .models import Batch, Part


class PartInline(admin.TabularInline):
    model = Part
    extra = 0
    can_delete = False
    fields = ("number", "variant", "status", "size", "images_done", "attempts", "requeues", "worker", "heartbeat_at", "error")
    readonly_fields = fields


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "status", "total_images", "cfg_scale", "steps", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("study", "status", "cfg_scale", "steps", "sampler", "part_size", "total_images", "note",
                       "created_by", "created_at", "started_at", "finished_at")
    inlines = [PartInline]

    def has_add_permission(self, request) -> bool:
        return False  # batches are launched from the generation page, which checks the study


@admin.register(Part)
class PartAdmin(admin.ModelAdmin):
    list_display = ("id", "batch", "number", "variant", "status", "images_done", "size", "attempts", "worker", "heartbeat_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in Part._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
