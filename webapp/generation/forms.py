"""Admin forms of the generation pages. They check shape; services check state and write."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from webapp.studies.models import Checkpoint, Variant

from .models import MAX_PART_SIZE


class LaunchForm(forms.Form):
    """A batch's sampling settings; blank fields take the protocol's values."""

    cfg_scale = forms.FloatField(required=False, min_value=0.0, max_value=100.0, label="CFG scale")
    steps = forms.IntegerField(required=False, min_value=1, max_value=1000)
    part_size = forms.IntegerField(initial=MAX_PART_SIZE, min_value=1, max_value=MAX_PART_SIZE,
                                   help_text=f"Images per task (at most {MAX_PART_SIZE}).")
    open_when_complete = forms.BooleanField(required=False, label="Open the study when every image exists")

    def clean_cfg_scale(self) -> float | None:
        value = self.cleaned_data["cfg_scale"]
        if value is not None and not math.isfinite(value):
            raise ValidationError("The CFG scale must be a finite number.", code="not_finite")
        return value


class CheckpointRegisterForm(forms.Form):
    name = forms.CharField(max_length=200)
    path = forms.CharField(
        max_length=1000, help_text="A checkpoint folder (or its model.safetensors), or a diffusers pipeline folder "
                                   "(saved by save_pretrained), on the shared path."
    )


class VariantCheckpointsForm(forms.Form):
    """One checkpoint per variant of the study."""

    def __init__(self, *args: Any, variants: Iterable[Variant], **kwargs: Any) -> None:  # and forms.Form's
        super().__init__(*args, **kwargs)
        self.variants = list(variants)
        for v in self.variants:
            self.fields[self.field_name(v)] = forms.ModelChoiceField(
                queryset=Checkpoint.objects.order_by("name"), required=False, label=v.name,
                initial=v.checkpoint_id, empty_label="(none)",
            )

    @staticmethod
    def field_name(variant: Variant) -> str:
        return f"variant_{variant.pk}"

    def assignments(self) -> list[tuple[Variant, Checkpoint | None]]:
        """(variant, checkpoint or None) pairs, once valid."""
        return [(v, self.cleaned_data.get(self.field_name(v))) for v in self.variants]


class ImageSetForm(forms.Form):
    """An image set's zip (images and manifest.csv or manifest.json at its top)."""

    upload = forms.FileField(label="Image set (.zip)",
                             help_text="Images and a manifest (variant, prompt or caption, seed or index, file).")
    resize = forms.BooleanField(required=False, label="Resize to the protocol's sampling.size")
