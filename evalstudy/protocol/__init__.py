"""A study's protocol: everything that must be fixed before any data is collected.

`schema` holds the frozen dataclasses, the canonical form and its hash; `parse`
validates a document and fills in the defaults (`Protocol.from_dict`,
`load_protocol`). The grid derived from a protocol (prompts, captions, items)
lives in evalstudy.design.
"""

from .parse import load_protocol
from .schema import (
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_QUESTION_TEMPLATE,
    EXCLUSION_ALIASES,
    MAX_COUNT,
    MAX_IMAGE_SIDE,
    MAX_RANKED_VARIANTS,
    MIN_RANKED_VARIANTS,
    NUMBER_WORDS,
    OPTIONAL_ANALYSIS_KEYS,
    OPTIONAL_SECTIONS,
    PANELS,
    POSTHOC_METHODS,
    PRIMARY_MEASURES,
    PROLIFIC_PARAMS,
    SCHEMA_VERSION,
    TEMPLATE_FIELDS,
    AnalysisPlan,
    CaptionSource,
    ColourSpec,
    Consent,
    CountTask,
    Evaluators,
    Exclusions,
    GoldItem,
    ObjectSpec,
    Practice,
    PracticeCount,
    PreferenceTask,
    PrimaryComparison,
    PrimaryPlan,
    Protocol,
    ProtocolError,
    QualityControl,
    RankExample,
    Recruitment,
    ReturnLink,
    Sampling,
    SceneSpec,
    canonical_json,
    default_comparisons,
    guess_article,
)

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE", "DEFAULT_QUESTION_TEMPLATE", "EXCLUSION_ALIASES", "MAX_COUNT",
    "MAX_IMAGE_SIDE", "MAX_RANKED_VARIANTS", "MIN_RANKED_VARIANTS", "NUMBER_WORDS",
    "OPTIONAL_ANALYSIS_KEYS", "OPTIONAL_SECTIONS", "PANELS", "POSTHOC_METHODS", "PRIMARY_MEASURES",
    "PROLIFIC_PARAMS", "SCHEMA_VERSION", "TEMPLATE_FIELDS",
    "AnalysisPlan", "CaptionSource", "ColourSpec", "Consent", "CountTask", "Evaluators",
    "Exclusions", "GoldItem", "ObjectSpec", "Practice", "PracticeCount", "PreferenceTask",
    "PrimaryComparison", "PrimaryPlan", "Protocol", "ProtocolError", "QualityControl",
    "RankExample", "Recruitment", "ReturnLink", "Sampling", "SceneSpec",
    "canonical_json", "default_comparisons", "guess_article", "load_protocol",
]
