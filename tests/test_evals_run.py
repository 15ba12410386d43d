"""``evaluate`` / ``harness eval`` end to end, offline on real benchmark items: results, samples, resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tokenpo.evals import evaluate
from tokenpo.evals.suites import load_suite
from tokenpo.harness.cli import main

SIX = {
    "mmlu",
    "gsm8k",
    "gpqa_diamond_zeroshot",
    "humaneval",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "truthfulqa_gen",
    "ifeval",
}


@pytest.fixture(scope="module")
def smoke_run(tiny_llama, prepared_benchmarks, tmp_path_factory):
    model, tokenizer = tiny_llama
    out = tmp_path_factory.mktemp("smoke")
    first = evaluate(
        model,
        tokenizer,
        suite="smoke",
        data_dir=prepared_benchmarks,
        output_dir=out,
        batch_size=4,
        metadata={"model_spec": "tiny-llama", "method": "base", "run": "test"},
    )
    return out, first


def test_every_benchmark_runs_offline_and_writes_lm_evals_schema(smoke_run):
    out, _ = smoke_run
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) >= SIX
    categories = {"mmlu_humanities", "mmlu_other", "mmlu_social_sciences", "mmlu_stem"}
    assert set(results["group_subtasks"]["mmlu"]) == categories
    for key in (
        "results",
        "group_subtasks",
        "configs",
        "versions",
        "n-shot",
        "higher_is_better",
        "n-samples",
        "config",
    ):
        assert key in results, key
    # Two items per task; MMLU's limit applies to each of its 57 subjects.
    assert all(entry["effective"] == 2 for entry in results["n-samples"].values())
    assert sum(name.startswith("mmlu_") for name in results["n-samples"]) == 57
    assert results["n-shot"]["gsm8k"] == 5 and results["n-shot"]["ifeval"] == 0
    assert "exact_match,strict-match" in results["results"]["gsm8k"]
    assert "pass@1,create_test" in results["results"]["humaneval"]
    assert "prompt_level_strict_acc,none" in results["results"]["ifeval"]
    harness = results["harness"]
    assert harness["data_source"] == "offline" and harness["backend"] == "hf" and harness["run"] == "test"
    assert len(harness["weights_sha256"]) == 64 and harness["model_spec"] == "tiny-llama"
    # what lm-eval's own tracker records: chat template (none applied here), multiturn, task hashes
    assert results["chat_template"] is None and results["chat_template_sha"] is None
    assert results["fewshot_as_multiturn"] is True and results["system_instruction"] is None  # lm-eval's default
    assert set(results["task_hashes"]) >= SIX - {"mmlu"} and all(len(h) == 64 for h in results["task_hashes"].values())
    assert results["config"]["batch_size"] == 4 and harness["batch_size"] == 4
    assert harness["dtype"] == "torch.float32" and harness["lm_eval_seeds"]["fewshot_random_seed"] == 1234
    assert harness["journal"].startswith("requests-") and harness["model_identity"]["tokenizer"]["state_sha256"]
    # lm-eval's own layout, found by lm-eval's own helpers: the same bytes as ours
    from lm_eval.utils import get_latest_filename, get_results_filenames, get_sample_results_filenames

    names = [str(p) for p in out.glob("*/*.json*")]
    latest = Path(get_latest_filename(get_results_filenames(names)))
    assert json.loads(latest.read_text()) == results
    gpqa = [Path(n) for n in get_sample_results_filenames(names) if "/samples_gpqa_diamond_zeroshot_" in n]
    assert len(gpqa) == 1 and gpqa[0].read_text() == (out / "samples" / "gpqa_diamond_zeroshot.jsonl").read_text()
    assert set(harness["data_notes"]) == {"mmlu", "gpqa", "truthfulqa"}
    assert any(name.startswith("openai/gsm8k/") for name in harness["data_checksums"])
    # The headline of each benchmark comes from the one catalog the leaderboard reads too.
    assert harness["headline"]["gsm8k"] == {"task": "gsm8k", "metrics": ["exact_match,strict-match"], "random": 0.0}
    assert harness["headline"]["gpqa"]["metrics"] == ["acc_norm,none"]
    assert harness["headline"]["ifeval"]["metrics"] == ["prompt_level_strict_acc,none", "inst_level_strict_acc,none"]


def test_samples_have_doc_ids_and_one_number_per_metric(smoke_run):
    out, _ = smoke_run
    for task in (SIX - {"mmlu"}) | {"mmlu_abstract_algebra"}:  # samples are per subject for MMLU
        rows = [json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines()]
        assert {r["doc_id"] for r in rows} == {0, 1}, task
        scores = json.loads((out / "results.json").read_text())["results"][task]
        metrics = {key.split(",")[0] for key in scores if "," in key and "_stderr" not in key}
        assert metrics
        for row in rows:
            for metric in metrics:
                value = row[metric]
                assert isinstance(value, int | float | list), (task, metric)
    gsm8k = [json.loads(line) for line in (out / "samples" / "gsm8k.jsonl").read_text().splitlines()]
    assert {r["filter"] for r in gsm8k} == {"strict-match", "flexible-extract"}
    assert "question" in gsm8k[0]["doc"] and gsm8k[0]["resps"]


def test_gpqa_rows_never_carry_text(smoke_run, benchmarks_dir):
    import csv

    out, _ = smoke_run
    text = (out / "samples" / "gpqa_diamond_zeroshot.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert all("doc" not in r and "arguments" not in r and "resps" not in r for r in rows)
    with open(benchmarks_dir / "gpqa" / "gpqa_diamond.csv", newline="", encoding="utf-8") as handle:
        questions = [r["Question"].strip() for r in csv.DictReader(handle)][:2]
    assert not any(q[:40] in text for q in questions)  # compared silently: nothing printed on failure
    assert all(len(r["doc_hash"]) == 64 for r in rows)


def test_rerun_into_the_same_folder_reuses_every_answer(smoke_run, tiny_llama, prepared_benchmarks):
    out, first = smoke_run
    model, tokenizer = tiny_llama
    again = evaluate(model, tokenizer, suite="smoke", data_dir=prepared_benchmarks, output_dir=out, batch_size=4)
    assert first.computed_requests > 0 and first.reused_requests == 0
    assert again.computed_requests == 0 and again.reused_requests == first.computed_requests
    for task in SIX:

        def scores(run, task=task):
            return {k: v for k, v in run.results["results"][task].items() if "," in k and "stderr" not in k}

        assert scores(again) == pytest.approx(scores(first)), task


def test_a_killed_run_resumes_from_its_journal(tiny_llama, prepared_benchmarks, tmp_path):
    model, tokenizer = tiny_llama
    task = "mmlu_abstract_algebra"  # 4 scoring requests per item
    partial = evaluate(model, tokenizer, tasks=[task], limit=1, data_dir=prepared_benchmarks, output_dir=tmp_path)
    journal = next((tmp_path / ".cache").glob("requests-*.jsonl"))
    with open(journal, "a") as handle:
        handle.write('{"key": "torn-by-a-kil')  # a write cut by the kill
    (tmp_path / "results.json").unlink()
    resumed = evaluate(model, tokenizer, tasks=[task], limit=3, data_dir=prepared_benchmarks, output_dir=tmp_path)
    assert partial.computed_requests == 4
    assert (resumed.reused_requests, resumed.computed_requests) == (4, 8)
    assert json.loads((tmp_path / "results.json").read_text())["n-samples"][task]["effective"] == 3


def test_humaneval_is_scored_by_the_sandboxed_judge(prepared_benchmarks, benchmarks_dir, tmp_path):
    """A model answering each problem with its canonical solution scores pass@1 = 1; an empty one 0."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    from tokenpo.evals.tasks import write_task_configs

    problems = [
        json.loads(line)
        for line in gzip.decompress((benchmarks_dir / "humaneval" / "HumanEval.jsonl.gz").read_bytes())
        .decode()
        .splitlines()
    ]
    solutions = {p["prompt"]: p["canonical_solution"] for p in problems}

    class Oracle(LM):
        def __init__(self, right: bool):
            super().__init__()
            self.right = right

        def generate_until(self, requests, disable_tqdm=False):
            return [solutions[r.args[0]] if self.right else "    pass\n" for r in requests]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    configs = write_task_configs(tmp_path / "tasks", prepared_benchmarks)
    for right, expected in ((True, 1.0), (False, 0.0)):
        results = simple_evaluate(
            model=Oracle(right),
            tasks=["humaneval"],
            limit=4,
            task_manager=configs.task_manager(),
            confirm_run_unsafe_code=True,
        )
        assert results["results"]["humaneval"]["pass@1,create_test"] == expected


def test_online_configs_swap_only_the_code_scorer(tmp_path):
    from tokenpo.evals.tasks import write_task_configs

    configs = write_task_configs(tmp_path, None)
    assert not configs.offline and set(configs.tasks) == {
        "humaneval",
        "humaneval_64",
        "humaneval_instruct",
        "humaneval_64_instruct",
    }
    text = (tmp_path / "humaneval" / "humaneval.yaml").read_text()
    assert "dataset_path: openai/openai_humaneval" in text
    assert "!function 'tokenpo.evals.tasks.code.pass_at_k_metric'" in text


def test_official_filters_are_restated_exactly():
    """Our build_predictions* equal the official ones (compiled from lm-eval's source; it can't be imported)."""
    import ast

    from tokenpo.evals.tasks import code
    from tokenpo.evals.tasks.configs import official_tasks_dir

    tree = ast.parse((official_tasks_dir() / "humaneval" / "utils.py").read_text())
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("build_predictions"):
            exec(compile(ast.Module([node], []), "official", "exec"), namespace)
    resps = [["    return 1\n", "    return 2\n```\ntrailing"], ["x"]]
    docs = [{"prompt": "def f():\n"}, {"prompt": "def g():\n"}]
    for name in ("build_predictions", "build_predictions_instruct"):
        assert getattr(code, name)(resps, docs) == namespace[name](resps, docs)


def test_lm_eval_code_metric_judges_with_the_prompts_helpers_not_the_programs():
    """lm-eval's HumanEval metric gets only prediction strings and tests; the filter records each
    prediction's prompt so the tester runs the prompt's helpers (here ``poly``), not a rigged copy."""
    from tokenpo.evals.tasks import code

    prompt = (
        "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n\n"
        'def find_zero(xs):\n    """A zero of the polynomial xs."""\n'
    )
    tests = "def check(candidate):\n    assert abs(poly([-6, 1], candidate([-6, 1]))) < 1e-6\n\ncheck(find_zero)"
    honest = "    return -xs[0] / xs[1]\n"
    rigged = "    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n"  # a one-process judge would pass it
    (predictions,) = code.build_predictions([[honest, rigged]], [{"prompt": prompt}])
    assert predictions == [prompt + honest, prompt + rigged]  # lm-eval's filter output, unchanged
    assert code.pass_at_k_metric([tests], [predictions], [1]) == {"pass@1": 0.5}
    assert code.pass_at_k_metric([tests], [[predictions[1]]], [1]) == {"pass@1": 0.0}


def test_suites_are_valid_and_cover_the_six_benchmarks():
    smoke, paper = load_suite("smoke"), load_suite("paper")
    names = {t if isinstance(t, str) else t["task"] for t in paper.tasks}
    assert names == SIX
    assert {t if isinstance(t, str) else t["task"] for t in smoke.tasks} == SIX
    assert smoke.limit == 2 and paper.limit is None


def test_cli_eval_and_its_errors(prepared_benchmarks, tmp_path, capsys):
    out, tiny = tmp_path / "out", ["eval", "--model", "tiny-llama"]
    assert (
        main(
            [
                *tiny,
                "--tasks",
                "truthfulqa_mc1",
                "--limit",
                "1",
                "--data-dir",
                str(prepared_benchmarks),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["harness"]["model_spec"] == "tiny-llama"
    capsys.readouterr()
    assert (
        main([*tiny, "--tasks", "nope", "--data-dir", str(prepared_benchmarks), "--output", str(tmp_path / "x")]) == 2
    )
    assert "nope: task not available offline" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-llama", "--tasks", "gsm8k", "--data-dir", str(tmp_path)]) == 2
    assert "not a prepared data folder" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [gsm8k]\nlimits: 3\n")
    assert main(["eval", "--model", "tiny-llama", "--suite", str(bad), "--data-dir", str(prepared_benchmarks)]) == 2
    assert "limits: unknown key" in capsys.readouterr().err


def test_vllm_backend(prepared_benchmarks, tmp_path):
    from tokenpo.evals.backends import vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not installed (optional extra `vllm`; it pins transformers<5.20, see docs/evaluation.md)")
    from tokenpo.harness.models import resolve_model

    run = evaluate(
        resolve_model("tiny-llama"),
        tasks=["gsm8k"],
        limit=1,
        data_dir=prepared_benchmarks,
        output_dir=tmp_path,
        backend="vllm",
    )
    assert "exact_match,strict-match" in run.results["results"]["gsm8k"]


@pytest.mark.slow
def test_smollm2_runs_every_benchmark_offline(smollm2_path, prepared_benchmarks, tmp_path):
    run = evaluate(
        smollm2_path,
        suite="smoke",
        data_dir=prepared_benchmarks,
        output_dir=tmp_path,
        batch_size=2,
        apply_chat_template=True,  # an instruct model: prompts in its chat format, as users run it
    )
    results = run.results["results"]
    assert set(results) >= SIX
    assert 0.0 < results["truthfulqa_mc2"]["acc,none"] < 1.0
    for task in SIX:
        for key, value in results[task].items():
            if "," in key and "stderr" not in key and not key.startswith(("bleu", "rouge")):
                assert 0.0 <= value <= 1.0, (task, key, value)
    # an instruct model writes real text: IFEval's checkers and the n-gram metrics see words
    rows = [json.loads(line) for line in (tmp_path / "samples" / "ifeval.jsonl").read_text().splitlines()]
    assert all(len(r["resps"][0][0].split()) > 5 for r in rows)


def test_the_leaderboards_read_our_result_folder(smoke_run):
    from tokenpo.leaderboards.results import load_results

    out, _ = smoke_run
    [result] = load_results(out)
    tasks = {task for task, _ in result.items}
    categories = {"mmlu_humanities", "mmlu_other", "mmlu_social_sciences", "mmlu_stem"}
    subjects = {task for task in tasks if task.startswith("mmlu_")} - categories
    assert tasks == SIX | subjects | categories and len(subjects) == 57
    # Groups are pooled from their subjects' items: 2 per subject, 114 for MMLU.
    sizes = {task: len(scores.keys) for (task, _), scores in result.items.items()}
    assert sizes["mmlu"] == 114 and sum(sizes[c] for c in categories) == 114
    assert all(size == 2 for task, size in sizes.items() if task not in categories | {"mmlu"})
    assert result.notes == []
