"""The replication table's per-seed part: each seed's metric and paired difference."""

import numpy as np

from bench.replication import per_seed_table
from generator.count_eval import Judged


def _run(hits: list[bool]) -> Judged:
    target = np.full(len(hits), 2)
    count = np.where(hits, 2, 3)
    return Judged(target, count, count.copy(), np.array(hits, dtype=int))


def test_per_seed_rows_give_each_seed_its_own_numbers_and_differences():
    judged = {
        "seed-1": {"concat-early": _run([True, True, False, False]),
                   "concat-intermediate": _run([True, True, True, False])},
        "seed-2": {"concat-early": _run([True, False, False, False]),
                   "concat-intermediate": _run([False, False, False, False])},
    }
    rows = {line[:44].strip(): line[44:].split() for line in per_seed_table(judged).splitlines()[1:]}
    assert rows["exact_match  concat-early"] == ["0.500", "0.250"]
    assert rows["exact_match  concat-intermediate"] == ["0.750", "0.000"]
    assert rows["exact_match  concat-intermediate - early"] == ["+0.250", "-0.250"]
    assert rows["mean_abs_error  concat-intermediate - early"] == ["-0.250", "+0.250"]
    assert "exact_match  cross-intermediate - early" in rows  # no cross runs: shown as '-'
    assert rows["exact_match  cross-intermediate - early"] == ["-", "-"]
