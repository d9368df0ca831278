"""Input that is not what it looks like: Unicode digits, over-long or unprintable worker ids.

Each is refused with the field's own message and leaves the database as it was.
"""

import pytest
from django.test import Client

from webapp.studies.forms import CountAnswerForm
from webapp.studies.joining import MAX_EXTERNAL_ID
from webapp.studies.models import CountResponse, Evaluator, RankResponse

from .conftest import current_task

pytestmark = pytest.mark.django_db


def _to_count_task(client, study) -> dict:
    while (task := current_task(client, study)["task"])["kind"] != "count":
        client.post(
            f"/e/{study.slug}/task/",
            {"kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}},
        )
    return task


# Each passes str.isdigit(); int() refuses the first two (a 500 before) and reads the
# others as 3 (an answer the evaluator never typed with the digits 0-9).
UNICODE_DIGITS = ["²", "①", "٣", "３", "1²", "७"]


@pytest.mark.parametrize("answer", UNICODE_DIGITS)
def test_counts_in_other_digits_are_refused_with_the_fields_message(study, evaluator_client, answer):
    task = _to_count_task(evaluator_client, study)
    before = CountResponse.objects.count() + RankResponse.objects.count()
    r = evaluator_client.post(
        f"/e/{study.slug}/task/",
        {"kind": "count", "token": task["token"], "answer": answer},
        HTTP_ACCEPT="application/json",
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "not_integer",
        "message": "Type a whole number with the digits 0 to 9 only, like 3.",
    }
    assert CountResponse.objects.count() + RankResponse.objects.count() == before
    # The page form shows the same message.
    r = evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "count", "token": task["token"], "answer": answer})
    assert r.status_code == 400 and b"digits 0 to 9" in r.content


@pytest.mark.parametrize("rank", ["²", "①"])
def test_a_ranking_in_other_digits_is_refused_and_the_page_still_renders(study, evaluator_client, rank):
    while (task := current_task(evaluator_client, study)["task"])["kind"] != "rank":
        evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "count", "token": task["token"], "answer": "1"})
    before = CountResponse.objects.count() + RankResponse.objects.count()
    ranks = {"rank_0": rank, "rank_1": "2", "rank_2": "3", "rank_3": "4"}
    # The page form: the partial ranking is sent back with the error (a 500 before).
    r = evaluator_client.post(f"/e/{study.slug}/task/", {"kind": "rank", "token": task["token"], **ranks})
    assert r.status_code == 400
    assert CountResponse.objects.count() + RankResponse.objects.count() == before


@pytest.mark.parametrize("answer, value", [("0", 0), ("7", 7), (" 12 ", 12), ("1000", 1000)])
def test_ascii_counts_are_read(answer, value):
    form = CountAnswerForm({"token": "t", "answer": answer})
    assert form.is_valid() and form.cleaned_data["answer"] == value


def test_an_over_long_worker_id_is_refused_not_cut(study):
    base = "P" * MAX_EXTERNAL_ID
    assert Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": base}).status_code == 302
    # Two ids that agree on their first 128 characters must not become one evaluator.
    r = Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": base + "-second"})
    assert r.status_code == 400 and f"at most {MAX_EXTERNAL_ID}".encode() in r.content
    assert list(Evaluator.objects.values_list("external_id", flat=True)) == [base]


@pytest.mark.parametrize("bad", ["abc\x00def", "line\nbreak", "tab\there"])
def test_an_unprintable_worker_id_is_refused(study, bad):
    r = Client().get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": bad})
    assert r.status_code == 400 and b"not allowed" in r.content
    assert not Evaluator.objects.exists()


@pytest.mark.parametrize("where", ["token", "study_id", "session_id", "image", "continue", "cookie"])
def test_a_nul_anywhere_in_a_request_is_a_400_that_changes_nothing(study, where):
    """PostgreSQL's text cannot hold NUL: each of these was a 500 there (SQLite hid it)."""
    client = Client()
    ok = {"PROLIFIC_PID": "a" * 24}
    if where == "token":
        r = client.get(f"/join/{study.invite_token}%00/", ok)
    elif where == "study_id":
        r = client.get(f"/join/{study.invite_token}/", {**ok, "STUDY_ID": "abc\x00def"})
    elif where == "session_id":
        r = client.get(f"/join/{study.invite_token}/", {**ok, "SESSION_ID": "\x00"})
    elif where == "image":
        r = client.get("/i/abc%00")
    elif where == "continue":
        r = client.post(f"/join/{study.invite_token}%00/continue/")
    else:
        client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
        r = client.get(f"/join/{study.invite_token}/", ok)
    assert r.status_code == 400 and b"not allowed (NUL)" in r.content
    assert not Evaluator.objects.exists()


def test_a_form_without_its_csrf_token_gets_the_sites_page_and_changes_nothing(study):
    """Not Django's own 403 page (it speaks of DEBUG and CSRF reasons to a participant whose
    page had expired); JSON for the task script, which then reloads the page."""
    client = Client(enforce_csrf_checks=True)
    client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "c" * 24})
    r = client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    assert r.status_code == 403 and b"had expired" in r.content and b"DEBUG" not in r.content
    r = client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}, HTTP_ACCEPT="application/json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    assert Evaluator.objects.get().consented_at is None


def test_an_answer_with_too_many_fields_is_refused_in_the_form_the_page_asked_for(study, evaluator_client, settings):
    """Django refuses a body of more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS before any view:
    the task script gets its JSON error (it was Django's HTML page), a page its plain 400."""
    task = _to_count_task(evaluator_client, study)
    before = CountResponse.objects.count() + RankResponse.objects.count()
    data = {"kind": "count", "token": task["token"], "answer": "1",
            **{f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)}}
    r = evaluator_client.post(f"/e/{study.slug}/task/", data, HTTP_ACCEPT="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = evaluator_client.post(f"/e/{study.slug}/task/", data)
    assert r.status_code == 400 and r["Content-Type"].startswith("text/html")
    assert b"could not be understood" in r.content and b"Traceback" not in r.content
    assert CountResponse.objects.count() + RankResponse.objects.count() == before
