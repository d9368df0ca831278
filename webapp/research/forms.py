"""The researcher's form: what the report states beyond the protocol. Shape only; the service saves."""
from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .models import ReportDetails

CURRENCY = re.compile(r"^[A-Z]{3}$")


class ReportDetailsForm(forms.ModelForm):
    class Meta:
        model = ReportDetails
        fields = ("recruitment", "expertise", "training", "pay_per_evaluator", "pay_currency", "ethics", "notes")
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def clean_pay_currency(self) -> str:
        code = self.cleaned_data["pay_currency"].strip().upper()
        if code and not CURRENCY.match(code):
            raise ValidationError("Use a three-letter ISO 4217 code, like GBP or EUR.", code="bad_currency")
        return code

    def clean(self) -> dict[str, Any]:
        # ModelForm.clean() returns self.cleaned_data; the stubs type that return `dict | None`
        # (an override may return None), so the dict is read from the attribute itself.
        super().clean()
        data = self.cleaned_data
        if data.get("pay_per_evaluator") is not None and not data.get("pay_currency"):
            raise ValidationError("Give the currency of the pay.", code="pay_without_currency")
        return data
