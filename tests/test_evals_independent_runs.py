"""Two evaluations in one process do not see each other: no setting of one reaches the other's scoring.

The code metric is where they used to meet (sandbox limits and prompts kept in module globals); it now
takes its limits from its task definition and each program carries its own prompt.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import threading
from pathlib import Path

import pytest

from tokenpo.evals import evaluate
from tokenpo.evals.vllm_server import ServerBackend
from tokenpo.sandbox import SandboxLimits

FAKE_VLLM = Path(__file__).parent / "fake_vllm"
GENEROUS = SandboxLimits(wall_seconds=30.0, cpu_seconds=30)
TOO_SMALL = SandboxLimits(memory_bytes=1 << 20)  # no Python program runs in 1 MiB
VOLATILE = {"date", "start_time", "end_time", "total_evaluation_time_seconds"}


@pytest.fixture(scope="module")
def humaneval(benchmarks_dir) -> list[dict]:
    raw = gzip.decompress((benchmarks_dir / "humaneval" / "HumanEval.jsonl.gz").read_bytes()).decode()
    return [json.loads(line) for line in raw.splitlines()]


def _server_writing(text: str) -> ServerBackend:
    """A vllm-server backend (the stand-in server, started per evaluation) that answers every prompt with ``text``."""
    env = {"PYTHONPATH": str(FAKE_VLLM), "FAKE_VLLM_MODE": "good", "FAKE_VLLM_TEXT": text}
    return ServerBackend(python=sys.executable, env=env)


def _comparable(run_results: dict, folder: Path) -> dict:
    """The results without their times, and with the output folder written as <out>."""
    kept = {k: v for k, v in run_results.items() if k not in VOLATILE}
    return json.loads(json.dumps(kept, default=str).replace(str(folder), "<out>"))


def _samples(folder: Path) -> list[dict]:
    rows = (folder / "samples" / "humaneval.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(row).items() if k in ("doc_id", "filtered_resps", "pass@1")} for row in rows]


def test_two_evaluations_run_together_each_get_the_result_they_get_alone(
    humaneval, tiny_model_dirs, prepared_benchmarks, tmp_path
):
    # The first problem's own solution as every answer: under generous limits it passes, in too little
    # memory for any program it fails. Each evaluation starts its own server and writes its own folder.
    model = tiny_model_dirs["llama"]
    solution = humaneval[0]["canonical_solution"]
    settings = {"generous": GENEROUS, "too_small": TOO_SMALL}

    def run(name: str, limits: SandboxLimits, root: Path, ready: threading.Barrier | None = None):
        if ready is not None:
            ready.wait()  # both threads write task files, start servers and score at the same time
        return evaluate(model, output_dir=root / name, tasks=["humaneval"], limit=1, data_dir=prepared_benchmarks,
                        backend="vllm-server", server=_server_writing(solution), sandbox=limits)  # fmt: skip

    alone = {name: run(name, limits, tmp_path / "alone") for name, limits in settings.items()}
    assert alone["generous"].results["results"]["humaneval"]["pass@1,create_test"] == 1.0
    assert alone["too_small"].results["results"]["humaneval"]["pass@1,create_test"] == 0.0

    together, errors = {}, []
    ready = threading.Barrier(len(settings))

    def in_thread(name: str, limits: SandboxLimits) -> None:
        try:
            together[name] = run(name, limits, tmp_path / "together", ready)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=in_thread, args=item) for item in settings.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    scores = {name: run.results["results"]["humaneval"]["pass@1,create_test"] for name, run in together.items()}
    assert scores == {"generous": 1.0, "too_small": 0.0}
    for name, limits in settings.items():
        mine, solo = together[name], alone[name]
        assert _comparable(mine.results, mine.output_dir) == _comparable(solo.results, solo.output_dir), name
        assert _samples(mine.output_dir) == _samples(solo.output_dir), name
        (entry,) = mine.results["configs"]["humaneval"]["metric_list"]
        assert entry["sandbox_limits"] == mine.results["harness"]["sandbox"] == vars(limits), name


def test_each_program_reaches_the_code_metric_with_its_own_prompt(humaneval, prepared_benchmarks, tmp_path):
    """Through lm-eval's filters and metric call, a program keeps the prompt it continues: the tester
    takes ``poly`` from the prompt, so a program that redefines ``poly`` to pass cannot."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    from tokenpo.evals.tasks import write_task_configs

    find_zero = humaneval[32]
    assert "def poly(" in find_zero["prompt"]
    rigged = "    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n"

    class Answers(LM):
        def __init__(self, completion: str):
            super().__init__()
            self.completion = completion

        def generate_until(self, requests, disable_tqdm=False):
            return [self.completion for _ in requests]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    configs = write_task_configs(tmp_path / "tasks", prepared_benchmarks, GENEROUS)
    text = (tmp_path / "tasks" / "humaneval" / "humaneval.yaml").read_text()
    assert re.search(r"sandbox_limits:\n\s+wall_seconds: 30.0\n\s+cpu_seconds: 30\n", text)
    for completion, expected in ((find_zero["canonical_solution"], 1.0), (rigged, 0.0)):
        results = simple_evaluate(
            model=Answers(completion),
            tasks=["humaneval"],
            samples={"humaneval": [32]},
            task_manager=configs.task_manager(),
            confirm_run_unsafe_code=True,
        )
        assert results["results"]["humaneval"]["pass@1,create_test"] == expected, completion
