"""Reading a protocol document: validation, defaults, and the errors that name the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .schema import (
    DEFAULT_ALPHA,
    DEFAULT_CI_LEVEL,
    DEFAULT_N_BOOT,
    DEFAULT_POSTHOC,
    DEFAULT_POWER,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_QUESTION_TEMPLATE,
    EXCLUSION_ALIASES,
    MAX_EVALUATORS,
    MAX_IMAGE_SIDE,
    MAX_PAIRED_VARIANTS,
    MAX_PLANNED_IMAGES,
    MAX_PLANNED_SHOWINGS,
    MAX_PROMPT_COUNT,
    MAX_RANKED_VARIANTS,
    MIN_N_BOOT,
    MIN_PAIRED_VARIANTS,
    NOT_FOR_PAIRS,
    OPTIONAL_ANALYSIS_KEYS,
    OPTIONAL_SECTIONS,
    PANELS,
    POSTHOC_METHODS,
    PREFERENCE_DESIGNS,
    PRIMARY_MEASURES,
    PROLIFIC_PARAMS,
    SCHEMA_VERSION,
    TEMPLATE_FIELDS,
    TOO_FEW_PAIRED,
    TOO_LARGE,
    TOO_MANY_PAIRED,
    TOO_MANY_RANKED,
    UNKNOWN_DESIGN,
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
    guess_article,
    min_resamples,
)
from .values import NotJSONError, _article, _fail, _integer, _list, _mapping, _number, _string, json_document


def load_protocol(path: str | Path) -> Protocol:
    """Read a protocol from a .json, .yaml or .yml file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(f"cannot read protocol {path}: {exc.strerror}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ProtocolError("YAML protocols need PyYAML; install it or use JSON") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProtocolError(f"{path}: not valid YAML: {exc}") from exc
    else:
        try:
            doc = json_document(text)
        except NotJSONError as exc:
            raise ProtocolError(f"{path}: not valid JSON: {exc}") from exc
    return Protocol.from_dict(doc)


def _parse_object(d: Any, where: str) -> ObjectSpec:
    if isinstance(d, str):
        _fail(where, "an object needs 'name', 'singular', 'plural' and 'article' "
                     f"(e.g. {{\"name\": \"bus\", \"singular\": \"bus\", \"plural\": \"buses\", "
                     f"\"article\": \"a\"}}), got the string {d!r}")
    _mapping(d, where, ("name", "singular", "plural", "article"), ("name", "plural"))
    name = _string(d["name"], f"{where}.name")
    singular = _string(d.get("singular", name), f"{where}.singular")
    plural = _string(d["plural"], f"{where}.plural")
    article = _article(d.get("article", guess_article(singular)), f"{where}.article")
    return ObjectSpec(name, singular, plural, article)


def _parse_colour(d: Any, where: str) -> ColourSpec:
    if isinstance(d, str):
        name = _string(d, where)
        return ColourSpec(name, guess_article(name))
    _mapping(d, where, ("name", "article"), ("name",))
    name = _string(d["name"], f"{where}.name")
    return ColourSpec(name, _article(d.get("article", guess_article(name)), f"{where}.article"))


def _check_template(template: str, where: str) -> str:
    import string

    for _, fname, _, _ in string.Formatter().parse(template):
        if fname is not None and fname not in TEMPLATE_FIELDS:
            _fail(where, f"unknown template field {{{fname}}}; allowed: "
                         + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS))
    return template


def _parse_count_task(d: Any) -> CountTask:
    w = "count_task"
    _mapping(d, w, ("objects", "counts", "colours", "images_per_prompt", "prompt_template",
                    "question_template"), ("objects", "counts"))
    objects = tuple(_parse_object(o, f"{w}.objects[{i}]")
                    for i, o in enumerate(_list(d["objects"], f"{w}.objects")))
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        _fail(f"{w}.objects", f"object names must be unique, got {names}")
    counts = tuple(_integer(c, f"{w}.counts[{i}]", lo=1, hi=MAX_PROMPT_COUNT)
                   for i, c in enumerate(_list(d["counts"], f"{w}.counts")))
    if len(set(counts)) != len(counts):
        _fail(f"{w}.counts", f"counts must be unique, got {list(counts)}")
    colours = tuple(_parse_colour(c, f"{w}.colours[{i}]")
                    for i, c in enumerate(_list(d.get("colours") or [], f"{w}.colours",
                                                nonempty=False)))
    cnames = [c.name for c in colours]
    if len(set(cnames)) != len(cnames):
        _fail(f"{w}.colours", f"colour names must be unique, got {cnames}")
    return CountTask(
        objects=objects,
        counts=counts,
        colours=colours,
        images_per_prompt=_integer(d.get("images_per_prompt", 10), f"{w}.images_per_prompt", lo=1),
        prompt_template=_check_template(
            _string(d.get("prompt_template", DEFAULT_PROMPT_TEMPLATE), f"{w}.prompt_template"),
            f"{w}.prompt_template"),
        question_template=_check_template(
            _string(d.get("question_template", DEFAULT_QUESTION_TEMPLATE),
                    f"{w}.question_template"),
            f"{w}.question_template"),
    )


def _parse_preference_task(d: Any) -> PreferenceTask:
    w = "preference_task"
    _mapping(d, w, ("captions", "images_per_caption", "allow_ties", "design"), ("captions",))
    allow_ties = d.get("allow_ties", False)
    if not isinstance(allow_ties, bool):
        _fail(f"{w}.allow_ties", f"expected true or false, got {allow_ties!r}")
    design = d.get("design", PREFERENCE_DESIGNS[0])
    if design not in PREFERENCE_DESIGNS:
        _fail(f"{w}.design", f"expected one of {', '.join(map(repr, PREFERENCE_DESIGNS))}, got {design!r}",
              UNKNOWN_DESIGN)
    c = d["captions"]
    cw = f"{w}.captions"
    if isinstance(c, list):
        inline = tuple(_string(s, f"{cw}[{i}]") for i, s in enumerate(_list(c, cw)))
        source = CaptionSource(inline=inline)
    else:
        _mapping(c, cw, ("path", "n", "seed", "inline"))
        has_path, has_inline = c.get("path") is not None, bool(c.get("inline"))
        if has_path == has_inline:
            _fail(cw, "give either 'path' (an MS-COCO captions file) or 'inline' (a list)")
        if has_path:
            if c.get("n") is None:
                _fail(cw, "'n' (how many captions to draw) is required with 'path'")
            source = CaptionSource(path=_string(c["path"], f"{cw}.path"),
                                   n=_integer(c["n"], f"{cw}.n", lo=1),
                                   seed=_integer(c.get("seed", 0), f"{cw}.seed"))
        else:
            inline = tuple(_string(s, f"{cw}.inline[{i}]")
                           for i, s in enumerate(_list(c["inline"], f"{cw}.inline")))
            n = c.get("n")
            if n is not None:
                _integer(n, f"{cw}.n", lo=1, hi=len(inline))
            source = CaptionSource(inline=inline, n=n, seed=_integer(c.get("seed", 0), f"{cw}.seed"))
    return PreferenceTask(
        captions=source,
        images_per_caption=_integer(d.get("images_per_caption", 1), f"{w}.images_per_caption", lo=1),
        allow_ties=allow_ties,
        design=design,
    )


def _parse_protocol(d: Any) -> Protocol:
    _mapping(d, "protocol", ("schema_version", "name", "description", "variants", "sampling",
                             "count_task", "preference_task", "quality_control", "evaluators",
                             "analysis") + OPTIONAL_SECTIONS,
             ("name", "variants", "sampling", "evaluators"))
    version = _integer(d.get("schema_version", SCHEMA_VERSION), "schema_version")
    if version != SCHEMA_VERSION:
        _fail("schema_version", f"this evalstudy reads version {SCHEMA_VERSION}, got {version}")
    name = _string(d["name"], "name")
    description = d.get("description", "")
    if not isinstance(description, str):
        _fail("description", "expected a string")
    variants = tuple(_string(v, f"variants[{i}]")
                     for i, v in enumerate(_list(d["variants"], "variants")))
    if len(set(variants)) != len(variants):
        _fail("variants", f"variant names must be unique, got {list(variants)}")
    if len(variants) < 2:
        _fail("variants", "a study compares at least two variants")

    s = _mapping(d["sampling"], "sampling", ("cfg_scale", "steps", "sampler", "seed", "size", "scheduler"),
                 ("cfg_scale", "steps", "sampler"))
    sampling = Sampling(cfg_scale=_number(s["cfg_scale"], "sampling.cfg_scale", lo=0.0),
                        steps=_integer(s["steps"], "sampling.steps", lo=1),
                        sampler=_string(s["sampler"], "sampling.sampler"),
                        seed=_integer(s.get("seed", 0), "sampling.seed", lo=0),
                        size=(_integer(s["size"], "sampling.size", lo=8, hi=MAX_IMAGE_SIDE)
                              if s.get("size") is not None else None),
                        scheduler=(_string(s["scheduler"], "sampling.scheduler")
                                   if s.get("scheduler") is not None else None))

    count_task = _parse_count_task(d["count_task"]) if d.get("count_task") is not None else None
    pref = (_parse_preference_task(d["preference_task"])
            if d.get("preference_task") is not None else None)
    if count_task is None and pref is None:
        _fail("protocol", "a study needs a 'count_task', a 'preference_task' or both")
    if pref is not None:
        _check_design_width(pref, len(variants))

    q = _mapping(d.get("quality_control", {}), "quality_control", ("gold", "repeats"))
    gold = []
    for i, g in enumerate(_list(q.get("gold", []), "quality_control.gold", nonempty=False)):
        gw = f"quality_control.gold[{i}]"
        _mapping(g, gw, ("id", "object", "count", "colour"), ("id", "object", "count"))
        gold.append(GoldItem(id=_string(g["id"], f"{gw}.id"),
                             object=_string(g["object"], f"{gw}.object"),
                             count=_integer(g["count"], f"{gw}.count", lo=0, hi=MAX_PROMPT_COUNT),
                             colour=_string(g.get("colour"), f"{gw}.colour", allow_none=True)))
        if count_task is not None and gold[-1].object not in {o.name for o in count_task.objects}:
            _fail(f"{gw}.object", f"{gold[-1].object!r} is not one of count_task.objects")
    gold_ids = [g.id for g in gold]
    if len(set(gold_ids)) != len(gold_ids):
        _fail("quality_control.gold", f"gold item ids must be unique, got {gold_ids}")
    if gold and count_task is None:
        _fail("quality_control.gold", "gold items are count items; the study has no count_task")
    qc = QualityControl(gold=tuple(gold),
                        repeats=_integer(q.get("repeats", 0), "quality_control.repeats", lo=0))

    e = _mapping(d["evaluators"], "evaluators", ("n", "overlap", "completion_code"),
                 ("n", "overlap"))
    n_eval = _integer(e["n"], "evaluators.n", lo=1, hi=MAX_EVALUATORS)
    evaluators = Evaluators(
        n=n_eval,
        overlap=_integer(e["overlap"], "evaluators.overlap", lo=1, hi=n_eval),
        completion_code=_string(e.get("completion_code"), "evaluators.completion_code",
                                allow_none=True),
    )

    analysis = _parse_analysis(d.get("analysis", {}), variants)
    if pref is not None and pref.design == "pairs":
        _check_analysis_for_pairs(analysis)
    recruitment = (_parse_recruitment(d["recruitment"], evaluators)
                   if d.get("recruitment") is not None else None)
    consent = _parse_consent(d["consent"]) if d.get("consent") is not None else None
    practice = (_parse_practice(d["practice"], count_task)
                if d.get("practice") is not None else None)
    protocol = Protocol(name=name, description=description, variants=variants, sampling=sampling,
                        evaluators=evaluators, count_task=count_task, preference_task=pref,
                        quality_control=qc, analysis=analysis, schema_version=version,
                        recruitment=recruitment, consent=consent, practice=practice)
    _check_size(protocol)
    return protocol


def _check_size(p: Protocol) -> None:
    """Refuse a study larger than MAX_PLANNED_IMAGES images (to generate, the judge's extra
    ones and the gold images included) or MAX_PLANNED_SHOWINGS showings (every item shown to
    ``overlap`` evaluators, the gold items and repeats to every evaluator), computed from the
    numbers alone, before any item is built."""
    n_var, gold = len(p.variants), len(p.quality_control.gold)
    images, items = gold, 0
    if p.count_task is not None:
        t = p.count_task
        cells = len(t.objects) * len(t.counts) * max(1, len(t.colours))
        images += cells * n_var * (t.images_per_prompt + p.analysis.judge_images_per_cell)
        items += cells * n_var * t.images_per_prompt
    if p.preference_task is not None:
        src = p.preference_task.captions
        captions = src.n if src.n is not None else len(src.inline)
        images += captions * p.preference_task.images_per_caption * n_var
        items += captions * p.preference_task.images_per_caption
    if images > MAX_PLANNED_IMAGES:
        _fail("protocol", f"the study plans {images:,} images; a study holds at most {MAX_PLANNED_IMAGES:,} "
                          "(fewer prompts, counts, captions or images per prompt, or several studies)", TOO_LARGE)
    # Every evaluator sees every gold item and their repeats (evalstudy.design.plan_assignments).
    showings = items * p.evaluators.overlap + (gold + p.quality_control.repeats) * p.evaluators.n
    if showings > MAX_PLANNED_SHOWINGS:
        _fail("evaluators", f"the study plans {showings:,} showings ({items:,} items, each to "
                            f"{p.evaluators.overlap} evaluators, and every evaluator's gold items and repeats); "
                            f"a study holds at most {MAX_PLANNED_SHOWINGS:,}", TOO_LARGE)


def _check_design_width(pref: PreferenceTask, n_variants: int) -> None:
    """The number of variants the preference design can show: one image per variant in a
    ranking (MIN..MAX_RANKED_VARIANTS), two of them per task in the pairs design."""
    if pref.design == "ranking" and n_variants > MAX_RANKED_VARIANTS:
        _fail("variants", f"at most {MAX_RANKED_VARIANTS} variants can be ranked together, got {n_variants}; "
                          f"for more, set preference_task.design to \"pairs\" (two of the variants per task, "
                          f"up to {MAX_PAIRED_VARIANTS} variants)", TOO_MANY_RANKED)
    if pref.design == "pairs" and n_variants < MIN_PAIRED_VARIANTS:
        _fail("preference_task.design", f"\"pairs\" needs at least {MIN_PAIRED_VARIANTS} variants, got "
                                        f"{n_variants}: with two, the ranking design is already pairwise A/B "
                                        "(leave 'design' out)", TOO_FEW_PAIRED)
    if pref.design == "pairs" and n_variants > MAX_PAIRED_VARIANTS:
        _fail("variants", f"the pairs design compares at most {MAX_PAIRED_VARIANTS} variants, got {n_variants}; "
                          "split them into studies that share a few variants as anchors", TOO_MANY_PAIRED)


def _check_analysis_for_pairs(analysis: AnalysisPlan) -> None:
    """Refuse what the analysis plan asks that is defined on full rankings only: the mean-rank
    preference score (a variant's score in pairs depends on the opponents it met) and the
    Nemenyi test (on Friedman's mean ranks over caption blocks, which pairs do not form)."""
    if analysis.posthoc == "nemenyi":
        _fail("analysis.posthoc", "the Nemenyi test reads the mean ranks of full rankings; a pairs study has "
                                  "none. Use \"holm\" (the default); each pair's win rate is reported with "
                                  "its interval", NOT_FOR_PAIRS)
    for i, c in enumerate(analysis.primary.comparisons if analysis.primary else ()):
        if c.measure == "score":
            _fail(f"analysis.primary.comparisons[{i}].measure",
                  "\"score\" is the mean rank of full rankings, which a pairs study does not collect; "
                  "monitor a count measure (\"match_ratio\", \"mean_abs_error\") here, and list the pair in "
                  "analysis.comparisons, reported as its win margin with an interval and test", NOT_FOR_PAIRS)


def _url(v: Any, where: str) -> str | None:
    url = _string(v, where, allow_none=True)
    if url is not None and not url.startswith(("https://", "http://")):
        _fail(where, f"expected an http(s) URL, got {url!r}")
    return url


def _parse_return_link(d: Any, where: str) -> ReturnLink:
    _mapping(d, where, ("code", "url"))
    return ReturnLink(code=_string(d.get("code"), f"{where}.code", allow_none=True),
                      url=_url(d.get("url"), f"{where}.url"))


def _parse_recruitment(d: Any, evaluators: Evaluators) -> Recruitment:
    w = "recruitment"
    _mapping(d, w, ("panel", "participant_param", "study_param", "session_param",
                    "ask_participant_id", "completion_url", "declined", "full", "closed"))
    panel = d.get("panel", "generic")
    if panel not in PANELS:
        _fail(f"{w}.panel", f"expected one of {PANELS}, got {panel!r}")
    params: tuple[str, str | None, str | None]
    if panel == "prolific":
        for key, expected in zip(("participant_param", "study_param", "session_param"),
                                 PROLIFIC_PARAMS, strict=True):
            if d.get(key) not in (None, expected):
                _fail(f"{w}.{key}", f"Prolific sends {expected}; leave it out or write {expected!r}")
        params = PROLIFIC_PARAMS
    else:
        params = (_string(d.get("participant_param", "worker_id"), f"{w}.participant_param"),
                  _string(d.get("study_param"), f"{w}.study_param", allow_none=True),
                  _string(d.get("session_param"), f"{w}.session_param", allow_none=True))
    ask = d.get("ask_participant_id", True)
    if not isinstance(ask, bool):
        _fail(f"{w}.ask_participant_id", f"expected true or false, got {ask!r}")
    completion_url = _url(d.get("completion_url"), f"{w}.completion_url")
    if completion_url and "{code}" in completion_url and not evaluators.completion_code:
        _fail(f"{w}.completion_url", "uses {code} but evaluators.completion_code is not set")
    links = {k: _parse_return_link(d.get(k) or {}, f"{w}.{k}") for k in ("declined", "full", "closed")}
    return Recruitment(panel=panel, participant_param=params[0], study_param=params[1],
                       session_param=params[2], ask_participant_id=ask,
                       completion_url=completion_url, **links)


def _parse_consent(d: Any) -> Consent:
    w = "consent"
    texts = ("title", "purpose", "pay", "contact", "data_use", "retention", "ethics_ref")
    _mapping(d, w, texts + ("pilot_seconds_per_task",))
    return Consent(**{k: _string(d.get(k), f"{w}.{k}", allow_none=True) for k in texts},
                   pilot_seconds_per_task=_number(d.get("pilot_seconds_per_task"),
                                                  f"{w}.pilot_seconds_per_task", lo=0.1,
                                                  allow_none=True))


def _parse_scene(d: Any, where: str, count_task: CountTask | None, *, lo: int = 1) -> SceneSpec:
    _mapping(d, where, ("object", "count", "colour"), ("object", "count"))
    obj = _string(d["object"], f"{where}.object")
    if count_task is not None and obj not in {o.name for o in count_task.objects}:
        _fail(f"{where}.object", f"{obj!r} is not one of count_task.objects")
    return SceneSpec(object=obj, count=_integer(d["count"], f"{where}.count", lo=lo, hi=MAX_PROMPT_COUNT),
                     colour=_string(d.get("colour"), f"{where}.colour", allow_none=True))


def _parse_practice(d: Any, count_task: CountTask | None) -> Practice:
    w = "practice"
    _mapping(d, w, ("count", "rank_example"))
    count = None
    if d.get("count") is not None:
        c = _mapping(d["count"], f"{w}.count", ("object", "count", "colour", "seed"),
                     ("object", "count"))
        if count_task is None:
            _fail(f"{w}.count", "a counting practice item needs a count_task")
        scene = _parse_scene({k: v for k, v in c.items() if k != "seed"}, f"{w}.count", count_task)
        count = PracticeCount(object=scene.object, count=scene.count, colour=scene.colour,
                              seed=_integer(c.get("seed", 0), f"{w}.count.seed", lo=0))
    example = None
    if d.get("rank_example") is not None:
        r = _mapping(d["rank_example"], f"{w}.rank_example", ("caption", "images", "explanation"),
                     ("caption", "images"))
        rw = f"{w}.rank_example"
        # Example pictures need not be of the study's objects (only drawable).
        images = tuple(_parse_scene(s, f"{rw}.images[{i}]", None)
                       for i, s in enumerate(_list(r["images"], f"{rw}.images")))
        if len(images) < 2:
            _fail(f"{rw}.images", "a ranking example needs at least two pictures")
        explanation = r.get("explanation", "")
        if not isinstance(explanation, str):
            _fail(f"{rw}.explanation", "expected a string")
        example = RankExample(caption=_string(r["caption"], f"{rw}.caption"), images=images,
                              explanation=explanation)
    return Practice(count=count, rank_example=example)


def _parse_analysis(d: Any, variants: tuple[str, ...]) -> AnalysisPlan:
    w = "analysis"
    _mapping(d, w, ("exclusions", "comparisons", "posthoc", "alpha", "ci_level", "n_boot", "seed",
                    *OPTIONAL_ANALYSIS_KEYS))
    x = _mapping(d.get("exclusions", {}), f"{w}.exclusions",
                 tuple(f.name for f in dataclasses.fields(Exclusions)) + tuple(EXCLUSION_ALIASES))
    xw = f"{w}.exclusions"
    for old, new in EXCLUSION_ALIASES.items():
        if old in x:
            if new in x:
                _fail(f"{xw}.{old}", f"is the old name of {new}; give one of them")
            x = {**{k: v for k, v in x.items() if k != old}, new: x[old]}
    exclusions = Exclusions(
        min_gold_accuracy=_number(x.get("min_gold_accuracy"), f"{xw}.min_gold_accuracy",
                                  lo=0, hi=1, allow_none=True),
        max_cant_tell_rate=_number(x.get("max_cant_tell_rate"), f"{xw}.max_cant_tell_rate",
                                   lo=0, hi=1, allow_none=True),
        min_median_seconds=_number(x.get("min_median_seconds"), f"{xw}.min_median_seconds",
                                   lo=0, allow_none=True),
        min_consistency=_number(x.get("min_consistency"), f"{xw}.min_consistency",
                                lo=0, hi=1, allow_none=True),
        max_task_skip_rate=_number(x.get("max_task_skip_rate"), f"{xw}.max_task_skip_rate",
                                   lo=0, hi=1, allow_none=True),
    )
    comparisons = []
    for i, pair in enumerate(_list(d.get("comparisons", []), f"{w}.comparisons", nonempty=False)):
        cw = f"{w}.comparisons[{i}]"
        pair = _list(pair, cw)
        if len(pair) != 2:
            _fail(cw, f"a comparison is a pair [a, b], got {pair}")
        a, b = (_string(pair[0], cw), _string(pair[1], cw))
        for v in (a, b):
            if v not in variants:
                _fail(cw, f"{v!r} is not one of the variants {list(variants)}")
        if a == b:
            _fail(cw, "compares a variant with itself")
        comparisons.append((a, b))
    posthoc = d.get("posthoc", DEFAULT_POSTHOC)
    if posthoc not in POSTHOC_METHODS:
        _fail(f"{w}.posthoc", f"expected one of {POSTHOC_METHODS}, got {posthoc!r}")
    alpha = _number(d.get("alpha", DEFAULT_ALPHA), f"{w}.alpha", lo=1e-6, hi=0.5)
    ci_level = _number(d.get("ci_level", DEFAULT_CI_LEVEL), f"{w}.ci_level", lo=0.5, hi=0.999)
    return AnalysisPlan(
        exclusions=exclusions,
        comparisons=tuple(comparisons),
        posthoc=posthoc,
        alpha=alpha,
        ci_level=ci_level,
        n_boot=_integer(d.get("n_boot", DEFAULT_N_BOOT), f"{w}.n_boot",
                        lo=max(MIN_N_BOOT, min_resamples(ci_level))),
        seed=_integer(d.get("seed", 0), f"{w}.seed", lo=0),
        primary=(_parse_primary(d["primary"], variants, alpha)
                 if d.get("primary") is not None else None),
        judge_images_per_cell=_integer(d.get("judge_images_per_cell", 0),
                                       f"{w}.judge_images_per_cell", lo=0, hi=100),
    )


def _parse_primary(d: Any, variants: tuple[str, ...], alpha: float) -> PrimaryPlan:
    w = "analysis.primary"
    _mapping(d, w, ("comparisons", "looks", "alpha", "power"), ("comparisons", "looks"))
    comparisons = []
    for i, c in enumerate(_list(d["comparisons"], f"{w}.comparisons")):
        cw = f"{w}.comparisons[{i}]"
        c = _mapping(c, cw, ("a", "b", "measure", "effect"), ("a", "b", "measure", "effect"))
        a, b = _string(c["a"], f"{cw}.a"), _string(c["b"], f"{cw}.b")
        for v in (a, b):
            if v not in variants:
                _fail(cw, f"{v!r} is not one of the variants {list(variants)}")
        if a == b:
            _fail(cw, "compares a variant with itself")
        if c["measure"] not in PRIMARY_MEASURES:
            _fail(f"{cw}.measure", f"expected one of {PRIMARY_MEASURES}, got {c['measure']!r}")
        effect = _number(c["effect"], f"{cw}.effect", lo=0)
        if effect <= 0:
            _fail(f"{cw}.effect", "the planned effect must be > 0 (a size, in the measure's units)")
        comparisons.append(PrimaryComparison(a=a, b=b, measure=c["measure"], effect=effect))
    looks = [_integer(n, f"{w}.looks[{i}]", lo=2) for i, n in enumerate(_list(d["looks"], f"{w}.looks"))]
    if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        _fail(f"{w}.looks", f"numbers of evaluators must increase, got {looks}")
    return PrimaryPlan(comparisons=tuple(comparisons), looks=tuple(looks),
                       alpha=_number(d.get("alpha", alpha), f"{w}.alpha", lo=1e-6, hi=0.5),
                       power=_number(d.get("power", DEFAULT_POWER), f"{w}.power", lo=0.5, hi=0.99))
