import json

from tokenpo.harness.cli import main
from tokenpo.leaderboards.freeze import freeze_result
from tokenpo.leaderboards.regress import compare
from tokenpo.leaderboards.results import load_single


def _result_folder(path, correct):
    (path / "samples").mkdir(parents=True)
    n = len(correct)
    mean = sum(correct) / n
    results = {
        "results": {
            "gsm8k": {
                "alias": "gsm8k",
                "exact_match,strict-match": mean,
                "exact_match_stderr,strict-match": (mean * (1 - mean) / (n - 1)) ** 0.5,
            }
        },
        "configs": {"gsm8k": {"fewshot_config": "Question: secret few-shot text"}},
        "higher_is_better": {"gsm8k": {"exact_match": True}},
        "n-samples": {"gsm8k": {"original": n, "effective": n}},
        "harness": {"model_spec": "m", "method": "dpo", "seed": 0, "data_checksums": {"x": "y"}},
    }
    (path / "results.json").write_text(json.dumps(results))
    rows = [
        {
            "doc_id": i,
            "filter": "strict-match",
            "doc": {"question": f"secret question {i}"},
            "resps": [["secret answer"]],
            "exact_match": float(c),
        }
        for i, c in enumerate(correct)
    ]
    (path / "samples" / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_frozen_baseline_keeps_every_score_and_no_text(tmp_path):
    source = _result_folder(tmp_path / "run", [1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
    frozen = freeze_result(source, tmp_path / "baseline")
    text = "".join(p.read_text() for p in frozen.rglob("*") if p.is_file())
    assert "secret" not in text and "data_checksums" not in text
    rows = [json.loads(line) for line in (frozen / "samples" / "gsm8k.jsonl").read_text().splitlines()]
    assert rows[:2] == [
        {"doc_id": 0, "filter": "strict-match", "exact_match": 1.0},
        {"doc_id": 1, "filter": "strict-match", "exact_match": 0.0},
    ]
    report = compare(load_single(frozen), load_single(source))
    assert report.exit_code == 0 and [c.test.delta for c in report.comparisons] == [0.0]


def test_freeze_then_gate_from_the_command_line(tmp_path, capsys):
    good = _result_folder(tmp_path / "good", [1] * 40 + [0] * 10)
    worse = _result_folder(tmp_path / "worse", [1] * 20 + [0] * 30)
    assert main(["regress", "--candidate", str(good), "--freeze", str(tmp_path / "baseline")]) == 0
    assert main(["regress", "--baseline", str(tmp_path / "baseline"), "--candidate", str(good)]) == 0
    assert main(["regress", "--baseline", str(tmp_path / "baseline"), "--candidate", str(worse)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["regress", "--candidate", str(good)]) == 2
    assert capsys.readouterr().err == "error: --baseline: required (or --freeze DIR to write one)\n"
