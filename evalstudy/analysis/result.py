"""What `analyze` returns: a versioned tree of frozen dataclasses.

The JSON document (``to_dict``, the web app's results.json and aggregates, ``analyze
--json``) is this tree's serialization, field for field; ``AnalysisResult.from_dict``
reads it back and refuses another schema version, so a renamed field fails in one place,
loudly. Numbers that are undefined (a rate of nothing) are None, never NaN; an interval is
``<name>_ci = [low, high]`` beside its ``<name>``. Read a result by attribute:
``result.count.by_variant[0].match_ratio``.

The analysis builds these records directly. A record holds plain Python values whatever it
was given: when it is made, numpy numbers become Python ones, NaN and infinities None, tuples
lists, and a whole number in a float field a float, so that a result in memory equals the one
read back from its JSON document.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .record import Record, SchemaError, _build

# 3: tests.paired[].p_value is the crossed t test (was the item-level Wilcoxon, now
# p_wilcoxon_items); results stored under 2 are recomputed rather than misread.
# 4: primary.comparisons[].looks[] carry the stage-wise adjusted estimate, its interval and
# p-value (adjusted_estimate, adjusted_estimate_ci, adjusted_p_value) at the look a study
# ended at; results stored under 3 are recomputed, so that a stopped study shows them.
# 5: the pairs design (preference.design, tests.position_bias.left_win_rate[_ci], the
# planned comparisons' "win_margin" measure); results stored under 4 are recomputed, so that
# every stored result says which design it describes.
SCHEMA_VERSION = 5
SCHEMA = f"evalstudy.analysis/{SCHEMA_VERSION}"

Interval = list[float | None]  # [low, high]; [None, None] where no interval can be had



# Below this many raters in a group, its interval can only be as good as the raters'
# resemblance to the crowd. In bench/coverage.py's crowd where a fifth of the raters always
# count one too many (and a fifth are noisy), a variant's average error from 5 or 8 raters
# covered 0.88-0.91 (24 raters: 0.94; 60 with every other kind of trouble too: 0.94): a study
# that holds none of them looks precise and low, and no resampling of the raters present can
# show the absent ones. The shortfall is a trade-off, not a law: intervals wide enough to
# reach 0.90 with 5 raters would widen every few-rater interval and over-cover clean crowds
# (to about 0.99). What helps is more raters, and gold items to find those who are always
# off. The raters are counted by Kish's effective number (`data.kish_raters`): 24 raters with
# loads from 1 to 150 count as about 9 (coverage 0.92 there). Reports flag tables with such
# rows (few_raters_warning).
FEW_RATERS = 10


def few_raters_warning(rows: typing.Iterable[Any]) -> str:
    """A sentence (with a leading space) for a table some of whose rows rest on fewer than
    FEW_RATERS effective raters; empty when none do, or where the numbers were not recorded.
    `rows`: records with `n_raters_effective` (or `n_raters`, for results stored before it),
    or the numbers themselves."""
    known = [n for n in (_raters_of(r) for r in rows) if n is not None]
    if not known or min(known) >= FEW_RATERS:
        return ""
    return (f" Fewer than {FEW_RATERS} raters behind a row (counted by Kish's effective number, "
            "(sum of loads)^2 / sum of squared loads, so that a few raters with most of the "
            "answers count as few): its interval treats them as a sample of "
            "the crowd and cannot show a kind of rater absent from them (one who always counts one "
            "too many, say), so it may be too narrow; recruit more raters, and use the gold items "
            "to find raters who are always off.")


# An interval of zero width at an end of its statistic's range (a mean error 0 [0, 0] when every
# answer was right, the score of a variant every ranking put first): every resample of the
# raters and items present gives the same number, and the bootstrap cannot show a rater of the
# crowd who would answer otherwise. With 10 raters all on one side, a rater-level
# Clopper-Pearson bound would put the lower end of a share near 0.025^(1/10) = 0.69. Rates no
# longer come here: their Wilson intervals (`data.rate_intervals`) have width at the bounds.
EDGE_NOTE = ("Some intervals have zero width at an end of their range (every resample of the raters "
             "and items gives the same value, e.g. a mean error of 0 [0, 0] or a score every ranking put "
             "first): that is not certainty. The "
             "bootstrap cannot show a kind of answer no rater present gave; with n raters all on one "
             "side, the population share of raters who would answer otherwise may still be as large "
             "as about 1 - 0.025^(1/n) (0.31 with 10 raters).")


def edge_interval_note(values: typing.Iterable[tuple[float | None, Interval, float, float]]) -> str:
    """EDGE_NOTE when some (estimate, interval, low, high) has an interval of zero width on
    the end `low` or `high` of its statistic's range; "" otherwise."""
    for est, (lo, hi), low, high in values:
        if est is None or lo is None or hi is None:
            continue
        if abs(hi - lo) <= 1e-12 * max(1.0, abs(est)) and min(abs(est - low), abs(est - high)) <= 1e-12:
            return EDGE_NOTE
    return ""


def _raters_of(row: Any) -> float | None:
    if row is None or isinstance(row, int | float):
        return row
    effective = getattr(row, "n_raters_effective", None)
    return effective if effective is not None else getattr(row, "n_raters", None)


# ---------------------------------------------------------------------------
# The count task
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CountStat(Record):
    """One group of count answers: a variant, a variant and object, or one cell. eq. 9
    (`mean_abs_error`) and eq. 10 (`match_ratio`) over the `n_answered` answers that gave
    a count; `n` also holds the can't-tells."""

    variant: str
    n: int
    n_answered: int
    n_images: int
    mean_abs_error: float | None
    mean_abs_error_ci: Interval
    match_ratio: float | None
    match_ratio_ci: Interval
    cant_tell_rate: float | None
    cant_tell_rate_ci: Interval
    match_ratio_cant_tell_as_miss: float | None   # the sensitivity row
    match_ratio_cant_tell_as_miss_ci: Interval
    task_skip_rate: float | None
    object: str | None = None
    count: int | None = None
    # raters with a counted answer in the group; absent from results stored before it was
    # recorded. The intervals treat them as a sample of the crowd: see FEW_RATERS.
    n_raters: int | None = None
    # Kish's effective number of them, by their loads (answers); see FEW_RATERS.
    n_raters_effective: float | None = None


@dataclass(frozen=True)
class CountSection(Record):
    by_variant: list[CountStat] = field(default_factory=list)
    by_variant_object: list[CountStat] = field(default_factory=list)
    by_variant_object_count: list[CountStat] = field(default_factory=list)
    rater_note: str = ""  # count.rater_influence_note: one rater moves a variant's mean error
    edge_note: str = ""   # EDGE_NOTE where an interval has zero width at an end of its range


# ---------------------------------------------------------------------------
# The rank task
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PreferenceStat(Record):
    variant: str
    score: float | None             # rank 1..m scores m..1
    score_ci: Interval
    mean_rank: float | None
    n: int                          # rankings that ranked it
    n_shown: int                    # rankings that showed it, skips included
    rank_counts: list[int]          # times ranked 1st, 2nd, ...
    pl_strength: float | None       # None when some ranking ties images (see bt_strength)
    pl_strength_ci: Interval
    n_raters: int | None = None     # raters whose rankings ranked it (see CountStat.n_raters)
    n_raters_effective: float | None = None  # Kish's, by their rankings (see FEW_RATERS)
    # Added with rankings of any width and ties; absent from results stored before.
    tie_rate: float | None = None   # rankings that tie it with another image, over rankings
    bt_strength: float | None = None  # Bradley-Terry-Davidson strength, when there are ties
    bt_strength_ci: Interval = field(default_factory=lambda: [None, None])


@dataclass(frozen=True)
class PairStat(Record):
    """Two variants, a before b in the protocol's order, over the rankings that showed both
    (see PreferenceSection.pairs_note for which way ties count)."""

    a: str
    b: str
    n: int
    a_wins: int
    b_wins: int
    ties: int
    win_rate: float | None            # a above b, over the rankings that did not tie them
    tie_rate: float | None            # rankings that tied them, over all rankings
    win_rate_ties_half: float | None  # sensitivity: a tie counts half a win for each
    win_rate_ci: Interval
    tie_rate_ci: Interval
    win_rate_ties_half_ci: Interval
    a_rate: float | None = None       # a above b, over all rankings (ties included)
    b_rate: float | None = None       # b above a, over all rankings
    a_rate_ci: Interval = field(default_factory=lambda: [None, None])
    b_rate_ci: Interval = field(default_factory=lambda: [None, None])


@dataclass(frozen=True)
class ItemSkips(Record):
    item_id: str
    prompt: str
    n_shown: int
    n_skipped: int
    ranking_skip_rate: float | None


@dataclass(frozen=True)
class PreferenceSection(Record):
    by_variant: list[PreferenceStat]
    ranking_skip_rate: float | None   # skipped rankings over rankings shown
    ranking_skip_rate_ci: Interval
    skip_reasons: dict[str, int]
    by_item: list[ItemSkips]
    n_rankings: int
    n_ranked: int
    m: int
    # Added with rankings of any width and ties; absent from results stored before.
    pairs: list[PairStat] = field(default_factory=list)
    pairs_note: str = ""
    has_ties: bool = False
    strength_model: str = "plackett-luce"
    bt_tie_parameter: float | None = None   # Davidson's nu: the more ties, the larger
    bt_tie_parameter_ci: Interval = field(default_factory=lambda: [None, None])
    # Added with the separation check; empty unless the strengths have no finite estimate.
    strength_note: str = ""
    edge_note: str = ""   # EDGE_NOTE where an interval has zero width at an end of its range
    # Schema 5: the protocol's preference design. "pairs": each ranking shows two of the
    # variants (m = 2); `pairs` lists the pairs shown, `by_variant` carries Bradley-Terry(-
    # Davidson) strengths and no score (see evalstudy.analysis.pairdesign).
    design: str = "ranking"


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedTest(Record):
    """A planned comparison of two variants on one measure. `p_value`, `p_holm` and
    `significant` are the crossed t test (difference / the crossed-bootstrap standard error
    behind `difference_ci`, on t with Satterthwaite's `df`; `statistic` is its t), so the
    interval and the test read one variance. The Wilcoxon signed-rank test on the per-item
    mean differences (`n_pairs`, `n_nonzero`, `wilcoxon_statistic`, `p_wilcoxon_items`) is
    secondary: it treats items as independent although raters judge several of them."""

    task: str
    measure: str
    a: str
    b: str
    difference: float | None
    difference_ci: Interval
    n_pairs: int                    # items with both variants (the Wilcoxon's pairs)
    n_nonzero: int
    mean_paired_difference: float | None
    statistic: float | None         # crossed t
    p_value: float | None           # crossed t, two-sided
    method: str
    p_holm: float | None
    significant: bool
    df: float | None = None         # Satterthwaite's, of the crossed variance
    wilcoxon_statistic: float | None = None  # T+ over the per-item differences
    p_wilcoxon_items: float | None = None


@dataclass(frozen=True)
class Friedman(Record):
    blocks: str
    n_blocks: int
    k: int
    statistic: float | None
    p_value: float | None
    df: int
    mean_ranks: dict[str, float | None]
    w_between_captions: float | None  # how consistently captions order the variants
    note: str = ""                    # its caption blocks ignore the raters they share


@dataclass(frozen=True)
class NemenyiPair(Record):
    a: str
    b: str
    mean_rank_difference: float | None
    p_value: float | None


@dataclass(frozen=True)
class Nemenyi(Record):
    critical_difference: float | None
    pairs: list[NemenyiPair]


@dataclass(frozen=True)
class HolmPair(Record):
    a: str
    b: str
    n_pairs: int
    statistic: float | None
    p_value: float | None
    method: str | None
    p_holm: float | None


@dataclass(frozen=True)
class Posthoc(Record):
    primary: str
    nemenyi: Nemenyi
    holm_wilcoxon: list[HolmPair]
    note: str = ""                    # as Friedman.note


@dataclass(frozen=True)
class PositionBias(Record):
    mean_rank_by_position: list[float | None]
    first_choice_by_position: list[int]
    statistic: float | None
    p_value: float | None
    n_permutations: int
    n_rankings: int
    method: str
    # Schema 5, pairs design only: the share of untied rankings won by the left image.
    left_win_rate: float | None = None
    left_win_rate_ci: Interval = field(default_factory=lambda: [None, None])


@dataclass(frozen=True)
class Tests(Record):
    paired: list[PairedTest] = field(default_factory=list)
    friedman: Friedman | None = None
    posthoc: Posthoc | None = None
    position_bias: PositionBias | None = None


# ---------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Alpha(Record):
    alpha: float | None
    units: str
    values: str
    n_pairable_units: int


@dataclass(frozen=True)
class KendallW(Record):
    per_item_mean: float | None     # between the raters of one caption
    per_item_median: float | None
    n_items: int
    all_rankings: float | None      # every ranking as a judge: raters and captions together
    note: str


@dataclass(frozen=True)
class AutoCounter(Record):
    n: int
    mean_abs_difference: float | None
    quadratic_weighted_kappa: float | None
    exact_agreement: float | None


@dataclass(frozen=True)
class Agreement(Record):
    count_alpha_interval: Alpha | None = None
    count_alpha_errors: Alpha | None = None   # interval alpha of answer - true count
    rank_alpha_ordinal: Alpha | None = None
    kendall_w: KendallW | None = None
    auto_counter: AutoCounter | None = None


# ---------------------------------------------------------------------------
# Primary comparisons: the stopping rule and robustness (analysis/primary.py)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Look(Record):
    """One planned look taken: the first `n_evaluators` in arrival order."""

    look: int
    n_evaluators: int
    fraction: float                  # information fraction n / last look's n
    estimate: float | None
    se: float | None                 # crossed-bootstrap standard error
    z: float | None                  # on the normal scale (through t with Satterthwaite df)
    boundary: float | None
    conditional_power: float | None  # under the planned effect
    decision: str
    # At the look the study ended at (a crossing, or the last planned look), None elsewhere:
    # the median-unbiased estimate under the stage-wise ordering, its interval at 1 - the
    # comparison's alpha, and the two-sided p-value (evalstudy.sequential.stagewise_inference),
    # in the estimate's units.
    adjusted_estimate: float | None
    adjusted_estimate_ci: Interval
    adjusted_p_value: float | None
    # From the second look on: the p-value of Cochran's Q that the arrival batches between
    # the looks estimate one difference (evalstudy.sequential.crowd_drift_p); results stored
    # before the check have None.
    crowd_drift_p: float | None = None


@dataclass(frozen=True)
class Fragility(Record):
    """How many evaluators (items) must go to change a conclusion: the sign of the
    difference, or whether its interval excludes zero (`criterion` "significance").
    `search` says what `confirmed` is: "exhaustive", the fewest (every subset up to half
    refitted); "greedy", at most that many (refitted along the influence order; a set off
    that order can be smaller). Results stored before the field were greedy."""

    by: str                      # "evaluators" or "items"
    criterion: str               # "sign" or "significance"
    n_total: int
    approximate: int | None      # by the influence approximation; None: more than half
    confirmed: int | None        # by refitting without them; None: none found up to half
    removed: list[str]
    search: str = "greedy"       # "exhaustive" or "greedy"


@dataclass(frozen=True)
class PrimaryComparisonResult(Record):
    a: str
    b: str
    measure: str
    effect: float
    alpha: float                 # this comparison's share of the error rate
    looks: list[Look]
    current_look: int            # looks taken (0: before the first)
    next_look: int | None        # evaluators at the next look, while continuing
    decision: str
    estimate: float | None       # on every evaluator analysed
    se: float | None
    evaluators_needed: int | None  # in all, for the planned power at the variance seen
    evaluators_more: int | None
    robustness: list[Fragility]


@dataclass(frozen=True)
class PrimarySection(Record):
    rule: str
    robustness_method: str
    looks_planned: list[int]
    n_evaluators: int
    looks_taken: int
    alpha: float
    power: float
    decision: str                # "continue" while any comparison continues, else "stop"
    comparisons: list[PrimaryComparisonResult]


# ---------------------------------------------------------------------------
# Prediction-powered intervals (analysis/ppi.py)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PPIStat(Record):
    variant: str
    measure: str
    n_answers: int
    n_judge_only: int
    weight: float                # lambda: 0 is the human-only mean
    estimate: float | None
    ci: Interval
    human_estimate: float | None
    human_ci: Interval


@dataclass(frozen=True)
class PPIDifference(Record):
    a: str
    b: str
    measure: str
    n_judge_only: int
    estimate: float | None
    ci: Interval
    human_estimate: float | None
    human_ci: Interval


@dataclass(frozen=True)
class JudgeAgreement(Record):
    variant: str
    n: int
    exact_agreement: float | None
    mean_difference: float | None   # judge minus people


@dataclass(frozen=True)
class PredictionPowered(Record):
    method: str
    by_variant: list[PPIStat]
    differences: list[PPIDifference]
    judge_agreement: list[JudgeAgreement]


# ---------------------------------------------------------------------------
# One set of evaluators, and the whole result
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Data(Record):
    n_rows: int
    n_evaluators: int
    n_count_responses: int
    n_count_images: int
    n_count_units: int
    n_rankings: int
    n_rank_items: int
    variants: list[str]
    objects: list[str]
    counts: list[int]


@dataclass(frozen=True)
class Sections(Record):
    """Every statistic for one set of evaluators."""

    data: Data
    count: CountSection
    preference: PreferenceSection
    tests: Tests
    agreement: Agreement


@dataclass(frozen=True)
class EvaluatorRecord(Record):
    evaluator_id: str
    n_count: int
    n_rank: int
    n_gold: int                       # gold images counted (a "can't tell" is not one)
    gold_accuracy: float | None       # right counts over n_gold
    cant_tell_rate: float | None
    task_skip_rate: float | None      # skipped tasks over all tasks shown
    ranking_skip_rate: float | None   # skipped rankings over rankings shown
    median_seconds: float | None
    n_repeats: int
    consistency: float | None
    # Set by `analyze` once the protocol's exclusion rules have been applied.
    excluded: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExcludedEvaluator(Record):
    evaluator_id: str
    reasons: list[str]


@dataclass(frozen=True)
class ExclusionSummary(Record):
    applied: bool
    not_applied_reason: str | None
    rules: dict[str, float | None]
    n_evaluators: int
    n_excluded: int
    excluded: list[ExcludedEvaluator]


@dataclass(frozen=True)
class ResultProvenance(Record):
    """The code that computed a result: `evalstudy.provenance.Provenance`'s JSON form."""

    commit: str | None           # full SHA; None without a git checkout
    dirty: bool | None           # tracked files differed from that commit
    packages: dict[str, str | None]


@dataclass(frozen=True)
class Settings(Record):
    n_boot: int
    seed: int
    ci_level: float
    alpha: float
    bootstrap: str
    cant_tell: str
    skips: str
    exact_wilcoxon_max_n: int
    posthoc: str
    # Absent from results stored before it was recorded.
    provenance: ResultProvenance | None = None


@dataclass(frozen=True)
class ProtocolRef(Record):
    name: str
    hash: str


@dataclass(frozen=True)
class AnalysisResult(Record):
    """Everything `analyze` found. The top-level `data`, `count`, `preference`, `tests` and
    `agreement` describe the evaluators the exclusion rules keep (see `exclusions`);
    `unfiltered` the same for every evaluator."""

    SCHEMA_VERSION: ClassVar[int] = SCHEMA_VERSION

    schema: str
    schema_version: int
    protocol: ProtocolRef | None
    settings: Settings
    data: Data
    count: CountSection
    preference: PreferenceSection
    tests: Tests
    agreement: Agreement
    evaluators: list[EvaluatorRecord]
    exclusions: ExclusionSummary
    unfiltered: Sections
    # Present when the protocol names primary comparisons / when the judge read the counted
    # images; absent from results stored before they existed.
    primary: PrimarySection | None = None
    prediction_powered: PredictionPowered | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document; the optional sections only when present, so that a study
        without them has the document it had before they existed."""
        out = super().to_dict()
        for name in ("primary", "prediction_powered"):
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalysisResult:
        """Read a result document back; SchemaError for another schema version."""
        version = d.get("schema_version") if isinstance(d, dict) else None
        if version != SCHEMA_VERSION:
            raise SchemaError(f"this evalstudy reads analysis schema version {SCHEMA_VERSION}, "
                              f"got {version!r}")
        return _build(cls, d, cls.__name__)
