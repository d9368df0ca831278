"""Forms of a participant's way in: the panel id typed by hand, the practice answer."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from evalstudy.protocol import Recruitment

from .forms import CountAnswerForm
from .recruitment import participant_id_pattern


class ParticipantIdForm(forms.Form):
    """The participant's id on the panel, for a link that came without one."""

    typed_id = forms.CharField(max_length=128, strip=True, label="Your participant ID")

    def __init__(self, *args, recruitment: Recruitment, **kwargs):
        super().__init__(*args, **kwargs)
        self.recruitment = recruitment

    def clean_typed_id(self) -> str:
        value = self.cleaned_data["typed_id"]
        if not participant_id_pattern(self.recruitment).match(value):
            if self.recruitment.panel == "prolific":
                raise ValidationError("A Prolific ID is 24 letters and digits (0-9, a-f), as shown in your "
                                      "Prolific account.",
                                      code="not_prolific_id")
            raise ValidationError("Use letters, digits and . _ : @ - only.", code="bad_characters")
        return value


class PracticeAnswerForm(CountAnswerForm):
    """A count answer without a task token: the practice item is not a task."""

    token = None
