"""Evaluator answer forms. They validate shape only; services check ownership and state."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from evalstudy.protocol import MAX_RANKED_VARIANTS

from .models import RankResponse

MAX_PLAUSIBLE_COUNT = 1000  # an evaluator's answer above this is a typing slip, refused
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
        if value > MAX_PLAUSIBLE_COUNT:
            raise ValidationError(f"A count above {MAX_PLAUSIBLE_COUNT} is not plausible here.", code="too_large")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        answer, cant_tell = data.get("answer"), data.get("cant_tell")
        if self.errors:
            return data
        if cant_tell and answer is not None:
            raise ValidationError("Give a number or choose \u201ccan't tell\u201d, not both.", code="both")
        if not cant_tell and answer is None:
            raise ValidationError("Type how many you can see, or choose \u201ccan't tell\u201d.", code="missing")
        return data


# The pairwise page's three buttons, as ranks of (left, right): 1 = better.
PAIRWISE_CHOICES = {"left": (1, 2), "right": (2, 1), "same": (1, 1)}


class RankAnswerForm(forms.Form):
    """Ranks of the images in screen order (``rank_0`` is the first image), a pairwise
    choice (``choice``: left, right or same), "all equally good" (``all_equal``), or a
    skip. Shape only: the form does not know the study, so the width (how many ranks),
    whether ties are allowed and whether the ranks form a ranking are the service's
    checks, with the protocol at hand. ``ranks`` has one entry per rank field, None where
    none was given (``ranks`` is None for a skip and for "all equally good")."""

    token = forms.CharField(max_length=500)
    choice = forms.ChoiceField(choices=[("", "")] + [(c, c) for c in PAIRWISE_CHOICES], required=False)
    all_equal = forms.BooleanField(required=False)
    skip_reason = forms.ChoiceField(choices=[("", "")] + list(RankResponse.SkipReason.choices), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # forms.Form's arguments (data, initial, ...)
        super().__init__(*args, **kwargs)
        message = f"Each rank is a whole number from 1 (best) to the number of images (at most {MAX_RANKED_VARIANTS})."
        for i in range(MAX_RANKED_VARIANTS):
            self.fields[f"rank_{i}"] = forms.TypedChoiceField(
                choices=[("", "-")] + [(str(r), str(r)) for r in range(1, MAX_RANKED_VARIANTS + 1)],
                coerce=int, required=False, empty_value=None, error_messages={"invalid_choice": message},
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        given = [data.get(f"rank_{i}") for i in range(MAX_RANKED_VARIANTS)]
        choice, all_equal = data.get("choice"), data.get("all_equal")
        any_rank = any(r is not None for r in given)
        answers = sum((any_rank, bool(choice), bool(all_equal), bool(data.get("skip_reason"))))
        if answers > 1:
            raise ValidationError("Choose one answer: rank the images, or choose one button.", code="both")
        if choice:
            data["ranks"] = list(PAIRWISE_CHOICES[choice])
        elif all_equal or data.get("skip_reason"):
            data["ranks"] = None
        elif not any_rank:
            raise ValidationError("Rank the images (1 = best), or skip with a reason.", code="incomplete")
        else:
            data["ranks"] = given
        return data
