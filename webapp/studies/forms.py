"""Evaluator answer forms. They validate shape only; services check ownership and state."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from .models import RankResponse

MAX_COUNT = 1000
# ASCII digits only: str.isdigit() also accepts "²", "①" or "٣", which int() then
# either refuses (a crash) or reads as a number the evaluator never typed. No sign either:
# "-0" and "+3" are not how anyone writes a count, and int() would read "-0" as 0.
ASCII_COUNT = re.compile(r"[0-9]+", re.ASCII)


class CountAnswerForm(forms.Form):
    token = forms.CharField(max_length=500)
    answer = forms.CharField(required=False, max_length=12)
    cant_tell = forms.BooleanField(required=False)

    def clean_answer(self) -> int | None:
        raw = self.cleaned_data["answer"].strip()
        if raw == "":
            return None
        if not ASCII_COUNT.fullmatch(raw):
            raise ValidationError("Type a whole number with the digits 0 to 9 only, like 3.", code="not_integer")
        value = int(raw)
        if value > MAX_COUNT:
            raise ValidationError(f"A count above {MAX_COUNT} is not plausible here.", code="too_large")
        return value

    def clean(self) -> dict:
        data = super().clean()
        answer, cant_tell = data.get("answer"), data.get("cant_tell")
        if self.errors:
            return data
        if cant_tell and answer is not None:
            raise ValidationError("Give a number or choose \u201ccan't tell\u201d, not both.", code="both")
        if not cant_tell and answer is None:
            raise ValidationError("Type how many you can see, or choose \u201ccan't tell\u201d.", code="missing")
        return data


class RankAnswerForm(forms.Form):
    """Ranks of the four images in screen order (``rank_0`` is the top-left image), or a skip."""

    token = forms.CharField(max_length=500)
    rank_0 = forms.TypedChoiceField(
        choices=[("", "-")] + [(str(i), str(i)) for i in range(1, 5)], coerce=int, required=False, empty_value=None
    )
    rank_1 = forms.TypedChoiceField(
        choices=[("", "-")] + [(str(i), str(i)) for i in range(1, 5)], coerce=int, required=False, empty_value=None
    )
    rank_2 = forms.TypedChoiceField(
        choices=[("", "-")] + [(str(i), str(i)) for i in range(1, 5)], coerce=int, required=False, empty_value=None
    )
    rank_3 = forms.TypedChoiceField(
        choices=[("", "-")] + [(str(i), str(i)) for i in range(1, 5)], coerce=int, required=False, empty_value=None
    )
    skip_reason = forms.ChoiceField(choices=[("", "")] + list(RankResponse.SkipReason.choices), required=False)

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        ranks = [data.get(f"rank_{i}") for i in range(4)]
        if data.get("skip_reason"):
            if any(r is not None for r in ranks):
                raise ValidationError("Either rank the images or skip, not both.", code="both")
            data["ranks"] = None
            return data
        if any(r is None for r in ranks):
            raise ValidationError(
                "Rank all four images (1 = best, 4 = worst), or skip with a reason.", code="incomplete"
            )
        if sorted(ranks) != [1, 2, 3, 4]:
            raise ValidationError("Each rank 1, 2, 3 and 4 must be used exactly once.", code="not_permutation")
        data["ranks"] = ranks
        return data
