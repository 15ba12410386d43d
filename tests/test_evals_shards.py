"""Sharded evaluation: n processes answer disjoint parts, one pass scores them; the result is an unsharded run's."""

from __future__ import annotations

import json

from tokenpo.evals import evaluate
from tokenpo.evals.resume import read_journal


def test_two_shards_give_the_results_of_one_process(tiny_model_dirs, prepared_benchmarks, tmp_path):
    model = tiny_model_dirs["llama"]
    common = {"tasks": ["truthfulqa_mc2", "gsm8k"], "limit": 4, "data_dir": prepared_benchmarks, "batch_size": 1}
    one = evaluate(model, output_dir=tmp_path / "one", **common)
    two = evaluate(model, output_dir=tmp_path / "two", shards=2, **common)
    assert two.results["results"] == one.results["results"]
    for task in ("truthfulqa_mc2", "gsm8k"):
        rows = [(tmp_path / run / "samples" / f"{task}.jsonl").read_text() for run in ("one", "two")]
        resps = [[json.loads(line)["resps"] for line in text.splitlines()] for text in rows]
        assert resps[0] == resps[1]
    # The final pass answered everything from the shards' journals: disjoint parts that cover it all.
    assert two.computed_requests == 0 and two.reused_requests == one.computed_requests
    parts = [read_journal(p) for p in sorted((tmp_path / "two" / ".cache").glob("requests-*.shard-*-of-2.jsonl"))]
    assert len(parts) == 2 and all(parts) and not set(parts[0]) & set(parts[1])
    assert len(parts[0]) + len(parts[1]) == one.computed_requests
