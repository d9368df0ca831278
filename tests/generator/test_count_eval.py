import json
import shutil

from generator import count_eval
from generator.synthetic import KINDS


def test_prompts_cover_every_kind_and_count_with_shared_seeds():
    scenes, seeds = count_eval.eval_prompts(per_count=4, seed=10)
    assert len(scenes) == len(KINDS) * 5 * 4
    assert {(s.kind, s.count) for s in scenes} == {(k, n) for k in KINDS for n in range(1, 6)}
    assert seeds[:4] == seeds[4:8] == [10, 11, 12, 13]


def test_json_output_per_variant(tiny_checkpoint, tmp_path, capsys):
    for name in ("a-variant", "b-variant"):
        shutil.copytree(tiny_checkpoint, tmp_path / name)
    count_eval.main(["--checkpoints", str(tmp_path), "--per-count", "1", "--steps", "2", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["variant"] for r in lines] == ["a-variant", "b-variant"]
    assert set(lines[0]) == {"variant", "exact_match", "mean_abs_error", "n"}
    assert lines[0]["n"] == len(KINDS) * 5 and 0 <= lines[0]["exact_match"] <= 1
    assert lines[0] == {**lines[1], "variant": "a-variant"}  # same weights, same prompts and seeds
