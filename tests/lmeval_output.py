"""Real lm-evaluation-harness output, made at test time by running lm-eval itself.

Two tiny random-init Llama models (the ``tiny_llama`` fixture, and the same architecture with
seed 1) are evaluated by ``lm_eval.simple_evaluate`` on small offline tasks written here from
../shared/benchmarks (a ``tiny_mmlu`` group of two MMLU subjects scored on the answer texts, as
lm-eval's ``mmlu_continuation``: letters would be one token for "A" and two for the others in
the tiny tokenizer, so every model would answer "A"; and GSM8K with lm-eval's
strict-match and flexible-extract filters); lm-eval's own ``EvaluationTracker`` saves the
results and samples as ``lm_eval --output_path DIR --log_samples`` does. Nothing is committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenpo.leaderboards.columns import Benchmark

LIMIT = 20  # items per task (per MMLU subject)
SUBJECTS = ("astronomy", "virology")

# The test tasks as leaderboard columns: a registry given as data, as users add tasks.
TEST_BENCHMARKS = (
    Benchmark(
        "tiny_mmlu",
        "MMLU (2 subjects)",
        ("tiny_mmlu",),
        ("acc,none",),
        0.25,
        note="MMLU subset: acc, 4-way, random 0.25.",
    ),
    Benchmark(
        "tiny_gsm8k",
        "GSM8K",
        ("tiny_gsm8k",),
        ("exact_match,flexible-extract",),
        0.0,
        note="GSM8K subset, 12 generated tokens: exact_match, flexible-extract filter "
        "(tiny models never write '#### N').",
    ),
)

_SUBJECT_YAML = """\
task: tiny_mmlu_{slug}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {mmlu}
test_split: test
process_docs: !function utils.only_{slug}
output_type: multiple_choice
doc_to_text: "Question: {{{{question.strip()}}}}\\nAnswer:"
doc_to_choice: "{{{{[answer_a, answer_b, answer_c, answer_d]}}}}"
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(correct_answer)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

_GROUP_YAML = """\
group: tiny_mmlu
task: [{tasks}]
aggregate_metric_list:
  - metric: acc
    aggregation: mean
    weight_by_size: true
  - metric: acc_norm
    aggregation: mean
    weight_by_size: true
"""

_GSM8K_YAML = """\
task: tiny_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    test: {gsm8k}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer.split('####')[-1].strip()}}}}"
generation_kwargs:
  until: ["Question:", "\\n\\n"]
  do_sample: false
  max_gen_toks: 12
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
"""


def write_tasks(folder: Path, benchmarks: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    slugs = [subject.replace(" ", "_") for subject in SUBJECTS]
    utils = ["def _only(docs, topic):", "    return docs.filter(lambda doc: doc['topic'] == topic)", ""]
    for subject, slug in zip(SUBJECTS, slugs, strict=True):
        mmlu = benchmarks / "mmlu" / "mmlu_test.jsonl"
        (folder / f"tiny_mmlu_{slug}.yaml").write_text(_SUBJECT_YAML.format(slug=slug, mmlu=mmlu))
        utils += [f"def only_{slug}(docs):", f"    return _only(docs, {subject!r})", ""]
    (folder / "utils.py").write_text("\n".join(utils))
    (folder / "tiny_mmlu.yaml").write_text(_GROUP_YAML.format(tasks=", ".join(f"tiny_mmlu_{s}" for s in slugs)))
    (folder / "tiny_gsm8k.yaml").write_text(_GSM8K_YAML.format(gsm8k=benchmarks / "gsm8k" / "test.jsonl"))
    return folder


def evaluate(model, tokenizer, name: str, tasks_dir: Path, output: Path, limit: int = LIMIT) -> Path:
    """Run lm-eval on the tiny tasks and save as ``lm_eval --output_path output --log_samples``."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16)
    # Our tasks only: indexing all of lm-eval's built-in tasks would take ~9 s more.
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    output_dict = simple_evaluate(
        model=lm, tasks=["tiny_mmlu", "tiny_gsm8k"], task_manager=manager, limit=limit, log_samples=True
    )
    tracker = EvaluationTracker(output_path=str(output))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf",
        model_args=f"pretrained={name}",
        system_instruction=None,
        chat_template=None,
        fewshot_as_multiturn=False,
    )
    samples = output_dict.pop("samples")
    tracker.save_results_aggregated(results=output_dict, samples=samples)
    for task_name, task_samples in samples.items():
        tracker.save_results_samples(task_name=task_name, samples=task_samples)
    return output


@pytest.fixture(scope="session")
def lmeval_output(tmp_path_factory, benchmarks_dir, tiny_llama) -> Path:
    """``DIR`` with ``tiny-llama-seed0/`` and ``tiny-llama-seed1/`` lm-eval output folders."""
    from tokenpo.harness.models.tiny import build_tiny_model

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = tmp_path_factory.mktemp("lmeval")
    tasks = write_tasks(root / "tasks", benchmarks_dir)
    output = root / "out"
    evaluate(*tiny_llama, "tiny-llama-seed0", tasks, output)
    evaluate(*build_tiny_model("llama", seed=1), "tiny-llama-seed1", tasks, output)
    return output
