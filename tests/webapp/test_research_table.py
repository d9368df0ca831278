"""The results pipeline reads the database straight into evalstudy's table: the same table, and
the same analysis to the byte, as reading back the CSV export that a researcher downloads."""
import io
import json

import numpy as np
import pytest
from django.core.management import call_command

from evalstudy.analysis import analyze
from evalstudy.responses import RESPONSE_COLUMNS, STRING_COLUMNS, ResponseError, read_responses
from tests.webapp.test_research_exports import open_demo_study
from webapp.research import exports

pytestmark = pytest.mark.django_db


def _columns_equal(a, b) -> list[str]:
    """The columns whose values differ (NaN equal to NaN)."""
    differ = []
    for c in RESPONSE_COLUMNS:
        x, y = a[c], b[c]
        same = (x.tolist() == y.tolist() if c in STRING_COLUMNS or x.dtype == bool
                else np.array_equal(x, y, equal_nan=True))
        if not same or x.dtype != y.dtype:
            differ.append(c)
    return differ


def test_the_table_from_the_database_is_the_csv_exports_table_and_analyses_the_same():
    study = open_demo_study()
    call_command("simulate_responses", study.slug, "--evaluators", "8", "--quality",
                 "concat-early=0.5,concat-intermediate=0.8,cross-early=0.6,cross-intermediate=0.9",
                 stdout=io.StringIO())
    protocol = study.parsed_protocol
    assert protocol is not None
    text = "".join(exports.csv_chunks(study=study, include_simulated=True))
    from_csv = read_responses(io.StringIO(text, newline=""), variants=protocol.variants,
                              allow_ties=protocol.allow_ties)
    from_db = exports.response_table(study=study, include_simulated=True, variants=protocol.variants,
                                     allow_ties=protocol.allow_ties)
    assert len(from_db) == len(from_csv) > 0
    # can't-tell answers, skipped rankings' empty ranks and the judge's counts all present
    assert np.isnan(from_db["answer_count"][from_db["task"] == "count"]).any()
    assert np.isfinite(from_db["auto_count"]).any()
    assert _columns_equal(from_db, from_csv) == []
    a = json.dumps(analyze(from_db, protocol, n_boot=50, seed=1).to_dict())
    b = json.dumps(analyze(from_csv, protocol, n_boot=50, seed=1).to_dict())
    assert a == b


def test_a_study_without_answers_or_with_an_unknown_variant_is_refused():
    study = open_demo_study()
    with pytest.raises(ResponseError, match="no responses"):
        exports.response_table(study=study)
    call_command("simulate_responses", study.slug, "--evaluators", "1", stdout=io.StringIO())
    with pytest.raises(ResponseError, match="not one of the protocol's variants"):
        exports.response_table(study=study, include_simulated=True, variants=["concat-early"])
