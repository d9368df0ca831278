"""A study's protocol, the schema: everything that must be fixed before any data is collected.

A protocol is a JSON (or YAML) document. `Protocol.from_dict` validates it and
fills in defaults (evalstudy.protocol.parse); `Protocol.to_dict` gives the
canonical form back, and `Protocol.content_hash` is the sha256 of that form's
canonical JSON, the fingerprint recorded when a study is frozen. Two protocols
with the same hash describe the same study, whatever their key order or whitespace.

The grid derived from a protocol (count prompts, captions, items) lives in
evalstudy.grid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from evalstudy.ranks import MAX_WIDTH, MIN_WIDTH

SCHEMA_VERSION = 1

# English number words. Count 1 uses the object's (or colour's) article instead.
NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen", "twenty",
)
MAX_PROMPT_COUNT = len(NUMBER_WORDS) - 1  # the largest count a prompt spells out: 20
# One ranking orders 2 (pairwise A/B) to 6 images: 6! = 720 orderings, which the
# analysis tabulates. The limits live in evalstudy.ranks, beside the check of a ranking.
MIN_RANKED_VARIANTS = MIN_WIDTH
MAX_RANKED_VARIANTS = MAX_WIDTH
# preference_task.design: "ranking" shows one image per variant (2 to MAX_RANKED_VARIANTS
# variants); "pairs" shows two of the variants per task, on the A/B page, for 3 to
# MAX_PAIRED_VARIANTS variants. Why 32: a study needs every one of the n (n - 1) / 2
# pairs shown several times for its own win rate (496 pairs at 32: already a study of
# thousands of pair tasks), every caption is drawn by every variant (32 images per
# caption and seed), and the analysis fits Bradley-Terry-Davidson strengths on each of
# the bootstrap's resamples (an n x n table each: 20 s and 0.75 GB for 2000 resamples of a
# 32-variant study of 2560 rankings on our 2-core machine; four times the pairs at 64).
PREFERENCE_DESIGNS = ("ranking", "pairs")
DEFAULT_DESIGN = PREFERENCE_DESIGNS[0]
MIN_PAIRED_VARIANTS = 3  # two variants in the ranking design are already pairwise A/B
MAX_PAIRED_VARIANTS = 32

DEFAULT_PROMPT_TEMPLATE = "{quantity} {colour} {noun}"
DEFAULT_QUESTION_TEMPLATE = "How many {plural} can you see?"
TEMPLATE_FIELDS = ("quantity", "colour", "noun", "singular", "plural", "count")
POSTHOC_METHODS = ("holm", "nemenyi")

# The analysis plan's defaults, each written once: the dataclasses and the parser below,
# analyze() without a protocol, the command line and the web app read them from here.
DEFAULT_POSTHOC = POSTHOC_METHODS[0]
DEFAULT_N_BOOT = 2000  # bootstrap resamples
MIN_N_BOOT = 100  # the fewest a protocol may ask for (and at least min_resamples(ci_level))
DEFAULT_CI_LEVEL = 0.95  # two-sided confidence level of every interval
DEFAULT_ALPHA = 0.05  # two-sided error rate of the tests (and of a primary plan's rule)
DEFAULT_POWER = 0.8  # the power an estimate of the evaluators still needed plans for


class ProtocolError(ValueError):
    """A protocol that cannot describe a study; the message names the offending field.
    ``code`` names the rule broken where a caller may act on it (PROTOCOL_ERROR_CODES),
    else None."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# ProtocolError.code values of the preference design's rules.
UNKNOWN_DESIGN = "unknown_design"
TOO_MANY_RANKED = "too_many_ranked_variants"
TOO_FEW_PAIRED = "too_few_paired_variants"
TOO_MANY_PAIRED = "too_many_paired_variants"
NOT_FOR_PAIRS = "not_for_pairs"
PROTOCOL_ERROR_CODES = (UNKNOWN_DESIGN, TOO_MANY_RANKED, TOO_FEW_PAIRED, TOO_MANY_PAIRED, NOT_FOR_PAIRS)


# ---------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectSpec:
    name: str
    singular: str
    plural: str
    article: str  # "a" or "an", the article used before `singular`


@dataclass(frozen=True)
class ColourSpec:
    name: str
    article: str  # article used when the colour follows "a"/"an" directly


@dataclass(frozen=True)
class CountTask:
    objects: tuple[ObjectSpec, ...]
    counts: tuple[int, ...]
    colours: tuple[ColourSpec, ...] = ()  # empty: no colour in the grid
    images_per_prompt: int = 10
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    question_template: str = DEFAULT_QUESTION_TEMPLATE


@dataclass(frozen=True)
class CaptionSource:
    """Captions listed inline, or `n` drawn with `seed` from an MS-COCO captions file."""

    path: str | None = None
    n: int | None = None
    seed: int = 0
    inline: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreferenceTask:
    """Rank the images of every variant for one caption (pairwise A/B when there are two),
    or, with ``design`` "pairs", choose the better of two variants' images per task.

    ``allow_ties``: an evaluator may mark images as equally good, stored as tied
    competition ranks (evalstudy.ranks); left out of the canonical form when False.
    ``design``: "ranking" (the default, left out of the canonical form) or "pairs"."""

    captions: CaptionSource
    images_per_caption: int = 1
    allow_ties: bool = False
    design: str = DEFAULT_DESIGN


@dataclass(frozen=True)
class Sampling:
    cfg_scale: float
    steps: int
    sampler: str
    seed: int = 0  # image k of every prompt uses seed + k, for every variant
    # Optional, for outside models: the images' side in pixels (a diffusers pipeline draws
    # them at this size, an imported image set is resized to it) and a diffusers scheduler
    # class that replaces the one a pipeline folder names. Left out of the canonical
    # document when unset, so the hash of a protocol without them does not change.
    size: int | None = None
    scheduler: str | None = None


@dataclass(frozen=True)
class GoldItem:
    id: str
    object: str
    count: int
    colour: str | None = None


@dataclass(frozen=True)
class QualityControl:
    gold: tuple[GoldItem, ...] = ()
    repeats: int = 0  # items each evaluator sees a second time


@dataclass(frozen=True)
class Evaluators:
    n: int
    overlap: int
    completion_code: str | None = None


@dataclass(frozen=True)
class Exclusions:
    """Evaluator-level exclusion rules; None switches a rule off."""

    min_gold_accuracy: float | None = None
    max_cant_tell_rate: float | None = None
    min_median_seconds: float | None = None
    min_consistency: float | None = None
    max_task_skip_rate: float | None = None  # skipped tasks over tasks shown


# Older protocol files name a rule by a word that meant two things; they stay valid.
EXCLUSION_ALIASES = {"max_skip_rate": "max_task_skip_rate"}


# The measures a primary comparison may name: a difference of two variants' eq. 9 mean
# error or eq. 10 match ratio (count task), or of their preference scores (rank task).
PRIMARY_MEASURES = ("match_ratio", "mean_abs_error", "score")


@dataclass(frozen=True)
class PrimaryComparison:
    """A pre-registered comparison: is `measure` of variant a different from b's, and the
    smallest difference worth finding (`effect`, in the measure's units, > 0)?"""

    a: str
    b: str
    measure: str
    effect: float


@dataclass(frozen=True)
class PrimaryPlan:
    """The primary comparisons, monitored at the planned looks (numbers of evaluators,
    increasing; the last is the most the study will pay for) by a group-sequential rule
    with overall two-sided error rate `alpha` (see evalstudy.sequential)."""

    comparisons: tuple[PrimaryComparison, ...]
    looks: tuple[int, ...]
    alpha: float = DEFAULT_ALPHA
    power: float = DEFAULT_POWER  # the power the "evaluators still needed" estimate plans for


@dataclass(frozen=True)
class AnalysisPlan:
    exclusions: Exclusions = field(default_factory=Exclusions)
    comparisons: tuple[tuple[str, str], ...] = ()  # (a, b): is a different from b?
    posthoc: str = DEFAULT_POSTHOC
    alpha: float = DEFAULT_ALPHA
    ci_level: float = DEFAULT_CI_LEVEL
    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0
    # Added after schema version 1: left out of the canonical form when unset
    # (OPTIONAL_ANALYSIS_KEYS), so that older protocols keep their hash.
    primary: PrimaryPlan | None = None
    judge_images_per_cell: int = 0  # extra images per grid cell read by the judge only


@dataclass(frozen=True)
class ReturnLink:
    """Where a participant is sent back to the panel, with the code that says why.

    ``url`` may hold ``{code}``, replaced by the code (e.g. Prolific's ``?cc={code}``)."""

    code: str | None = None
    url: str | None = None

    def href(self) -> str | None:
        return self.url.replace("{code}", self.code or "") if self.url else None


@dataclass(frozen=True)
class Recruitment:
    """How participants arrive from a panel and are sent back to it.

    ``panel`` "prolific" reads PROLIFIC_PID, STUDY_ID and SESSION_ID from the invite link;
    "generic" reads ``participant_param`` (and the study and session parameters if named).
    The completion code is ``evaluators.completion_code``; the other outcomes have their own."""

    panel: str = "generic"
    participant_param: str = "worker_id"
    study_param: str | None = None
    session_param: str | None = None
    ask_participant_id: bool = True  # a field to type it when the link carries none
    completion_url: str | None = None
    declined: ReturnLink = field(default_factory=ReturnLink)
    full: ReturnLink = field(default_factory=ReturnLink)
    closed: ReturnLink = field(default_factory=ReturnLink)


@dataclass(frozen=True)
class Consent:
    """What a participant reads before agreeing; shown as written, in plain language."""

    title: str | None = None
    purpose: str | None = None
    pay: str | None = None
    contact: str | None = None
    data_use: str | None = None
    retention: str | None = None
    ethics_ref: str | None = None
    # Seconds per task measured in a pilot; the time estimate uses it until enough
    # participants have finished for their own median.
    pilot_seconds_per_task: float | None = None


@dataclass(frozen=True)
class SceneSpec:
    """A rendered picture: `count` objects of one kind and colour."""

    object: str
    count: int
    colour: str | None = None


@dataclass(frozen=True)
class PracticeCount:
    object: str
    count: int
    colour: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class RankExample:
    """A caption and pictures listed from the best match to the worst, with why."""

    caption: str
    images: tuple[SceneSpec, ...]
    explanation: str = ""


@dataclass(frozen=True)
class Practice:
    count: PracticeCount | None = None
    rank_example: RankExample | None = None


# Sections added after schema version 1 was fixed: left out of the canonical form when
# absent, so that a protocol written before them keeps its hash.
MAX_IMAGE_SIDE = 2048  # pixels; sampling.size at most this
# How large one study may be: a 1 kB protocol must not make the server build (in a web
# request) more rows than it can hold. 100,000 images are a large human study's several
# times over (the paper's: a few hundred); a plan of 1,000,000 showings (tasks over all
# evaluators) took 3 s and 200 MB to draw on the development machine.
MAX_PLANNED_IMAGES = 100_000
MAX_PLANNED_SHOWINGS = 1_000_000
MAX_EVALUATORS = 100_000
TOO_LARGE = "too_large"  # ProtocolError.code of a study over those limits
OPTIONAL_SECTIONS = ("recruitment", "consent", "practice")
OPTIONAL_ANALYSIS_KEYS = {"primary": None, "judge_images_per_cell": 0}  # key: its unset value
PANELS = ("prolific", "generic")
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")


@dataclass(frozen=True)
class Protocol:
    name: str
    variants: tuple[str, ...]
    sampling: Sampling
    evaluators: Evaluators
    count_task: CountTask | None = None
    preference_task: PreferenceTask | None = None
    quality_control: QualityControl = field(default_factory=QualityControl)
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)
    description: str = ""
    schema_version: int = SCHEMA_VERSION
    recruitment: Recruitment | None = None
    consent: Consent | None = None
    practice: Practice | None = None

    @classmethod
    def from_dict(cls, d: Any) -> Protocol:
        """Validate a protocol document and fill in its defaults; raises ProtocolError."""
        from .parse import _parse_protocol  # parse builds these classes: imported when called

        return _parse_protocol(d)

    def to_dict(self) -> dict:
        """The canonical document: every field present, defaults written out (the optional
        sections in OPTIONAL_SECTIONS only when the protocol has them)."""
        doc = _to_plain(self)
        for name in ("size", "scheduler"):
            if doc["sampling"][name] is None:
                del doc["sampling"][name]
        for name in OPTIONAL_SECTIONS:
            if doc[name] is None:
                del doc[name]
        for name, unset in OPTIONAL_ANALYSIS_KEYS.items():
            if doc["analysis"][name] == unset:
                del doc["analysis"][name]
        # Added after version 1 was fixed: written only when on, so that every protocol
        # written before it keeps its hash.
        if doc["preference_task"] is not None and not doc["preference_task"]["allow_ties"]:
            del doc["preference_task"]["allow_ties"]
        if doc["preference_task"] is not None and doc["preference_task"]["design"] == DEFAULT_DESIGN:
            del doc["preference_task"]["design"]
        return doc

    def content_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of `to_dict()`."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode("utf-8")).hexdigest()

    @property
    def design(self) -> str:
        """The preference task's design, "ranking" or "pairs" ("ranking" without one)."""
        return self.preference_task.design if self.preference_task is not None else DEFAULT_DESIGN

    @property
    def is_pairs(self) -> bool:
        """Whether each rank task shows two of the variants (preference_task.design "pairs")."""
        return self.design == "pairs"

    @property
    def n_ranked(self) -> int:
        """How many images one ranking orders: one per variant (2 is pairwise A/B), or 2 in
        the pairs design, whatever the number of variants."""
        return 2 if self.is_pairs else len(self.variants)

    @property
    def allow_ties(self) -> bool:
        """Whether a ranking may tie images (False without a preference task)."""
        return self.preference_task is not None and self.preference_task.allow_ties

    def comparisons(self) -> tuple[tuple[str, str], ...]:
        """The planned paired comparisons, or intermediate-vs-early per conditioning."""
        return self.analysis.comparisons or default_comparisons(self.variants)


# ---------------------------------------------------------------------------
# Canonical form
# ---------------------------------------------------------------------------

def canonical_json(doc: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the form that is hashed."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_to_plain(x) for x in obj]
    return obj


def guess_article(word: str) -> str:
    """'an' before a written vowel, else 'a'; give the article explicitly for exceptions."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def default_comparisons(variants: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """("<c>-intermediate", "<c>-early") for every conditioning <c> that has both."""
    out = []
    for v in variants:
        if v.endswith("-intermediate"):
            early = v[: -len("-intermediate")] + "-early"
            if early in variants:
                out.append((v, early))
    return tuple(out)


def min_resamples(level: float) -> int:
    """The fewest bootstrap resamples that put one resample beyond each end of a two-sided
    `level` interval: 1 / ((1 - level) / 2), rounded up (40 at 95%). More are needed for
    steady ends (the protocol asks for at least 100; the default is DEFAULT_N_BOOT)."""
    return math.ceil(round(2.0 / (1.0 - level), 9))
