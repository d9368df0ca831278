"""evalstudy: the design and statistics of the human study (numpy, scipy, matplotlib only).

Nothing here imports Django or torch, and importing a module has no side effects.

API used by the web app
-----------------------
evalstudy.protocol                               (schema.py: the dataclasses; parse.py: validation)
    Protocol                      frozen dataclass: variants, sampling, count_task,
                                  preference_task, quality_control, evaluators, analysis
    Protocol.from_dict(d) -> Protocol            validates, fills defaults
    Protocol.to_dict() -> dict                   canonical document
    Protocol.content_hash() -> str               sha256 of the canonical JSON
    load_protocol(path) -> Protocol              .json, or .yaml/.yml with PyYAML
    ProtocolError(ValueError)
    Protocol.n_ranked -> int                     ranking width = len(variants), 2..6
    Protocol.allow_ties -> bool                  preference_task.allow_ties (default False,
                                                 omitted from to_dict() when False)

evalstudy.ranks                                  (pure Python: the web app's check too)
    check_ranks(ranks, n, *, allow_ties) -> None raises RankError(ValueError) with a
                                                 participant-readable message and .code
                                                 (WRONG_WIDTH, OUT_OF_RANGE, TIE_NOT_ALLOWED,
                                                 MALFORMED_TIE); competition ranks "1,2,2,4"
    mid_ranks(ranks) -> list[float]              tied images take the mean of their places
    competition_ranks(keys) -> list[int]         smaller key = better, equal keys tied
    is_tied(ranks) -> bool

evalstudy.grid                                   (the grid derived from a protocol)
    count_prompts(protocol) -> list[CountPrompt] fields object, count, colour, text, question
    preference_captions(protocol, base_dir=None, root=None) -> list[str]
    study_items(protocol, base_dir=None, root=None) -> list[StudyItem] every item with its id
    image_seeds(protocol, n_images) -> list[int]
    stable_key(*parts) -> str                    sha256 sort key, the same on every machine

evalstudy.design                                 (assignments: who sees what, in which order and position)
    williams_square(n) -> list[list[int]]
    plan_assignments(count_item_ids, rank_item_ids, n_slots, overlap, seed, *,
                     n_variants (required with rank items), gold_item_ids=(), n_repeats=0)
    SlotPlan: slot, seed, items [(task, item_id)], positions {rank item: [variant index]},
              repeats, repeat_positions; to_dict(), from_dict()
    reassign_slot(plan, attempt, completed=()) -> SlotPlan
    repeat_item_id(item_id) -> str               id of a repeated showing

evalstudy.responses
    RESPONSE_COLUMNS                             the CSV columns, in order
    read_responses(path_or_file, *, variants=None, allow_ties=False) -> ResponseTable
                                                 (line/column errors; tied competition
                                                 ranks only with allow_ties)
    responses_from_rows(rows, *, allow_ties=False) -> ResponseTable
    ResponseTable: columns (numpy arrays), len(), subset(mask), to_rows(), write_csv(path)
    ResponseError(ValueError)                    .errors lists every problem

evalstudy.analysis
    analyze(table, protocol=None, n_boot=DEFAULT_N_BOOT, seed=0, exclusions=True) -> AnalysisResult
        (the analysis defaults DEFAULT_N_BOOT, DEFAULT_CI_LEVEL, DEFAULT_ALPHA live in
        evalstudy.protocol, beside AnalysisPlan, whose defaults they are)
        a frozen dataclass tree (evalstudy.analysis.result) with schema_version:
        schema, protocol, settings, data, count, preference, tests, agreement, evaluators,
        exclusions, unfiltered (the sections for all evaluators). .to_dict() is the
        strict-JSON document; AnalysisResult.from_dict(doc) reads it back (SchemaError
        for another version). Intervals are <name>_ci = [low, high], inside the
        statistic's range. Rankings of 2-6 images, ties scored by mid-rank;
        preference.pairs (win rate, tie rate, ties-as-half row per pair),
        preference.strength_model: Plackett-Luce, or with ties Bradley-Terry-Davidson
        (by_variant[].bt_strength, preference.bt_tie_parameter).

evalstudy.figures
    write_figures(result, outdir) -> list[Path]  FIGURES (.png and .svg), named by what they
                                                 show; FIGURE_TITLES: name -> caption

evalstudy.simulate
    RaterSimulator(variant_quality, count_noise, rank_noise, skip_rate, seed, ...,
                   tie_margin=0.0)               tie_margin > 0: ties (competition ranks)
        .answer_count(true_count, variant, rng) -> int | None   (None: can't tell)
        .answer_rank(variants, rng) -> list[int] | None         (None: skip; .skip_reason(rng))
        .expected_count(true_count, variant), .expected_scores(variants),
        .expected_pairs(variants)
    simulate_study(simulator, protocol, *, n_evaluators=None, overlap=None,
                   base_dir=None, seed=None) -> ResponseTable
    synthetic_protocol(variants, ...) -> Protocol

evalstudy.power
    power_analysis(simulator, a, b, *, task="rank", evaluators=..., ranked=None, ...)
        -> PowerAnalysis                         .rows[] (PowerRow: n_evaluators, power, ...),
                                                 .required_evaluators; .to_dict(): --json
    planned_row_count(protocol) -> int           the rows Holm adjusts over

Command line: python -m evalstudy {analyze, simulate, power, protocol, plan} --help
"""
