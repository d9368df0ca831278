"""Command line: python -m evalstudy {analyze, simulate, power, protocol, plan} ...

  analyze responses.csv [--protocol p.json] [--json] [--figures DIR] [--n-boot N] [--seed S]
          [--no-exclusions]      every statistic (one JSON document with --json)
  simulate --protocol p.json --out responses.csv [--quality v=q,...] [--seed S] ...
  power --a V1 --b V2 --quality V1=q,V2=q [--task rank|count] [--evaluators 5,10,20]
        [--planned-rows N | --protocol p.json] ...
  protocol p.json               validate, print the canonical form's sha256 (the frozen hash)
  plan p.json                   print the assignment plan as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .protocol import DEFAULT_ALPHA, DEFAULT_N_BOOT, DEFAULT_POWER, ProtocolError, load_protocol
from .responses import ResponseError, ResponseWarning

if TYPE_CHECKING:
    from .analysis.result import AnalysisResult
    from .responses import ResponseTable



def _quality(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected variant=quality, got {part!r}")
        out[name.strip()] = float(value)
    return out


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evalstudy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("analyze", help="analyse a responses CSV")
    a.add_argument("responses", type=Path)
    a.add_argument("--protocol", type=Path)
    a.add_argument("--json", action="store_true", help="print the full result as JSON")
    a.add_argument("--figures", type=Path, metavar="DIR", help="write figures into DIR")
    a.add_argument("--n-boot", type=_positive,
                   help=f"bootstrap resamples (default: the protocol's, else {DEFAULT_N_BOOT})")
    a.add_argument("--seed", type=int, help="bootstrap seed (default: protocol's, 0)")
    a.add_argument("--no-exclusions", action="store_true",
                   help="keep every evaluator in the main results")

    s = sub.add_parser("simulate", help="write a simulated responses CSV")
    s.add_argument("--protocol", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--quality", type=_quality, default=None,
                   help="variant=quality in [0, 1], comma-separated (default: all 0.7)")
    s.add_argument("--count-noise", type=float, default=0.1)
    s.add_argument("--rank-noise", type=float, default=0.3)
    s.add_argument("--skip-rate", type=float, default=0.1)
    s.add_argument("--careless", type=float, default=0.0)
    s.add_argument("--tie-margin", type=float, default=0.0,
                   help="raters tie images whose utilities are this close (protocols with allow_ties)")
    s.add_argument("--evaluators", type=int, help="default: the protocol's")
    s.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("power", help="evaluators needed to detect a difference")
    p.add_argument("--a", required=True, help="variant expected to differ (e.g. intermediate)")
    p.add_argument("--b", required=True, help="variant compared with (e.g. early)")
    p.add_argument("--quality", type=_quality, required=True,
                   help="a=q,b=q (and every variant of --ranked)")
    p.add_argument("--ranked", type=lambda t: [v.strip() for v in t.split(",") if v.strip()],
                   default=None, help="the variants ranked together, 2 to 6 (default: a,b)")
    p.add_argument("--tie-margin", type=float, default=0.0,
                   help="raters tie images whose utilities are this close")
    p.add_argument("--task", choices=("rank", "count"), default="rank")
    p.add_argument("--evaluators", type=_ints, default=[5, 10, 20, 40, 80])
    p.add_argument("--items-per-evaluator", type=int, default=20)
    p.add_argument("--overlap", type=int, default=3)
    p.add_argument("--sims", type=int, default=200)
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--target", type=float, default=DEFAULT_POWER)
    p.add_argument("--count-noise", type=float, default=0.1)
    p.add_argument("--rank-noise", type=float, default=0.3)
    p.add_argument("--skip-rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--planned-rows", type=int, default=None,
                   help="rows of the analysis' Holm family (tests.paired); default: this "
                        "comparison's own (2 count, 1 rank)")
    p.add_argument("--protocol", default=None,
                   help="read --planned-rows from this protocol's planned comparisons")
    p.add_argument("--json", action="store_true")

    h = sub.add_parser("protocol", help="validate a protocol and print its hash")
    h.add_argument("protocol", type=Path)
    h.add_argument("--canonical", action="store_true", help="also print the canonical JSON")

    pl = sub.add_parser("plan", help="print the assignment plan of a protocol")
    pl.add_argument("protocol", type=Path)
    pl.add_argument("--seed", type=int, default=0)
    return parser


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _fmt_int(x: int | None) -> str:
    return "-" if x is None else str(x)


def _ci(c: list[float | None] | None) -> str:
    return "[-, -]" if c is None or c[0] is None else f"[{c[0]:.3f}, {c[1]:.3f}]"


def summary(result: AnalysisResult) -> str:
    """A short plain-text report of an analysis result: the data, then each section the
    result holds, in order."""
    width = max([len(r.variant) for r in result.count.by_variant]
                + [len(p.variant) for p in result.preference.by_variant] + [16])
    lines = [_data_line(result), *_count_lines(result, width), *_preference_lines(result, width),
             *_tests_lines(result), *_agreement_lines(result)]
    return "\n".join(lines)


def _data_line(result: AnalysisResult) -> str:
    d, ex = result.data, result.exclusions
    if ex.applied:
        return (f"{d.n_rows} responses, {d.n_evaluators} evaluators kept "
                f"({ex.n_excluded} of {ex.n_evaluators} excluded by the protocol's rules)")
    why = ex.not_applied_reason or "not applied"
    return f"{d.n_rows} responses, {d.n_evaluators} evaluators ({ex.n_excluded} break an exclusion rule; {why})"


def _count_lines(result: AnalysisResult, width: int) -> list[str]:
    from .analysis.result import few_raters_warning

    rows = result.count.by_variant
    if not rows:
        return []
    lines = [f"\n{'count task':<{width + 2}}{'raters':>6}{'n':>6}  mean |error|  95% CI            "
             "match   95% CI            can't tell  (eq. 9, 10 over the n counted images)"]
    for r in rows:
        lines.append(f"  {r.variant:<{width}}{_fmt_int(r.n_raters):>6}{r.n_answered:>6}  "
                     f"{_fmt(r.mean_abs_error):>8}      "
                     f"{_ci(r.mean_abs_error_ci):<18}{_fmt(r.match_ratio)}   "
                     f"{_ci(r.match_ratio_ci):<18}{_fmt(r.cant_tell_rate)}")
    warning = few_raters_warning(rows)
    if warning:
        lines.append(" " + warning)
    if result.count.rater_note:
        lines.append("  " + result.count.rater_note)
    if result.count.edge_note:
        lines.append("  " + result.count.edge_note)
    lines.append("  sensitivity, can't tell counted as a miss: match ratio "
                 + ", ".join(f"{r.variant} {_fmt(r.match_ratio_cant_tell_as_miss)}" for r in rows))
    return lines


def _preference_lines(result: AnalysisResult, width: int) -> list[str]:
    from .analysis.result import few_raters_warning

    pref = result.preference
    if not pref.by_variant:
        return []
    bt = pref.has_ties or pref.design == "pairs"
    model = "BT-Davidson strength" if bt else "PL strength"
    pairs = pref.design == "pairs"  # two variants per ranking: no mean-rank score to show
    score_head = "" if pairs else "  score  95% CI          "
    lines = [f"\n{'preference':<{width + 2}}{'raters':>6}{'n':>6}{score_head}  {model}"]
    if pairs:
        lines[0] += "   (pairs design: two variants per ranking, so no mean-rank score)"
    for p in pref.by_variant:
        strength, strength_ci = ((p.bt_strength, p.bt_strength_ci) if bt else (p.pl_strength, p.pl_strength_ci))
        score = "" if pairs else f"  {_fmt(p.score, 2):>5}  {_ci(p.score_ci):<16}"
        lines.append(f"  {p.variant:<{width}}{_fmt_int(p.n_raters):>6}{p.n:>6}{score}  "
                     f"{_fmt(strength)} {_ci(strength_ci)}"
                     + (f"  tied {_fmt(p.tie_rate)}" if pref.has_ties else ""))
    warning = few_raters_warning(pref.by_variant)
    if warning:
        lines.append(" " + warning)
    if pref.strength_note:
        lines.append("  " + pref.strength_note)
    if pref.edge_note:
        lines.append("  " + pref.edge_note)
    lines.append(f"  ranking skip rate {_fmt(pref.ranking_skip_rate)} "
                 f"{_ci(pref.ranking_skip_rate_ci)}")
    if pref.has_ties or pref.m == 2:  # pairwise and pairs studies, and rankings with ties
        lines.append("  every pair: a over b when told apart (ties left out), and the tie rate")
        for q in pref.pairs:
            lines.append(f"    {q.a} over {q.b}: {_fmt(q.win_rate)} {_ci(q.win_rate_ci)}  "
                         f"tied {_fmt(q.tie_rate)} {_ci(q.tie_rate_ci)}  "
                         f"(a {q.a_wins}, b {q.b_wins}, tied {q.ties} of {q.n})")
    return lines


def _tests_lines(result: AnalysisResult) -> list[str]:
    tests = result.tests
    lines = []
    if tests.paired:
        lines.append("\npaired tests (crossed t over items and raters, Holm-adjusted; "
                     "Wilcoxon over items, secondary)")
        for t in tests.paired:
            lines.append(f"  {t.task:<5} {t.measure:<15} {t.a} - {t.b}: "
                         f"{_fmt(t.difference)} {_ci(t.difference_ci)}, "
                         f"p = {_fmt(t.p_value, 4)}, p_holm = {_fmt(t.p_holm, 4)}, "
                         f"p Wilcoxon items = {_fmt(t.p_wilcoxon_items, 4)}")
            if t.p_value is None:
                lines.append(f"    {t.method}")
    if tests.friedman:
        f = tests.friedman
        lines.append(f"\nFriedman over {f.n_blocks} items: chi2 = {_fmt(f.statistic, 2)}, "
                     f"p = {_fmt(f.p_value, 4)}, W between captions {_fmt(f.w_between_captions)}")
        if f.note:
            lines.append(f"  {f.note}")
    if tests.position_bias:
        pb = tests.position_bias
        if pb.left_win_rate is not None:  # the pairs design
            lines.append(f"position bias: the left image won {_fmt(pb.left_win_rate)} {_ci(pb.left_win_rate_ci)} of "
                         f"the untied rankings (sides swapped within pairs, {pb.n_permutations}): "
                         f"p = {_fmt(pb.p_value, 4)}")
        else:
            lines.append(f"position bias (permutation within captions, {pb.n_permutations}): "
                         f"p = {_fmt(pb.p_value, 4)}")
    return lines


def _agreement_lines(result: AnalysisResult) -> list[str]:
    ag = result.agreement
    lines = []
    if ag.count_alpha_interval:
        lines.append(f"\nKrippendorff alpha, counts (interval): {_fmt(ag.count_alpha_interval.alpha)}")
    if ag.count_alpha_errors:
        lines.append(f"Krippendorff alpha, count errors (interval): {_fmt(ag.count_alpha_errors.alpha)}")
    if ag.rank_alpha_ordinal:
        lines.append(f"Krippendorff alpha, ranks (ordinal): {_fmt(ag.rank_alpha_ordinal.alpha)}")
    if ag.kendall_w:
        lines.append(f"Kendall's W between raters, per caption (mean): "
                     f"{_fmt(ag.kendall_w.per_item_mean)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ProtocolError, ResponseError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _variants_found(table: ResponseTable) -> str:
    """Without a protocol nothing says which variants exist: list the ones found, and the
    names that differ only in case (likely one variant spelled two ways)."""
    found = sorted(set(table["variant"].tolist()) - {""})
    folded = sorted({v.lower() for v in found if sum(w.lower() == v.lower() for w in found) > 1})
    return (f"no protocol given; {len(found)} variant(s) found: {', '.join(found)}"
            + (f"; names that differ only in case: {', '.join(folded)}" if folded else ""))


# power_analysis simulates full rankings and their score; a pairs study's planned test is a
# pair's win margin, which it does not simulate.
PAIRS_POWER_REFUSAL = (
    "error: the rank task's power is simulated for the ranking design only; this protocol's "
    "preference_task.design is \"pairs\". Simulate a pilot of it instead (python -m evalstudy simulate "
    "--protocol ... then analyze) and read the pairs' win-margin intervals, or run power --task count")


def _run(args: argparse.Namespace) -> int:  # noqa: C901 -- one branch per subcommand, each a few lines
    if args.command == "analyze":
        from .analysis import analyze
        from .responses import read_responses

        protocol = load_protocol(args.protocol) if args.protocol else None
        plan = protocol.analysis if protocol else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResponseWarning)
            # Without a protocol nothing says ties were refused: well-formed ties are read.
            table = read_responses(args.responses,
                                   variants=protocol.variants if protocol else None,
                                   allow_ties=protocol.allow_ties if protocol else True)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        if protocol is None:
            print(f"warning: {_variants_found(table)}", file=sys.stderr)
        n_boot = args.n_boot if args.n_boot is not None else (plan.n_boot if plan else DEFAULT_N_BOOT)
        result = analyze(table, protocol, n_boot=n_boot,
                         seed=args.seed if args.seed is not None else (plan.seed if plan else 0),
                         exclusions=not args.no_exclusions)
        if args.figures:
            from .figures import write_figures

            for path in write_figures(result, args.figures):
                print(f"wrote {path}", file=sys.stderr)
        if args.json:
            print(json.dumps(result.to_dict(), indent=1, allow_nan=False))
        else:
            print(summary(result))
        return 0

    if args.command == "simulate":
        from .simulate import RaterSimulator, simulate_study

        protocol = load_protocol(args.protocol)
        quality = args.quality or {v: 0.7 for v in protocol.variants}
        sim = RaterSimulator(quality, count_noise=args.count_noise, rank_noise=args.rank_noise,
                             skip_rate=args.skip_rate, seed=args.seed, careless=args.careless,
                             tie_margin=args.tie_margin)
        table = simulate_study(sim, protocol, n_evaluators=args.evaluators,
                               base_dir=args.protocol.parent)
        table.write_csv(args.out)
        print(f"wrote {len(table)} responses to {args.out}", file=sys.stderr)
        return 0

    if args.command == "power":
        from .power import power_analysis
        from .simulate import RaterSimulator

        sim = RaterSimulator(args.quality, count_noise=args.count_noise,
                             rank_noise=args.rank_noise, skip_rate=args.skip_rate, seed=args.seed,
                             tie_margin=args.tie_margin)
        rows = args.planned_rows
        if args.protocol is not None:
            from .power import planned_row_count

            planned = load_protocol(args.protocol)
            if planned.is_pairs and args.task == "rank":
                print(PAIRS_POWER_REFUSAL, file=sys.stderr)
                return 2
            rows = planned_row_count(planned)
        res = power_analysis(sim, args.a, args.b, task=args.task, evaluators=args.evaluators,
                             items_per_evaluator=args.items_per_evaluator, overlap=args.overlap,
                             n_sims=args.sims, alpha=args.alpha, target=args.target,
                             seed=args.seed, ranked=args.ranked, planned_rows=rows)
        if args.json:
            print(json.dumps(res.to_dict(), indent=1))
            return 0
        print(f"{args.task} task, {args.a} vs {args.b}, {args.sims} simulated studies each, "
              f"alpha {args.alpha}; power: flagged significant (Holm over {res.planned_rows} "
              f"planned row(s)), and p < alpha before Holm")
        print(" evaluators  items  overlap  power (Holm)     unadjusted")
        for r in res.rows:
            print(f" {r.n_evaluators:>10} {r.n_items:>6} {r.overlap:>8}  "
                  f"{r.power:.3f} +- {r.power_se:.3f}  "
                  f"{r.power_unadjusted:.3f} +- {r.power_unadjusted_se:.3f}")
        need = res.required_evaluators
        print(f"evaluators needed for power {args.target}: "
              + (str(need) if need is not None else f"more than {max(args.evaluators)}"))
        return 0

    if args.command == "protocol":
        from .protocol import canonical_json

        protocol = load_protocol(args.protocol)
        if args.canonical:
            print(canonical_json(protocol.to_dict()))
        print(protocol.content_hash())
        return 0

    if args.command == "plan":
        from .design import plan_assignments
        from .grid import study_items

        protocol = load_protocol(args.protocol)
        items = study_items(protocol, args.protocol.parent)
        plans = plan_assignments(
            [i.item_id for i in items if i.task == "count" and not i.is_gold],
            [i.item_id for i in items if i.task == "rank"],
            protocol.evaluators.n, protocol.evaluators.overlap, args.seed,
            n_variants=len(protocol.variants),
            gold_item_ids=[i.item_id for i in items if i.is_gold],
            n_repeats=protocol.quality_control.repeats, design=protocol.design)
        print(json.dumps([p.to_dict() for p in plans], indent=1))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
