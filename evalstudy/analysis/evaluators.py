"""The evaluators: quality control per evaluator, and the protocol's exclusion rules.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..protocol import Exclusions
from ..responses import ResponseTable
from .result import EvaluatorRecord


def evaluator_reliability(t: ResponseTable) -> list[EvaluatorRecord]:
    """Per evaluator: gold accuracy, can't-tell rate, task skip rate (skipped tasks of
    either kind over all tasks shown, repeats and gold included: the rate the exclusion
    rule reads), ranking skip rate (skipped rankings over rankings shown), median seconds per
    item, and consistency on repeated items (share of the same count answered
    again; for rankings the share of variant pairs in the same relation, a tie being a
    relation of its own: `_repeat_agreement`)."""
    task = t["task"].tolist()
    ev = t["evaluator_id"].tolist()
    item = t["item_id"].tolist()
    var = t["variant"].tolist()
    gold = t["is_gold"].tolist()
    skipped = t["skipped"].tolist()
    answer = t["answer_count"].tolist()
    truth = t["true_count"].tolist()
    rank = t["rank"].tolist()
    seconds = t["seconds"].tolist()
    repeat_of = t["repeat_of"].tolist()

    acc: defaultdict[str, dict[str, Any]] = defaultdict(lambda: {
        "n_count": 0, "n_rank": 0, "gold": [], "cant_tell": 0, "answered_or_ct": 0, "shown": 0,
        "skipped": 0, "rankings": 0, "rankings_skipped": 0})
    times: defaultdict[str, dict[str, float]] = defaultdict(dict)  # evaluator -> item -> seconds
    answers: defaultdict[str, dict[str, Any]] = defaultdict(dict)  # evaluator -> item -> answer
    for k in range(len(task)):
        e, i = ev[k], item[k]
        a = acc[e]
        if task[k] == "count":
            a["shown"] += 1
            a["skipped"] += skipped[k]
            if not repeat_of[k] and not gold[k]:
                a["n_count"] += 1
            if not skipped[k]:
                a["answered_or_ct"] += 1
                a["cant_tell"] += answer[k] != answer[k]
                # A "can't tell" (NaN) on a gold image is not a miscount: it is counted by
                # the can't-tell rate, which has a rule of its own.
                if gold[k] and answer[k] == answer[k]:
                    a["gold"].append(answer[k] == truth[k])
            answers[e][i] = None if skipped[k] else ("ct" if answer[k] != answer[k] else answer[k])
        else:
            if i not in answers[e]:
                answers[e][i] = None if skipped[k] else {}
                a["shown"] += 1
                a["skipped"] += skipped[k]
                a["rankings"] += 1
                a["rankings_skipped"] += skipped[k]
                if not repeat_of[k]:
                    a["n_rank"] += 1
            if answers[e][i] is not None:
                answers[e][i][var[k]] = rank[k]
        if seconds[k] == seconds[k]:
            times[e][i] = max(times[e].get(i, 0.0), seconds[k])

    repeats = defaultdict(list)
    for k in range(len(task)):
        if repeat_of[k]:
            repeats[ev[k]].append((item[k], repeat_of[k]))
    out = []
    for e in sorted(acc):
        a = acc[e]
        scores = _repeat_agreement(answers[e], repeats[e])
        t_items = list(times[e].values())
        out.append(EvaluatorRecord(
            evaluator_id=e,
            n_count=a["n_count"],
            n_rank=a["n_rank"],
            n_gold=len(a["gold"]),
            gold_accuracy=float(np.mean(a["gold"])) if a["gold"] else None,
            cant_tell_rate=a["cant_tell"] / a["answered_or_ct"] if a["answered_or_ct"] else None,
            task_skip_rate=a["skipped"] / a["shown"] if a["shown"] else None,
            ranking_skip_rate=a["rankings_skipped"] / a["rankings"] if a["rankings"] else None,
            median_seconds=float(np.median(t_items)) if t_items else None,
            n_repeats=len(scores),
            consistency=float(np.mean(scores)) if scores else None,
        ))
    return out


def _order(a: float, b: float) -> int:
    """-1, 0 or 1: a ranked before b, tied with it, or after it."""
    return (a > b) - (a < b)


def _repeat_agreement(answers: dict[str, Any], repeats: list[tuple[str, str]]) -> list[float]:
    """One score per (repeat, original) pair that the evaluator answered both times: 1.0 or
    0.0 for a count (the same answer, "can't tell" included), and for a ranking the share of
    variant pairs in the same relation: p before q, q before p, or tied (a tie is a relation
    of its own, so a tie against an order disagrees whichever way the order runs; comparing
    only "p before q" made tie-then-[2, 1] agree and tie-then-[1, 2] disagree). Skipped
    showings (None) and a count paired with a ranking give no score."""
    scores = []
    for rep, orig in dict.fromkeys(repeats):
        x, y = answers.get(rep), answers.get(orig)
        if x is None or y is None:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            common = sorted(set(x) & set(y))
            pairs = list(itertools.combinations(common, 2))
            if pairs:
                same = sum(_order(x[p], x[q]) == _order(y[p], y[q]) for p, q in pairs)
                scores.append(same / len(pairs))
        elif not isinstance(x, dict) and not isinstance(y, dict):
            scores.append(float(x == y))
    return scores


def apply_exclusions(reliability: Sequence[EvaluatorRecord], rules: Exclusions) -> dict[str, list[str]]:
    """{evaluator_id: reasons} for the evaluators that break a rule. A rule whose
    measure is undefined for an evaluator (no gold item seen, say) does not apply."""
    checks = (
        ("gold_accuracy", rules.min_gold_accuracy, "<", "gold accuracy"),
        ("cant_tell_rate", rules.max_cant_tell_rate, ">", "can't-tell rate"),
        ("median_seconds", rules.min_median_seconds, "<", "median seconds per item"),
        ("consistency", rules.min_consistency, "<", "consistency on repeats"),
        ("task_skip_rate", rules.max_task_skip_rate, ">", "task skip rate"),
    )
    out: dict[str, list[str]] = {}
    for rec in reliability:
        reasons = []
        for key, limit, op, label in checks:
            value = getattr(rec, key)
            if limit is None or value is None or not math.isfinite(value):
                continue
            if (op == "<" and value < limit) or (op == ">" and value > limit):
                reasons.append(f"{label} {value:.3g} {op} {limit:g}")
        if reasons:
            out[rec.evaluator_id] = reasons
    return out
