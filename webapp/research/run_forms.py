"""Forms of the researchers' study pages: a protocol upload, a change of status."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from evalstudy.protocol import NotJSONError, Protocol, ProtocolError, json_document

MAX_PROTOCOL_BYTES = 1_000_000


class ProtocolUploadForm(forms.Form):
    protocol = forms.FileField(label="Protocol file (JSON)",
                               help_text="evalstudy's format, e.g. fixtures/protocols/demo.json")
    slug = forms.SlugField(max_length=50, help_text="The study's name in addresses: letters, digits, hyphens.")
    title = forms.CharField(max_length=200, required=False,
                            help_text="Shown to researchers; the protocol's name if empty.")

    def clean_protocol(self) -> dict:
        """The parsed and validated document. A protocol error names its field
        (``protocol_field``), e.g. ``count_task.counts[0]``."""
        upload = self.cleaned_data["protocol"]
        if upload.size > MAX_PROTOCOL_BYTES:
            raise ValidationError(f"A protocol is at most {MAX_PROTOCOL_BYTES // 1000} kB.", code="too_large")
        try:
            doc = json_document(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, NotJSONError) as exc:
            raise ValidationError(f"Not a JSON file: {exc}", code="not_json") from exc
        try:
            Protocol.from_dict(doc)
        except ProtocolError as exc:
            where, _, message = str(exc).partition(": ")
            self.protocol_field = where if message else ""
            self.protocol_message = message or str(exc)
            raise ValidationError(str(exc), code="invalid_protocol") from exc
        return doc


class StudyStatusForm(forms.Form):
    ACTIONS = (("open", "Open"), ("pause", "Pause"), ("resume", "Resume"), ("close", "Close"))

    action = forms.ChoiceField(choices=ACTIONS)
    confirm = forms.BooleanField(required=False)
