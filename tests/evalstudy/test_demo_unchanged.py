"""The 4-variant demo study reads and analyses exactly as it did before rankings of any
width and ties: its protocol hash and every number of its analysis are unchanged.

data/demo20_responses.csv and data/demo20_analysis.json were written at commit a20ffa8
(before this work) by

    python -m evalstudy simulate --protocol fixtures/protocols/demo.json \\
        --out demo20_responses.csv --skip-rate 0.1 --careless 0.1 --seed 5 \\
        --quality concat-early=0.6,concat-intermediate=0.75,cross-early=0.65,cross-intermediate=0.8
    python -m evalstudy analyze demo20_responses.csv --protocol fixtures/protocols/demo.json \\
        --json --n-boot 200 > demo20_analysis.json

The analysis may gain new entries (e.g. win rates, Bradley-Terry-Davidson strengths);
every entry it had must keep its value: to the byte of its JSON form, except that a float
may differ from the stored one in its last bits (relative 1e-9). The bootstrap's
Plackett-Luce refits run an optimizer whose sums are rounded differently on another CPU
(seen: 1e-15 relative on an AMD EPYC against the machine that wrote the file).

demo20_analysis.json was rewritten (the same command) at commit 4aabfa7, whose changes
moved numbers on purpose and nothing else: the bootstrap's evaluator order hashed from the
rows the headline numbers read only (every interval's ends: a new Monte Carlo draw), and
the position-bias test's normalised statistic (its statistic and p-value); one
Plackett-Luce strength moved in its last digit, the canonical row order adding in another
order. Every other entry kept its value.

Both files were rewritten (the same two commands) when the Williams square's variant names
came to be permuted by the plan's seed (evalstudy.design._relabelled: the screen orders
were one public pattern's rotations): the simulated study's screen positions, and so its
responses and every number of its analysis, moved with it, and nothing else changed.

demo20_analysis.json was rewritten (the second command) when the planned comparisons'
p-values became the crossed t test (schema 3): tests.paired's statistic, p_value, p_holm,
significant and method changed on purpose (the Wilcoxon's p-value moved to
p_wilcoxon_items), notes were added to the Friedman and post hoc records, and a few
Plackett-Luce strengths and intervals moved in their last bits (another CPU's rounding).

demo20_analysis.json was rewritten (the second command) for schema 4, when the stopping
rule's looks gained the stage-wise adjusted estimate: the demo names no primary
comparisons, so only schema and schema_version changed; the edge_note entries added since
schema 3 appear in it, and no number moved.

demo20_analysis.json was rewritten (the second command) when intervals came to be bounded
by the parameter's range instead of the observed answers' (audit of 2026-12-07, findings 2
and 3): the mean-error intervals ([0, inf) instead of the errors' range) and the paired
differences' intervals moved; the edge_note entries (empty) added since were written too.

demo20_analysis.json was rewritten (the second command) for schema 5, the pairs design: only
schema and schema_version changed; preference.design ("ranking") and the position bias's
left_win_rate entries (None: pairs only) were added, and no number moved.

demo20_analysis.json was rewritten (the second command) when every rate came to get Wilson's
score interval on its effective number of trials (`analysis.data.rate_intervals`): the
intervals of the match ratios, can't-tell rates and their sensitivity rows, of the pairs' win
and share rates, and of the ranking skip rate moved, and settings.bootstrap says so; no
estimate and no other interval moved.

demo20_analysis.json was rewritten (the second command) when a "can't tell" on a gold image
stopped counting as a miscount: three evaluators' n_gold went from 2 to 1 and their
gold_accuracy from 0.5 to 1.0; nobody's exclusion changed, and no other number moved.

demo20_analysis.json was rewritten (the second command) when a paired difference of two match
ratios came to get Newcombe's hybrid score interval from the two rates' own score intervals
(`analysis.data.rate_difference_interval`): the difference_ci of the two match-ratio rows of
tests.paired and unfiltered.tests.paired moved (concat-intermediate - concat-early: [-0.004,
0.459] -> [0.005, 0.432], now on the side of its crossed t test, p = 0.036), and
settings.bootstrap says so; no estimate, p-value and no other interval moved.
"""

import json
import math
from pathlib import Path

from evalstudy.analysis import analyze
from evalstudy.protocol import load_protocol
from evalstudy.responses import read_responses
from evalstudy.simulate import RaterSimulator, simulate_study

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
DEMO = ROOT / "fixtures" / "protocols" / "demo.json"
QUALITY = {"concat-early": 0.6, "concat-intermediate": 0.75, "cross-early": 0.65,
           "cross-intermediate": 0.8}


def _missing_or_changed(before, after, where="$"):
    """Paths of `before` that `after` lacks or holds with another value."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [where]
        out = []
        for k, v in before.items():
            if k not in after:
                out.append(f"{where}.{k}")
            else:
                out += _missing_or_changed(v, after[k], f"{where}.{k}")
        return out
    if isinstance(before, list):
        if not isinstance(after, list) or len(after) != len(before):
            return [where]
        return [p for k, (b, a) in enumerate(zip(before, after, strict=True))
                for p in _missing_or_changed(b, a, f"{where}[{k}]")]
    if isinstance(before, float) and isinstance(after, float):
        return [] if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12) else [where]
    return [] if json.dumps(before) == json.dumps(after) else [where]


def test_the_demo_analysis_keeps_every_number():
    protocol = load_protocol(DEMO)
    table = read_responses(DATA / "demo20_responses.csv", variants=protocol.variants)
    result = analyze(table, protocol, n_boot=200, seed=0).to_dict()
    before = json.loads((DATA / "demo20_analysis.json").read_text())
    for doc in (before, result):
        doc["settings"].pop("provenance")  # the commit and the working tree's state
    after = json.loads(json.dumps(result))
    assert _missing_or_changed(before, after) == []
    assert after["protocol"]["hash"] == protocol.content_hash() == before["protocol"]["hash"]


def test_the_demo_simulation_is_the_same_study():
    # The simulator and the Williams plan still draw the same 4-variant study.
    protocol = load_protocol(DEMO)
    sim = RaterSimulator(QUALITY, skip_rate=0.1, careless=0.1, seed=5)
    table = simulate_study(sim, protocol, base_dir=DEMO.parent)
    expected = read_responses(DATA / "demo20_responses.csv", variants=protocol.variants)
    assert table.to_rows() == expected.to_rows()
