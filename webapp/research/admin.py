from django import forms
from django.contrib import admin
from django.http import HttpRequest

from . import services
from .models import ReportDetails, StudyResult


@admin.register(StudyResult)
class StudyResultAdmin(admin.ModelAdmin):
    list_display = ("study", "n_responses", "n_boot", "seed", "computed_at", "seconds")
    list_filter = ("study",)
    readonly_fields = ("study", "fingerprint", "n_responses", "n_boot", "seed", "result", "seconds", "computed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ReportDetails)
class ReportDetailsAdmin(admin.ModelAdmin):
    list_display = ("study", "recruitment", "pay_per_evaluator", "pay_currency", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ReportDetails | None = None) -> tuple[str, ...]:
        return ("study", "updated_at") if obj is not None else ("updated_at",)

    def save_model(self, request: HttpRequest, obj: ReportDetails, form: forms.ModelForm, change: bool) -> None:
        """Through ``report_details_update``, as the researcher's page saves them."""
        fields = {name: form.cleaned_data[name] for name in services.REPORT_DETAIL_FIELDS
                  if name in form.cleaned_data}
        saved = services.report_details_update(study=obj.study, **fields)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at
