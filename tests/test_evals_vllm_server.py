"""The vllm-server backend: its server's lifecycle, the checks that refuse a server that would score at
chance, and (``tox -e vllm``) the same answers as the hf backend through a real vLLM server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tokenpo.evals.errors import EvalError
from tokenpo.evals.vllm_server import ServerBackend, check_server, model_dtype

FAKE = Path(__file__).parent / "fake_vllm"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def fake(mode: str, tmp_path: Path, delay: float = 0.0, env: dict | None = None, **settings) -> ServerBackend:
    """A backend whose 'vLLM environment' is this interpreter with the stand-in server on its path."""
    env = {"PYTHONPATH": str(FAKE), "FAKE_VLLM_MODE": mode, "FAKE_VLLM_PIDFILE": str(tmp_path / "server.pid"),
           "FAKE_VLLM_DELAY": str(delay), **(env or {})}  # fmt: skip
    return ServerBackend(python=sys.executable, env=env, **settings)


def test_a_started_server_answers_and_is_gone_after_the_block(tiny_model_dirs, tmp_path):
    from transformers import AutoTokenizer

    model = tiny_model_dirs["llama"]
    with fake("good", tmp_path).start(model, tmp_path / "server.log") as server:
        pid = int((tmp_path / "server.pid").read_text())
        assert _alive(pid) and server.base_url.startswith("http://127.0.0.1:")
        check_server(server.base_url, model, AutoTokenizer.from_pretrained(model))  # passes: nothing raised
    assert not _alive(pid)


@pytest.mark.parametrize(
    ("mode", "field"),
    [("no-logprobs", "logprobs: the server returns no prompt log-probabilities"), ("other-tokenizer", "tokenizer:")],
)
def test_a_server_that_would_score_at_chance_is_refused(tiny_model_dirs, tmp_path, mode, field):
    from transformers import AutoTokenizer

    model = tiny_model_dirs["llama"]
    tokenizer = AutoTokenizer.from_pretrained(model)
    with fake(mode, tmp_path).start(model, tmp_path / "server.log") as server, pytest.raises(EvalError, match=field):
        check_server(server.base_url, model, tokenizer)


def test_a_server_that_dies_at_start_names_its_log(tiny_model_dirs, tmp_path):
    broken = ServerBackend(python=sys.executable, env={"PYTHONPATH": str(tmp_path / "none")})
    dies = pytest.raises(EvalError, match=r"server.log: vllm server: exited with 1: .*No module named 'vllm'")
    with dies, broken.start(tiny_model_dirs["llama"], tmp_path / "server.log"):
        pass


def test_the_server_computes_in_the_models_own_dtype_unless_told(tiny_model_dirs, tmp_path):
    # As transformers' dtype="auto" (plain lm_eval's hf default): config.json's dtype, its older name
    # torch_dtype, else float32. vLLM's own "auto" would serve float32 weights in half precision.
    for declared, expected in (({"dtype": "bfloat16"}, "bfloat16"), ({"torch_dtype": "float16"}, "float16"),
                               ({}, "float32")):  # fmt: skip
        folder = tmp_path / expected
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", **declared}))
        assert model_dtype(folder) == expected
    model = tiny_model_dirs["llama"]
    own = model_dtype(model)
    for backend, dtype in ((fake("good", tmp_path), own), (fake("good", tmp_path, dtype="float16"), "float16")):
        with backend.start(model, tmp_path / "server.log"):
            argv = json.loads((tmp_path / "server.pid.argv").read_text())
        assert argv[argv.index("--dtype") + 1] == dtype == backend.identity(model)["dtype"]
    # A running server says nothing of its dtype: none is recorded rather than a guess.
    assert ServerBackend(base_url="http://127.0.0.1:1/v1").identity(model)["dtype"] is None


def test_a_server_on_a_small_machine_computes_on_every_core(tiny_model_dirs, tmp_path, monkeypatch):
    # vLLM's CPU build keeps a core for its scheduler: on 2 cores it computed on one (266 s for 40 GSM8K
    # problems against 155 s on both, the same answers). A user's own setting is kept.
    from tokenpo.evals import vllm_server

    def started_with(cores: int, own: dict[str, str]) -> dict[str, str]:
        monkeypatch.setattr(vllm_server.os, "sched_getaffinity", lambda pid: set(range(cores)))
        with fake("good", tmp_path, env=own).start(tiny_model_dirs["llama"], tmp_path / "server.log"):
            return json.loads((tmp_path / "server.pid.env").read_text())

    assert started_with(2, {})["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in started_with(64, {})  # vLLM's own choice on a big machine
    assert started_with(2, {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"})["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert started_with(2, {})["VLLM_MAX_STOP_STRINGS"] == str(vllm_server.STARTED_STOP_STRINGS)


def test_sharded_servers_give_one_servers_results_and_the_final_pass_starts_none(
    tiny_model_dirs, prepared_benchmarks, tmp_path
):
    from tokenpo.evals import evaluate

    model = tiny_model_dirs["llama"]
    common = {"tasks": ["truthfulqa_mc2", "gsm8k"], "limit": 4, "data_dir": prepared_benchmarks,
              "backend": "vllm-server", "server": fake("good", tmp_path)}  # fmt: skip
    one = evaluate(model, output_dir=tmp_path / "one", **common)
    two = evaluate(model, output_dir=tmp_path / "two", shards=2, **common)
    assert two.results["results"] == one.results["results"]
    assert one.results["results"]["truthfulqa_mc2"]["acc,none"] not in (0.0, 1.0)  # answers that tell items apart
    cache = tmp_path / "two" / ".cache"
    assert (cache / "shard-0" / "vllm-server.log").is_file() and (cache / "shard-1" / "vllm-server.log").is_file()
    assert not (cache / "vllm-server.log").exists()  # the scoring pass read the shards' journals, served nothing
    assert two.computed_requests == 0 and two.reused_requests == one.computed_requests > 0


def test_killing_the_harness_leaves_no_server(tiny_model_dirs, tmp_path):
    harness = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_evals_vllm_server import fake
        from pathlib import Path
        with fake("good", Path({str(tmp_path)!r})).start({tiny_model_dirs["llama"]!r}, Path({str(tmp_path)!r}) / "log"):
            print("ready", flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", harness], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    pid = int((tmp_path / "server.pid").read_text())
    assert _alive(pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_a_served_run_killed_mid_way_leaves_no_server_and_resumes_to_the_same_results(
    tiny_model_dirs, prepared_benchmarks, tmp_path
):
    from tokenpo.evals import evaluate

    model, killed = tiny_model_dirs["llama"], tmp_path / "killed"
    common = {"tasks": ["truthfulqa_mc2"], "limit": 12, "data_dir": str(prepared_benchmarks), "backend": "vllm-server"}
    harness = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_evals_vllm_server import fake
        from tokenpo.evals import evaluate
        evaluate({model!r}, output_dir={str(killed)!r}, server=fake("good", Path({str(tmp_path)!r}), delay=0.5),
                 **{common!r})
    """)
    process = subprocess.Popen([sys.executable, "-c", harness])
    deadline = time.monotonic() + 180
    while not [p for p in killed.glob(".cache/requests-*.jsonl") if p.read_text().strip()]:
        assert process.poll() is None and time.monotonic() < deadline, "no answer was journaled"
        time.sleep(0.05)
    server = int((tmp_path / "server.pid").read_text())
    process.kill()  # SIGKILL: no handler of ours runs; the server must go all the same
    process.wait()
    deadline = time.monotonic() + 20
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server)
    (journal,) = killed.glob(".cache/requests-*.jsonl")
    journaled = len(journal.read_text().splitlines())
    assert not (killed / "results.json").exists()

    resumed = evaluate(model, output_dir=killed, server=fake("good", tmp_path), **common)
    whole = evaluate(model, output_dir=tmp_path / "whole", server=fake("good", tmp_path), **common)
    assert resumed.results["results"] == whole.results["results"]
    assert 0 < resumed.reused_requests == journaled < whole.computed_requests
    assert resumed.reused_requests + resumed.computed_requests == whole.computed_requests


HUMANEVAL_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # lm-eval's humaneval: five, vLLM takes 4
WRITTEN = "    return a + b\nprint(add(1, 2))\nclass Spare: pass"  # what the stand-in server generates


def test_a_generation_stops_at_every_stop_string_whether_the_server_takes_them_all_or_four(tiny_model_dirs, tmp_path):
    from lm_eval.api.instance import Instance

    from tokenpo.evals.resume import ResumableLM, read_journal
    from tokenpo.evals.served_lm import OPENAI_STOP_STRINGS
    from tokenpo.evals.vllm_server import REQUEST_TIMEOUT_SECONDS, STARTED_STOP_STRINGS, completions_lm

    model = tiny_model_dirs["llama"]
    request = Instance("generate_until", doc={}, arguments=("def add(a, b):\n", {"until": HUMANEVAL_STOPS}), idx=0)
    # Started by the harness, the server takes every stop string; a running one OpenAI's 4 (vLLM's default),
    # and the fifth ("\nprint", which comes first in this text) is applied to its answer here.
    for name, server_takes, sent in (("started", None, STARTED_STOP_STRINGS), ("running", "4", OPENAI_STOP_STRINGS)):
        backend = fake("good", tmp_path, env={"FAKE_VLLM_TEXT": WRITTEN, **({"VLLM_MAX_STOP_STRINGS": server_takes}
                                                                           if server_takes else {})})  # fmt: skip
        journal = tmp_path / f"{name}.jsonl"
        with backend.start(model, tmp_path / f"{name}.log") as server:
            lm = ResumableLM(completions_lm(server.base_url, model, model, 64, 2, sent), journal)
            assert lm.generate_until([request]) == ["    return a + b"], name
            # Not lm-eval's 300 s: 1,280-token IFEval answers, 32 in flight on 2 cores, took longer and were
            # generated again from the start until the run failed.
            assert lm.inner.timeout == REQUEST_TIMEOUT_SECONDS >= 3600
        assert list(read_journal(journal).values()) == ["    return a + b"], name  # a resumed run reads the same


def test_humaneval_through_a_running_server_that_takes_four_stop_strings(
    tiny_model_dirs, prepared_benchmarks, tmp_path
):
    from tokenpo.evals import evaluate

    model = tiny_model_dirs["llama"]
    backend = fake("good", tmp_path, env={"FAKE_VLLM_TEXT": WRITTEN, "VLLM_MAX_STOP_STRINGS": "4"})
    with backend.start(model, tmp_path / "server.log") as server:
        running = ServerBackend(base_url=server.base_url, served_name=model)
        result = evaluate(model, output_dir=tmp_path / "out", tasks=["humaneval"], limit=1,
                          data_dir=prepared_benchmarks, backend="vllm-server", server=running)  # fmt: skip
    (row,) = _per_item(result.output_dir, "humaneval").values()
    assert row["resps"][0][0] == "    return a + b"


def test_the_cli_refuses_without_a_vllm_environment(tmp_path, monkeypatch, capsys):
    from tokenpo.harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.delenv("HARNESS_VLLM_PYTHON", raising=False)
    code = main(
        [
            "eval",
            "--model",
            "tiny-llama",
            "--tasks",
            "gsm8k",
            "--backend",
            "vllm-server",
            "--online",
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("no vLLM environment: run `harness vllm install` (or pass --vllm-python / set $HARNESS_VLLM_PYTHON)")
    )


# ---------------------------------------------------------------- a real vLLM server (tox -e vllm)


def _per_item(folder: Path, task: str) -> dict[int, dict]:
    import json

    rows = (folder / "samples" / f"{task}.jsonl").read_text().splitlines()
    return {row["doc_id"]: row for row in map(json.loads, rows)}


def _answer(row: dict) -> object:
    """What the model answered: the generated text after filtering, or the choice it ranks first."""
    if "filtered_resps" in row and isinstance(row["filtered_resps"][0], str):
        return row["filtered_resps"][0]
    scores = [float(r[0]) for r in row["filtered_resps"]]
    return scores.index(max(scores))


@pytest.mark.vllm
def test_a_real_vllm_server_answers_as_the_hf_backend(smollm2_path, prepared_benchmarks, tmp_path):
    from tokenpo.evals import evaluate
    from tokenpo.harness.errors import HarnessError
    from tokenpo.harness.pipeline.config import ServerConfig
    from tokenpo.harness.vllm_env import server_backend

    try:
        server = server_backend(ServerConfig())  # what `harness eval --backend vllm-server` starts
    except HarnessError as error:
        pytest.skip(f"{error} (tox -e vllm installs it)")
    tasks, limits = ["gsm8k", "truthfulqa_mc2"], 20
    common = {"tasks": tasks, "limit": limits, "data_dir": prepared_benchmarks}
    hf = evaluate(smollm2_path, output_dir=tmp_path / "hf", backend="hf", batch_size=8, **common)
    served = evaluate(smollm2_path, output_dir=tmp_path / "vllm", backend="vllm-server", server=server, **common)
    # The model's own dtype, as the hf backend loads it: in bfloat16, greedy GSM8K chains of thought part
    # ways after a few dozen tokens (13 of 20 answers agreed; TruthfulQA mc2 20 of 20, 0.3513 vs 0.3499).
    assert served.results["harness"]["model_identity"]["server"]["dtype"] == "float32" == model_dtype(smollm2_path)
    for task, metric in (("gsm8k", "exact_match,strict-match"), ("truthfulqa_mc2", "acc,none")):
        ours, theirs = _per_item(hf.output_dir, task), _per_item(served.output_dir, task)
        assert sorted(ours) == sorted(theirs) == list(range(limits))
        same = sum(_answer(ours[i]) == _answer(theirs[i]) for i in ours)
        assert same >= 0.95 * limits, f"{task}: {same} of {limits} answers agree"
        a, b = hf.results["results"][task], served.results["results"][task]
        stderr = max(a[metric.replace(",", "_stderr,")], b[metric.replace(",", "_stderr,")])
        assert abs(a[metric] - b[metric]) <= 1.96 * stderr, (task, a[metric], b[metric], stderr)
