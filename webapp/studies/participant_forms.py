"""Forms of a participant's way in: the panel id typed by hand, the practice answer."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from evalstudy.protocol import Recruitment

from .forms import CountAnswerForm
from .recruitment import participant_id_problem


class ParticipantIdForm(forms.Form):
    """The participant's id on the panel, for a link that came without one."""

    typed_id = forms.CharField(max_length=128, strip=True, label="Your participant ID")

    def __init__(self, *args: Any, recruitment: Recruitment, **kwargs: Any) -> None:  # and forms.Form's
        super().__init__(*args, **kwargs)
        self.recruitment = recruitment

    def clean_typed_id(self) -> str:
        value = self.cleaned_data["typed_id"]
        problem = participant_id_problem(self.recruitment, value)
        if problem is not None:
            code = "not_prolific_id" if self.recruitment.panel == "prolific" else "bad_characters"
            raise ValidationError(problem, code=code)
        return value


class PracticeAnswerForm(CountAnswerForm):
    """A count answer without a task token: the practice item is not a task."""

    token = None  # type: ignore[assignment]  # Django's way to drop an inherited form field
