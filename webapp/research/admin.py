from django.contrib import admin

from .models import ReportDetails, StudyResult


@admin.register(StudyResult)
class StudyResultAdmin(admin.ModelAdmin):
    list_display = ("study", "n_responses", "n_boot", "seed", "computed_at", "seconds")
    list_filter = ("study",)
    readonly_fields = ("study", "fingerprint", "n_responses", "n_boot", "seed", "result", "seconds", "computed_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ReportDetails)
class ReportDetailsAdmin(admin.ModelAdmin):
    list_display = ("study", "recruitment", "pay_per_evaluator", "pay_currency", "updated_at")
