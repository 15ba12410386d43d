"""``harness eval`` gives lm-eval's numbers: the same metrics as ``lm_eval --model hf`` on the same data.

Both run SmolLM2-135M-Instruct on the task YAMLs our evals write (the official tasks, only the data
source redirected to the prepared mirror), with each tool's own defaults for everything else (seeds,
few-shot examples, no chat template, dtype from the model's config) and the same batch size, 1:
batching pads rows differently, which can move a log-likelihood in its last bits.

At batch 1 on 2 CPU cores the pair takes about 40 minutes, beyond what CI's run allows beside the
rest: it runs in ``tox -e parity`` (``-m parity``), which the default ``pytest`` deselects.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tokenpo.evals import evaluate
from tokenpo.evals.punkt import install_punkt_tab
from tokenpo.evals.tasks import write_task_configs

CASES = {"truthfulqa_mc2": 100, "ifeval": 10, "gsm8k": 10}


def _metrics(row: dict) -> dict[str, float]:
    return {key: value for key, value in row.items() if "," in key and isinstance(value, int | float)}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize("task", list(CASES))
def test_harness_eval_equals_plain_lm_eval(task, smollm2_path, prepared_benchmarks, tmp_path):
    limit = CASES[task]
    tasks_dir = tmp_path / "lm_eval_tasks"
    write_task_configs(tasks_dir, prepared_benchmarks)
    # IFEval's sentence counter, offline (lm-eval would download it): wherever NLTK finds it, the
    # subprocess gets that data folder (tokenizers/punkt_tab/english is three levels below it).
    nltk_data = install_punkt_tab(tmp_path / "nltk_data").parents[2]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "NLTK_DATA": str(nltk_data)}
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={smollm2_path}"]
    command += ["--tasks", task, "--include_path", str(tasks_dir), "--limit", str(limit), "--batch_size", "1"]
    command += ["--output_path", str(tmp_path / "lm_eval"), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (theirs_file,) = (tmp_path / "lm_eval").rglob("results_*.json")
    theirs = json.loads(theirs_file.read_text())

    ours = evaluate(
        smollm2_path,
        tasks=[task],
        limit=limit,
        data_dir=prepared_benchmarks,
        output_dir=tmp_path / "ours",
        batch_size=1,
    ).results

    assert ours["n-samples"][task]["effective"] == theirs["n-samples"][task]["effective"] == limit
    assert ours["config"]["fewshot_seed"] == theirs["config"]["fewshot_seed"] == 1234
    assert ours["task_hashes"][task] == theirs["task_hashes"][task]  # same documents, prompts, targets
    mine, other = _metrics(ours["results"][task]), _metrics(theirs["results"][task])
    assert mine.keys() == other.keys() and mine, (mine, other)
    differing = {k: (mine[k], other[k]) for k in mine if not _same(mine[k], other[k])}
    assert differing == {}, differing
