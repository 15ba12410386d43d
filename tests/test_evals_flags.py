"""lm-eval's flags on ``harness eval`` (issue 34): each changes what lm-eval receives and is recorded.

``--gen-kwargs``, ``--system-instruction``, ``--fewshot-as-multiturn``, ``--predict-only`` (and lm_eval's
underscore spellings), the same settings in suites and in ``harness run``'s ``eval`` block, the answer
journal keyed by them, results to a hub dataset in lm-eval's own layout (planned in a dry run; refused
without a token or the hub), and parity with plain ``lm_eval.simple_evaluate`` under the same flags.

All on the tiny random model and 1-2 documents of the offline benchmarks: seconds each.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tokenpo.evals import evaluate
from tokenpo.evals.errors import EvalError
from tokenpo.evals.generation import FROM_GIVEN, FROM_SUITE, FROM_SUITE_TASK, parse_gen_kwargs
from tokenpo.evals.identity import journal_digest
from tokenpo.harness.cli import build_parser, main

INSTRUCTION = "Answer with one number."


def _rows(folder: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples" / f"{task}.jsonl").read_text().splitlines()]


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if "," in k}


@pytest.fixture
def tiny(tiny_llama, prepared_benchmarks):
    """``evaluate`` on the tiny model, offline, 2 GSM8K problems unless told otherwise."""
    model, tokenizer = tiny_llama

    def run(output_dir: Path, **settings):
        settings = {"tasks": ["gsm8k"], "limit": 2, "batch_size": 2, **settings}
        return evaluate(model, tokenizer, data_dir=prepared_benchmarks, output_dir=output_dir, **settings)

    return run


def _cli(prepared: Path, out: Path, *flags: str) -> list[str]:
    return ["eval", "--model", "tiny-llama", "--data-dir", str(prepared), "--output", str(out), "--no-progress", *flags]


# --gen-kwargs


def test_gen_kwargs_cap_every_answer_and_are_recorded(prepared_benchmarks, tiny_llama, tiny, tmp_path, capsys):
    _, tokenizer = tiny_llama
    out = tmp_path / "capped"
    assert (
        main(_cli(prepared_benchmarks, out, "--tasks", "gsm8k", "--limit", "2", "--gen-kwargs", "max_gen_toks=8")) == 0
    )
    rows = _rows(out, "gsm8k")
    assert {r["doc_id"] for r in rows} == {0, 1}
    for row in rows:
        assert row["arguments"][0][1]["max_gen_toks"] == 8  # what the model was asked with
        assert len(tokenizer(row["resps"][0][0], add_special_tokens=False)["input_ids"]) <= 8
    results = _results(out)
    assert results["configs"]["gsm8k"]["generation_kwargs"]["max_gen_toks"] == 8
    assert results["config"]["gen_kwargs"] == {"max_gen_toks": 8}  # where lm-eval records its --gen_kwargs
    record = results["harness"]["gen_kwargs"]
    assert record["given"] == {"max_gen_toks": 8} and record["suite"] is None
    assert record["tasks"] == {"gsm8k": {"max_gen_toks": {"value": 8, "from": FROM_GIVEN}}}
    # without the flag the official task sets none: the model's default, 256 tokens, the random model fills
    plain = tiny(tmp_path / "plain", limit=1)
    assert "max_gen_toks" not in plain.results["configs"]["gsm8k"]["generation_kwargs"]
    answer = _rows(tmp_path / "plain", "gsm8k")[0]["resps"][0][0]
    assert len(tokenizer(answer, add_special_tokens=False)["input_ids"]) > 8


def test_gen_kwargs_reach_only_generative_tasks_and_say_so(prepared_benchmarks, tmp_path, capsys):
    out = tmp_path / "mc"
    flags = ("--tasks", "truthfulqa_mc1", "--limit", "1", "--gen-kwargs", "max_gen_toks=8")
    assert main(_cli(prepared_benchmarks, out, *flags)) == 0
    assert _results(out)["harness"]["gen_kwargs"]["tasks"] == {}
    assert "gen_kwargs: not used: none of the tasks generates" in capsys.readouterr().out


def test_a_suites_own_task_values_win_and_the_result_says_where_each_came_from(prepared_benchmarks, tmp_path, capsys):
    suite = tmp_path / "mine.yaml"
    suite.write_text(
        "limit: 1\n"
        "gen_kwargs: {max_gen_toks: 5, temperature: 0}\n"
        f"system_instruction: {INSTRUCTION}\n"
        "tasks:\n"
        "  - task: gsm8k\n"
        "    generation_kwargs: {until: ['Question:'], do_sample: false, max_gen_toks: 3}\n"
        "  - ifeval\n"
    )
    out = tmp_path / "suite"
    assert main(_cli(prepared_benchmarks, out, "--suite", str(suite), "--gen_kwargs", "max_gen_toks=4")) == 0
    results = _results(out)
    tasks = results["harness"]["gen_kwargs"]["tasks"]
    assert tasks["gsm8k"]["max_gen_toks"] == {"value": 3, "from": FROM_SUITE_TASK, "instead_of": 4}
    assert tasks["gsm8k"]["until"] == {"value": ["Question:"], "from": FROM_SUITE_TASK}
    assert tasks["gsm8k"]["temperature"] == {"value": 0, "from": FROM_SUITE}  # not set by its entry
    assert tasks["ifeval"]["max_gen_toks"] == {"value": 4, "from": FROM_GIVEN}
    assert tasks["ifeval"]["temperature"] == {"value": 0, "from": FROM_SUITE}
    assert results["configs"]["gsm8k"]["generation_kwargs"]["max_gen_toks"] == 3
    assert results["configs"]["ifeval"]["generation_kwargs"]["max_gen_toks"] == 4
    assert results["config"]["gen_kwargs"] == {"max_gen_toks": 4, "temperature": 0}
    assert results["system_instruction"] == INSTRUCTION == results["harness"]["system_instruction"]
    assert _rows(out, "ifeval")[0]["arguments"][0][0].startswith(INSTRUCTION)
    assert "gen_kwargs: gsm8k keeps its suite entry's max_gen_toks=3 (asked: 4)" in capsys.readouterr().out


def test_gen_kwargs_are_read_as_lm_evals_command_line_reads_them():
    utils = pytest.importorskip("lm_eval._cli.utils")  # lm-eval 0.4.13's own reader
    for text in ("max_gen_toks=8,temperature=0", 'until=["\\n\\n","Q:"],do_sample=false,top_p=0.95', "a=x,b=-1"):
        assert parse_gen_kwargs(text) == utils.key_val_to_dict(text), text
    assert parse_gen_kwargs(["max_gen_toks=8", "temperature=0"]) == {"max_gen_toks": 8, "temperature": 0}
    assert parse_gen_kwargs('{"max_gen_toks": 8}') == {"max_gen_toks": 8}
    for bad, problem in (("max_gen_toks", "expected KEY=VALUE"), ("", "expected KEY=VALUE"), ("{oops", "JSON")):
        with pytest.raises(EvalError, match=rf"^--gen-kwargs: .*{problem}"):
            parse_gen_kwargs(bad)


# --system-instruction, --fewshot-as-multiturn


def test_system_instruction_and_few_shot_turns_reach_the_prompt(tiny, tmp_path):
    settings = {"limit": 1, "gen_kwargs": {"max_gen_toks": 2}}
    plain = tiny(tmp_path / "plain", **settings)
    told = tiny(tmp_path / "told", system_instruction=INSTRUCTION, **settings)
    prompt = _rows(tmp_path / "told", "gsm8k")[0]["arguments"][0][0]
    assert prompt.startswith(INSTRUCTION) and not _rows(tmp_path / "plain", "gsm8k")[0]["arguments"][0][0].startswith(
        INSTRUCTION
    )
    assert told.results["system_instruction"] == INSTRUCTION and plain.results["system_instruction"] is None
    assert told.results["harness"]["system_instruction"] == INSTRUCTION

    chat = {"apply_chat_template": True, "system_instruction": INSTRUCTION, **settings}
    turns = tiny(tmp_path / "turns", **chat)  # lm-eval's default: few-shot examples as turns
    single = tiny(tmp_path / "single", fewshot_as_multiturn=False, **chat)
    as_turns = _rows(tmp_path / "turns", "gsm8k")[0]["arguments"][0][0]
    as_one = _rows(tmp_path / "single", "gsm8k")[0]["arguments"][0][0]
    assert as_turns.count("<|im_start|>user") == 6 and as_turns.count("<|im_start|>assistant") == 6  # 5 shots + 1
    assert as_one.count("<|im_start|>user") == 1 and as_one.startswith(f"<|im_start|>system\n{INSTRUCTION}")
    assert turns.results["fewshot_as_multiturn"] is True and single.results["fewshot_as_multiturn"] is False
    assert single.results["harness"]["fewshot_as_multiturn"] is False


def test_few_shot_turns_need_the_chat_template(tiny, tmp_path):
    with pytest.raises(EvalError, match=r"^--fewshot-as-multiturn: true needs the chat template"):
        tiny(tmp_path / "x", fewshot_as_multiturn=True)
    suite = tmp_path / "turns.yaml"
    suite.write_text("fewshot_as_multiturn: true\ntasks: [gsm8k]\n")
    with pytest.raises(EvalError, match=r"^suite turns: fewshot_as_multiturn: true needs the chat template"):
        tiny(tmp_path / "y", tasks=None, suite=str(suite))


# --predict-only


def test_predict_only_writes_answers_without_metrics_and_a_scored_run_reuses_them(tiny, tmp_path, capsys):
    out = tmp_path / "predicted"
    predicted = tiny(out, predict_only=True, gen_kwargs={"max_gen_toks": 4})
    scores = predicted.results["results"]["gsm8k"]
    assert {k.split(",")[0] for k in _metrics(scores)} == {"bypass", "bypass_stderr"}  # lm-eval's placeholder
    assert "exact_match,strict-match" not in scores and predicted.results["harness"]["predict_only"] is True
    assert all(row["resps"][0][0] for row in _rows(out, "gsm8k")) and len(_rows(out, "gsm8k")) == 4  # 2 filters
    scored = tiny(out, gen_kwargs={"max_gen_toks": 4})
    assert (scored.reused_requests, scored.computed_requests) == (predicted.computed_requests, 0)
    assert "exact_match,strict-match" in scored.results["results"]["gsm8k"]


# the journal and the folder's claim


def test_other_generation_settings_never_reuse_journaled_answers(tiny, tmp_path):
    out = tmp_path / "eight"
    first = tiny(out, gen_kwargs={"max_gen_toks": 8})
    with pytest.raises(EvalError, match=r"settings: the folder holds answers or results of a run with another"):
        tiny(out, gen_kwargs={"max_gen_toks": 4})
    with pytest.raises(EvalError, match=r"settings: "):
        tiny(out, gen_kwargs={"max_gen_toks": 8}, system_instruction=INSTRUCTION)
    again = tiny(out, gen_kwargs={"max_gen_toks": 8})
    assert (again.reused_requests, again.computed_requests) == (first.computed_requests, 0)
    other = tiny(tmp_path / "four", gen_kwargs={"max_gen_toks": 4})
    journals = {p.name for folder in ("eight", "four") for p in (tmp_path / folder / ".cache").glob("requests-*")}
    assert len(journals) == 2 and other.reused_requests == 0
    assert first.results["harness"]["journal"] != other.results["harness"]["journal"]


def test_the_journal_name_of_runs_without_these_settings_is_unchanged():
    model, seeds, computation = {"weights": {"sha256": "0" * 64}}, {"random_seed": 0}, {"batch_size": 8}
    before = journal_digest(model, seeds, computation)
    assert journal_digest(model, seeds, computation, {}) == before
    named = {
        journal_digest(model, seeds, computation, prompting)
        for prompting in (
            {"gen_kwargs": {"max_gen_toks": 8}},
            {"gen_kwargs": {"max_gen_toks": 4}},
            {"system_instruction": INSTRUCTION},
            {"fewshot_as_multiturn": False},
        )
    }
    assert len(named) == 4 and before not in named


# lm_eval's underscore spellings


def test_lm_evals_underscore_spellings_parse_to_the_same_settings(tmp_path):
    from tokenpo.harness.commands.evaluation import lm_eval_settings

    common = ["eval", "--tasks", "gsm8k"]
    ours = [
        *["--gen-kwargs", "max_gen_toks=8,temperature=0", "--fewshot-as-multiturn", "false"],
        *["--system-instruction", INSTRUCTION, "--predict-only", "--apply-chat-template"],
        *["--num-fewshot", "3", "--batch-size", "2", "--output", str(tmp_path / "o"), "--log-samples"],
    ]
    theirs = [
        *["--gen_kwargs", "max_gen_toks=8", "temperature=0", "--fewshot_as_multiturn", "false"],
        *["--system_instruction", INSTRUCTION, "--predict_only", "--apply_chat_template"],
        *["--num_fewshot", "3", "--batch_size", "2", "--output_path", str(tmp_path / "o"), "--log_samples"],
    ]
    parser = build_parser()
    a, b = parser.parse_args([*common, *ours]), parser.parse_args([*common, *theirs])
    assert (
        lm_eval_settings(a)
        == lm_eval_settings(b)
        == {
            "apply_chat_template": True,
            "fewshot_as_multiturn": False,
            "system_instruction": INSTRUCTION,
            "gen_kwargs": {"max_gen_toks": 8, "temperature": 0},
            "predict_only": True,
        }
    )
    assert (
        (a.num_fewshot, a.batch_size, a.output)
        == (b.num_fewshot, b.batch_size, b.output)
        == (3, 2, str(tmp_path / "o"))
    )
    assert parser.parse_args([*common, "--fewshot_as_multiturn"]).fewshot_as_multiturn is True  # bare: true


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--apply_chat_template", "chatml"], "--apply-chat-template: a named template ('chatml') is not supported"),
        (["--output_path", "results.json"], "--output: results.json: a result folder, not a results file"),
        (["--gen-kwargs", "max_gen_toks"], "--gen-kwargs: max_gen_toks: expected KEY=VALUE"),
        (["--dry-run"], "--dry-run: only with --hub-results ORG/NAME"),
        (["--hub-results", "no-slash", "--dry-run"], "--hub-results: no-slash: expected ORG/NAME"),
    ],
)
def test_flag_errors_are_one_line_naming_the_flag(flags, message, tmp_path, capsys):
    assert main(["eval", "--model", "tiny-llama", "--tasks", "gsm8k", "--output", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


# harness run's eval block


def test_harness_runs_eval_block_takes_the_settings_and_passes_them_to_evaluate(monkeypatch, tmp_path):
    import tokenpo.evals
    from tokenpo.core.config import ConfigError, from_mapping, to_mapping
    from tokenpo.harness.pipeline.config import EvalConfig
    from tokenpo.harness.pipeline.run import Pipeline

    block = {"gen_kwargs": {"max_gen_toks": 8}, "system_instruction": INSTRUCTION, "fewshot_as_multiturn": False}
    settings = from_mapping(EvalConfig, {"suite": "smoke", **block}, "run.yaml")
    defaults = to_mapping(EvalConfig())
    assert {key: defaults[key] for key in block} == {
        "gen_kwargs": None,
        "system_instruction": None,
        "fewshot_as_multiturn": None,
    }  # the values to leave out of the eval stage's key (existing runs keep theirs)
    for bad, key in (
        ({"gen_kwargs": {}}, "gen_kwargs"),
        ({"system_instruction": " "}, "system_instruction"),
        ({"fewshot_as_multiturn": True, "apply_chat_template": False}, "fewshot_as_multiturn"),
    ):
        with pytest.raises(ConfigError, match=rf"^run.yaml: {key}: "):
            from_mapping(EvalConfig, bad, "run.yaml")

    seen = {}
    monkeypatch.setattr(
        tokenpo.evals, "evaluate", lambda *a, **kw: seen.update(kw) or SimpleNamespace(results={"results": {}})
    )
    pipeline = SimpleNamespace(config=SimpleNamespace(eval=settings))
    Pipeline._benchmark_eval(pipeline, SimpleNamespace(path="m"), tmp_path, tmp_path / "out", {})
    assert {key: seen[key] for key in block} == block


# results to a hub dataset


class _RecordingHub:
    """The part of ``HfApi`` lm-eval's tracker and our upload call, recording what would reach the hub."""

    def __init__(self):
        self.repos, self.paths = [], set()

    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=None, **_):
        self.repos.append((repo_id, repo_type, private))

    def upload_file(self, repo_id, path_or_fileobj, path_in_repo, repo_type=None, **_):
        self.paths.add((repo_id, path_in_repo))

    def upload_folder(self, repo_id, folder_path, path_in_repo, repo_type=None, **_):
        self.paths.update((repo_id, f"{path_in_repo}/{p.name}") for p in Path(folder_path).iterdir())

    def create_commit(self, repo_id, operations, repo_type=None, **_):
        self.paths.update((repo_id, op.path_in_repo) for op in operations)
        return SimpleNamespace(commit_url=f"https://hub/{repo_id}/commit/1")


def _lm_evals_upload(monkeypatch, tmp_path, results: dict, samples: dict, model_name: str, org: str, name: str):
    """What lm-eval 0.4.13's own ``EvaluationTracker`` pushes for ``results`` and ``samples`` (in a fake hub),
    and the folder it writes its sample files to."""
    from lm_eval.loggers import EvaluationTracker

    hub = _RecordingHub()
    monkeypatch.setattr(EvaluationTracker, "_api", staticmethod(lambda token=None: hub if token else None))
    tracker = EvaluationTracker(
        output_path=str(tmp_path / "lm_eval"),
        hub_results_org=org,
        details_repo_name=name,
        push_results_to_hub=True,
        push_samples_to_hub=True,
        token="t",
    )
    tracker.general_config_tracker.model_name = model_name
    tracker.general_config_tracker.model_name_sanitized = model_name.replace("/", "__")
    tracker.save_results_aggregated(results=json.loads(json.dumps(results)), samples=samples)
    for task, rows in samples.items():
        tracker.save_results_samples(task_name=task, samples=json.loads(json.dumps(rows)))
    return hub, tracker.date_id, tmp_path / "lm_eval" / tracker.general_config_tracker.model_name_sanitized


def test_the_hub_plan_of_a_dry_run_is_lm_evals_layout(prepared_benchmarks, tmp_path, monkeypatch, capsys):
    # A dry run needs neither a token nor the hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "out"
    flags = ("--tasks", "gsm8k,truthfulqa_mc1", "--limit", "1", "--gen-kwargs", "max_gen_toks=2")
    assert main(_cli(prepared_benchmarks, out, *flags, "--hub-results", "my-org/evals", "--dry-run")) == 0
    printed = capsys.readouterr().out
    assert "hub dataset my-org/evals-private (private" in printed and "dry run: nothing uploaded" in printed
    planned = dict(line.strip().split(" -> ") for line in printed.splitlines() if line.startswith("  /"))

    results = _results(out)
    samples = {task: _rows(out, task) for task in ("gsm8k", "truthfulqa_mc1")}
    hub, their_date, their_folder = _lm_evals_upload(
        monkeypatch, tmp_path, results, samples, "tiny-llama", "my-org", "evals"
    )
    our_date = next(out.glob("tiny-llama/results_*.json")).stem.removeprefix("results_")
    theirs = {path.replace(their_date, our_date) for repo, path in hub.paths}
    assert {repo for repo, _ in hub.paths} == {"my-org/evals-private"}
    assert (
        set(planned.values())
        == theirs
        == {
            f"tiny-llama/results_{our_date}.json",
            f"tiny-llama/samples_gsm8k_{our_date}.jsonl",
            f"tiny-llama/samples_truthfulqa_mc1_{our_date}.jsonl",
        }
    )
    for local, in_repo in planned.items():  # the same bytes as lm-eval's own files
        if "samples_" in in_repo:
            their_file = their_folder / Path(in_repo).name.replace(our_date, their_date)
            assert Path(local).read_text() == their_file.read_text(), in_repo
        else:
            assert json.loads(Path(local).read_text()) == results


def test_a_hub_id_is_laid_out_as_lm_eval_lays_it_out(tmp_path, monkeypatch):
    from tokenpo.evals.hub import HubTarget, hub_plan, upload_results
    from tokenpo.evals.results import link_lm_eval_layout, write_samples

    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    rows = [{"doc_id": 0, "arguments": [["q", {"until": ["\n"]}]], "resps": [["a"]], "filtered_resps": ["a"],
             "target": 7, "doc_hash": "h", "prompt_hash": "p", "target_hash": "t"}]  # fmt: skip
    results = {"results": {"gsm8k": {}}, "configs": {"gsm8k": {}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    sample = write_samples(tmp_path, "gsm8k", rows)
    layout = link_lm_eval_layout(tmp_path, "HuggingFaceTB__SmolLM2-135M-Instruct", tmp_path / "results.json", [sample])
    plan = hub_plan(tmp_path, layout, model)
    hub, their_date, _ = _lm_evals_upload(monkeypatch, tmp_path, results, {"gsm8k": rows}, model, "org", "evals")
    theirs = {path.replace(their_date, layout.date_id) for _, path in hub.paths}
    assert (
        {f.path_in_repo for f in plan}
        == theirs
        == {
            f"{model}/results_{layout.date_id}.json",  # the results where save_results_aggregated puts them
            f"HuggingFaceTB__SmolLM2-135M-Instruct/results_{layout.date_id}.json",  # and the samples' folder
            f"HuggingFaceTB__SmolLM2-135M-Instruct/samples_gsm8k_{layout.date_id}.jsonl",
        }
    )
    # the upload: a dataset (private unless public), one commit of the plan, then lm-eval's card
    import huggingface_hub
    from lm_eval.loggers import EvaluationTracker

    ours = _RecordingHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: ours)
    cards = []
    monkeypatch.setattr(EvaluationTracker, "recreate_metadata_card", lambda self: cards.append(self.details_repo))
    target = HubTarget.parse("org/evals", public=True)
    assert upload_results(plan, target, "token", model) == "https://hub/org/evals/commit/1"
    assert ours.repos == [("org/evals", "dataset", False)] and cards == ["org/evals"]
    assert {path for _, path in ours.paths} == theirs


def test_the_hub_upload_is_refused_before_evaluating_without_a_token_or_the_hub(
    prepared_benchmarks, tmp_path, monkeypatch, capsys
):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    out = tmp_path / "never"
    run = _cli(prepared_benchmarks, out, "--tasks", "gsm8k", "--limit", "1", "--hub-results", "my-org/evals")

    def refused(reason: str) -> None:
        assert main(run) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --hub-results: {reason}") and err.count("\n") == 1, err
        assert not out.exists()  # nothing evaluated

    refused("no hub token")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refused("HF_HUB_OFFLINE is set")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # no network here: the hub cannot be reached; with one, it refuses the made-up token
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    refused("cannot reach the hub")


# parity with plain lm-eval


@pytest.mark.parametrize("predict_only", [False, True], ids=["scored", "predict-only"])
def test_the_same_flags_give_plain_lm_evals_numbers(tiny_llama, prepared_benchmarks, tmp_path, predict_only):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from tokenpo.evals.tasks import write_task_configs

    model, tokenizer = tiny_llama
    tasks, flags = (
        ["gsm8k", "truthfulqa_mc2"],
        {
            "system_instruction": INSTRUCTION,
            "apply_chat_template": True,
            "fewshot_as_multiturn": False,
            "predict_only": predict_only,
        },
    )
    gen_kwargs = "max_gen_toks=6,temperature=0"
    configs = write_task_configs(tmp_path / "tasks", prepared_benchmarks)
    theirs = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu"),
        tasks=tasks,
        limit=2,
        task_manager=configs.task_manager(),
        gen_kwargs=gen_kwargs,  # as lm_eval's command line passes it, parsed by lm-eval
        bootstrap_iters=1000,
        **flags,
    )
    out = tmp_path / "ours"
    ours = evaluate(
        model, tokenizer, tasks=tasks, limit=2, data_dir=prepared_benchmarks, output_dir=out, batch_size=2,
        gen_kwargs=parse_gen_kwargs(gen_kwargs), **flags,
    ).results  # fmt: skip
    for task in tasks:
        assert _metrics(ours["results"][task]) == _metrics(theirs["results"][task]), task
        assert ours["configs"][task].get("generation_kwargs") == theirs["configs"][task].get("generation_kwargs")
        mine = {(r["doc_id"], r["filter"]): r for r in _rows(out, task)}
        other = {(r["doc_id"], r["filter"]): json.loads(json.dumps(r, default=str)) for r in theirs["samples"][task]}
        assert mine.keys() == other.keys()
        for key, row in mine.items():
            for field in ("arguments", "resps", "filtered_resps", "doc_hash", "prompt_hash", "target_hash"):
                assert row[field] == other[key][field], (task, key, field)
    assert ours["config"]["gen_kwargs"] == theirs["config"]["gen_kwargs"] == {"max_gen_toks": 6, "temperature": 0}
    for key in ("system_instruction", "fewshot_as_multiturn"):
        assert ours[key] == flags[key]
    if not predict_only:
        assert any(v for v in _metrics(ours["results"]["truthfulqa_mc2"]).values() if isinstance(v, float))
