"""The load test reads what the site's Server-Timing header says, in the format the site writes."""
import pytest
import requests

from bench.load_evaluators import server_timing
from webapp.servertiming import HEADER, format_header


def _response(*made: tuple[float, float, float, int, float]) -> requests.Response:
    """A response, with the redirects before it, each with a header made by the site's own code."""
    chain = []
    for app, cpu, db, queries, gc in made:
        r = requests.Response()
        r.headers[HEADER] = format_header(app_seconds=app, cpu_seconds=cpu, db_seconds=db, queries=queries,
                                          gc_seconds=gc)
        chain.append(r)
    chain[-1].history = chain[:-1]
    return chain[-1]


def test_it_reads_every_field_and_sums_the_redirects_a_browser_follows():
    timing = server_timing(_response((0.010, 0.004, 0.002, 6, 0.0), (0.005, 0.003, 0.001, 3, 0.0015)))
    assert timing is not None
    assert timing == pytest.approx((15.0, 7.0, 3.0, 9, 1.5))


def test_a_response_without_the_header_has_no_timing():
    assert server_timing(requests.Response()) is None
