"""``docs/configuration.md``: every configuration section and key, made from the config dataclasses.

``python -m tokenpo.harness.configdoc > docs/configuration.md`` writes it; tests/test_configdoc.py
fails when the committed page is stale. A key's type, default and help (its field's metadata) are
read from the dataclass that validates it, so the page cannot say something the loader does not do.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

import yaml

from tokenpo.core.config import field_help
from tokenpo.evals.judges.winrate.choice import JudgeChoice
from tokenpo.evals.suites import SuiteFile, TaskSettings
from tokenpo.harness.commands.train import TrainJob
from tokenpo.harness.pipeline.config import (
    DataConfig,
    EvalConfig,
    MethodRun,
    MixtureSource,
    ReportConfig,
    RunConfig,
    SentimentEval,
    SentimentPairs,
    ServerConfig,
    WinrateEval,
)
from tokenpo.harness.pipeline.executor import ExecutorConfig, SlurmSettings
from tokenpo.harness.pipeline.sweep import SweepConfig
from tokenpo.trainers.config import DPOConfig, LoraSettings, SparsePOConfig, TDPOConfig, TIDPOConfig, TrainingConfig

# Each section: its key path, its dataclass, and what it is for. Nested sections are named by path in
# the type column of the key that holds them.
SECTIONS: tuple[tuple[str, type, str], ...] = (
    ("harness train", TrainJob, "The YAML of `harness train --config FILE` (see `configs/train-*.yaml`)."),
    ("harness run", RunConfig, "The YAML of `harness run FILE` (see `configs/quickstart.yaml`)."),
    (
        "data",
        DataConfig,
        "The preference data, read alike by `harness train` and `harness run`: exactly one of `path`, `mixture` and "
        "`sentiment`; held-out pairs by `eval_fraction` or `eval_path`.",
    ),
    ("data.sentiment", SentimentPairs, "SparsePO's sentiment-control pairs, built offline by `harness run`."),
    (
        "data.mixture[]",
        MixtureSource,
        "A source of a data mixture (docs/training.md#mixtures-and-hub-subsets): counts fixed by the weights, "
        "pairs drawn with data.seed.",
    ),
    ("method: dpo", DPOConfig, "DPO, conservative DPO (`label_smoothing`) and IPO (`loss: ipo`)."),
    ("method: tdpo", TDPOConfig, "TDPO-1 and TDPO-2: token-level KL to the reference."),
    ("method: sparsepo", SparsePOConfig, "SparsePO: token masks on the reward (m_u) and KL (m_d) terms."),
    (
        "method: tidpo",
        TIDPOConfig,
        "TI-DPO: importance-weighted log-ratios, TDPO-2's KL term, a triplet term on sampled anchors.",
    ),
    ("training", TrainingConfig, "Settings every method shares. Batch sizes count preference pairs."),
    ("training.lora", LoraSettings, "LoRA adapters through peft."),
    ("methods[]", MethodRun, "One method of `harness run`: its settings, its own `training` keys, its seeds."),
    ("eval", EvalConfig, "What `harness run` evaluates every model (the base and each trained one) on."),
    ("eval.sentiment", SentimentEval, "The sentiment evaluation on the held-out openings."),
    (
        "eval.winrate",
        WinrateEval,
        "The win rate against the baseline (docs/winrate.md): every final model answers the prompt set "
        "(stage `answers/LABEL`), every model but the baseline's is judged against the baseline model of "
        "its seed in both orders (stage `winrate/LABEL`); the leaderboard, report and cards show it.",
    ),
    (
        "eval.winrate.judge",
        JudgeChoice,
        "Who decides each pair (also `harness judge winrate`'s `--judge-url`/`--judge-serve`/`--reward-model`).",
    ),
    (
        "eval.server",
        ServerConfig,
        "The vllm-server backend (`eval.backend: vllm-server`, `harness eval --backend "
        "vllm-server`): a vLLM server from its own environment, or a running one.",
    ),
    ("report", ReportConfig, "The leaderboard and the HTML report of `harness run`."),
    ("executor", ExecutorConfig, "Where `harness run` executes its stages (docs/clusters.md)."),
    (
        "executor.slurm",
        SlurmSettings,
        "Stages as Slurm jobs through submitit: trainings as one job array, each "
        "evaluation after its training, the report after all; `harness run` again "
        "submits only what is neither finished nor queued.",
    ),
    (
        "sweep",
        SweepConfig,
        "A grid of `harness run`: each swept `methods[]` entry becomes one run per combination "
        "of the grid's values, named after them (`dpo-beta0.05-learning_rate5e-07`), each "
        "trained once per seed; the leaderboard aggregates seeds and draws the β frontier.",
    ),
    (
        "suite files",
        SuiteFile,
        "A suite YAML (`harness eval --suite FILE`, `eval.suite`); the built-in ones are in `tokenpo/evals/suites/`.",
    ),
    ("suite files: tasks[]", TaskSettings, "A task of a suite given as a mapping, with settings of its own."),
)


def markdown() -> str:
    """The page: one table of keys per section, in the order of :data:`SECTIONS`."""
    named = {cls: title for title, cls, _ in SECTIONS}
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from the config dataclasses by `python -m tokenpo.harness.configdoc > docs/configuration.md`;",
        "     tests/test_configdoc.py fails when it is stale. Edit the fields' help, not this page. -->",
        "",
        "Every YAML the harness reads is validated when it is read: an unknown key, a wrong type or a bad",
        "value stops with exit code 2 and one line naming the file and the key",
        "(`error: cfg.yaml: method.beta: expected a number, got 'abc'`). `key=value` arguments",
        "(`training.max_steps=10`, `method.name=tdpo`) override keys of `harness train` and `harness run`;",
        "the value is read as YAML.",
        "",
        "Sections: " + ", ".join(f"[{title}](#{_anchor(title)})" for title, _, _ in SECTIONS) + ".",
    ]
    for title, cls, about in SECTIONS:
        lines += ["", f"## {title}", "", about, "", "| key | type | default | what it does |", "|---|---|---|---|"]
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            row = (f"`{field.name}`", _type(hints[field.name], named), _default(field), field_help(field))
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _type(annotation: Any, named: dict[type, str]) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in named:
        return f"section [{named[annotation]}](#{_anchor(named[annotation])})"
    if origin in (Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if all(option in named for option in options) and len(options) > 1:
            tags = ", ".join(f"[{named[option].split(': ')[1]}](#{_anchor(named[option])})" for option in options)
            text = f"a method, by `name`: {tags}"
        else:
            text = " or ".join(_type(option, named) for option in options)
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return " | ".join(f"`{_yaml(arg)}`" for arg in args)
    if origin in (list, tuple):
        item = _type(args[0], named)
        return f"list, each {item}" if " or " in item else f"list of {_plural(item)}"
    if origin is dict:
        return f"mapping of {_plural(_type(args[1], named))}" if args[1] is not Any else "mapping"
    return {bool: "true/false", int: "integer", float: "number", str: "string", Any: "any"}[annotation]


def _plural(kind: str) -> str:
    return {"integer": "integers", "number": "numbers", "string": "strings"}.get(kind, kind)


def _default(field: dataclasses.Field) -> str:
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return "required"
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if dataclasses.is_dataclass(value):
        return "its defaults"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """A value as it is written in the YAML."""
    if value == "":
        return '""'
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


if __name__ == "__main__":
    print(markdown(), end="")
