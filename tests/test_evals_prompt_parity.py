"""Our offline tasks render exactly the official prompts: one document of each task, both ways.

The official definition is lm-eval's own YAML, loaded as lm-eval loads it, with the hub download
replaced by the same records in memory; ours is the mirror config reading the prepared files.
"""

from __future__ import annotations

import hashlib

import datasets
import pytest

from tokenpo.evals.tasks import write_task_configs
from tokenpo.evals.tasks.configs import official_tasks_dir

TASKS = {  # task -> its official YAML, relative to lm_eval/tasks
    "mmlu_abstract_algebra": "mmlu/default/mmlu_abstract_algebra.yaml",
    "gsm8k": "gsm8k/gsm8k.yaml",
    "gpqa_diamond_zeroshot": "gpqa/zeroshot/gpqa_diamond_zeroshot.yaml",
    "truthfulqa_mc1": "truthfulqa/truthfulqa_mc1.yaml",
    "truthfulqa_mc2": "truthfulqa/truthfulqa_mc2.yaml",
    "truthfulqa_gen": "truthfulqa/truthfulqa_gen.yaml",
    "ifeval": "ifeval/ifeval.yaml",
    "humaneval": "humaneval/humaneval.yaml",
}


@pytest.fixture(scope="module")
def ours(prepared_benchmarks, tmp_path_factory):
    configs = write_task_configs(tmp_path_factory.mktemp("tasks"), prepared_benchmarks)
    return configs.task_manager().load(list(TASKS))["tasks"]


def official_task(relative: str, ours_task, monkeypatch):
    """lm-eval's official task, its ``load_dataset`` answered with the records our task read."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    path = official_tasks_dir() / relative
    code_task = relative.startswith("humaneval")
    config = load_yaml(path, resolve_func=not code_task)
    if code_task:  # its utils.py loads evaluate's code_eval on import (hub); scoring is not what we compare
        config.pop("metric_list"), config.pop("filter_list")
    for key in ("tag", "group"):
        config.pop(key, None)
    splits = datasets.DatasetDict({name: ours_task.dataset[name] for name in ours_task.dataset})
    if config.get("fewshot_split") and config["fewshot_split"] not in splits:
        # MMLU's dev split is not in the offline data; at 0 shots it is never read, so any stand-in works
        splits[config["fewshot_split"]] = splits[config["test_split"]]

    def fake_load_dataset(path=None, name=None, **kwargs):
        assert (path, name) == (config["dataset_path"], config.get("dataset_name"))
        return splits

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return ConfigurableTask(config=config)


def render(task) -> str:
    task.set_fewshot_seed(1234)
    doc = task.eval_docs[0]
    context = task.fewshot_context(doc, num_fewshot=task.config.num_fewshot or 0)
    return (
        context
        + "\x00"
        + repr(task.doc_to_target(doc))
        + "\x00"
        + repr(task.doc_to_choice(doc) if task.config.doc_to_choice else None)
    )


@pytest.mark.parametrize("name", list(TASKS))
def test_same_prompt_as_the_official_definition(name, ours, monkeypatch):
    official = official_task(TASKS[name], ours[name], monkeypatch)
    mine, theirs = render(ours[name]), render(official)
    if name.startswith("gpqa"):  # compare digests: GPQA text must never reach test output
        mine, theirs = hashlib.sha256(mine.encode()).hexdigest(), hashlib.sha256(theirs.encode()).hexdigest()
    assert mine == theirs
    assert ours[name].config.num_fewshot == official.config.num_fewshot
    assert ours[name].config.generation_kwargs == official.config.generation_kwargs
    assert ours[name].config.metadata["version"] == official.config.metadata["version"]


def test_gsm8k_prompt_has_five_train_shots(ours):
    context = render(ours["gsm8k"]).split("\x00")[0]
    assert context.count("Question:") == 6 and context.endswith("Answer:")
