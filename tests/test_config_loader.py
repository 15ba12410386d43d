"""The generic YAML + overrides loader: typed results, and one-line errors naming the key path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from tokenpo.core.config import ConfigError, dump_yaml, load_config, parse_override
from tokenpo.harness.commands.train import TrainJob
from tokenpo.trainers.config import DPOConfig, SparsePOConfig, TDPOConfig, TIDPOConfig


@dataclass
class Inner:
    size: int = 1
    ratio: float = 0.5
    tags: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.size > 100:
            error = ValueError("size: must be at most 100")
            error.field, error.problem = "size", f"must be at most 100, got {self.size}"
            raise error


@dataclass
class Cat:
    kind: Literal["cat"] = "cat"
    lives: int = 9


@dataclass
class Dog:
    kind: Literal["dog"] = "dog"
    good: bool = True


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    optional: float | None = None
    table: dict[str, int] = field(default_factory=dict)
    pet: Cat | Dog = field(default_factory=Cat)
    mode: Literal["a", "b"] = "a"


def write(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_build_typed_nested_dataclasses(tmp_path):
    path = write(tmp_path, "name: x\ninner: {size: 3, tags: [a, b]}\npet: {kind: dog}\ntable: {k: 2}\n")
    config = load_config(Outer, path, ["inner.ratio=1e-5", "optional=2", "pet.good=false", "mode=b"])
    assert config == Outer("x", Inner(3, 1e-5, ["a", "b"]), 2.0, {"k": 2}, Dog(good=False), "b")
    assert isinstance(config.inner.ratio, float) and isinstance(config.optional, float)


def test_an_override_can_switch_the_member_of_a_tagged_union(tmp_path):
    config = load_config(Outer, write(tmp_path, "name: x\npet: {kind: cat}\n"), ["pet.kind=dog"])
    assert config.pet == Dog()
    with pytest.raises(ConfigError, match=r"pet\.lives: unknown key; expected one of: kind, good$"):
        load_config(Outer, write(tmp_path, "name: x\npet: {kind: cat, lives: 3}\n"), ["pet.kind=dog"])


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("name: x\ninner: {ratio: abc}\n", [], "cfg.yaml: inner.ratio: expected a number, got 'abc'"),
        (
            "name: x\n",
            ["inner.ratio=abc"],
            "cfg.yaml (override 'inner.ratio=abc'): inner.ratio: expected a number, got 'abc'",
        ),
        (
            "name: x\ninner: {sise: 3}\n",
            [],
            "cfg.yaml: inner.sise: unknown key; expected one of: size, ratio, tags",
        ),
        ("name: x\ninner: {size: 2.5}\n", [], "cfg.yaml: inner.size: expected an integer, got 2.5"),
        ("name: x\ninner: {size: true}\n", [], "cfg.yaml: inner.size: expected an integer, got True"),
        ("name: x\ninner: {size: 101}\n", [], "cfg.yaml: inner.size: must be at most 100, got 101"),
        ("name: x\ninner: {tags: [a, 3]}\n", [], "cfg.yaml: inner.tags[1]: expected a string, got 3"),
        ("name: x\nmode: c\n", [], "cfg.yaml: mode: expected one of a, b; got 'c'"),
        ("name: x\npet: {kind: fish}\n", [], "cfg.yaml: pet.kind: expected one of cat, dog; got 'fish'"),
        ("name: x\ntable: {k: x}\n", [], "cfg.yaml: table.k: expected an integer, got 'x'"),
        ("inner: {}\n", [], "cfg.yaml: name: required key is missing"),
        ("- a\n- b\n", [], "cfg.yaml: expected a mapping of keys at the top, got a list"),
        ("name: [\n", [], "cfg.yaml: invalid YAML"),
        (
            "name: x\ninner: 3\n",
            ["inner.size=2"],
            "cfg.yaml: inner: is int, so inner.size cannot be set inside it",
        ),
    ],
)
def test_errors_are_one_line_and_name_the_key_path(tmp_path, monkeypatch, text, overrides, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(Outer, write(tmp_path, text).name, overrides)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_override_syntax_is_checked():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=null") == ("a", None)
    for bad in ("novalue", "=3", "a..b=1"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            parse_override(bad)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the file"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_train_job_round_trips_through_yaml_with_every_default_filled_in(tmp_path):
    job = load_config(TrainJob, write(tmp_path, "data: {path: d.jsonl}\noutput_dir: out\nmethod: {name: sparsepo}\n"))
    assert isinstance(job.method, SparsePOConfig) and job.method.lambda_u == 0.0
    again = load_config(TrainJob, write(tmp_path, dump_yaml(job)))
    assert again == job


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.beta=-1", "method.beta: must be positive, got -1.0"),
        ("method.label_smoothing=0.5", "method.label_smoothing: must be in [0, 0.5), got 0.5"),
        ("training.max_prompt_length=2000", "training.max_prompt_length: must be below max_length (1024)"),
        ("training.lora.r=0", "training.lora.r: must be positive, got 0"),
        (
            "training.report_to=[comet_ml]",
            "training.report_to[0]: expected one of tensorboard, wandb, trackio, mlflow; got 'comet_ml'",
        ),
    ],
)
def test_train_job_values_are_validated_with_the_key_named(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config(
            TrainJob,
            write(tmp_path, "data: {path: d.jsonl}\noutput_dir: out\nmethod: {name: dpo}\n"),
            [override],
        )


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("method: {name: tdpo, alpha: 0.3}\n", [], "cfg.yaml: method.alpha: renamed to method.kl_alpha"),
        (
            "method: {name: tdpo}\n",
            ["method.alpha=0.3"],
            "cfg.yaml (override 'method.alpha=0.3'): method.alpha: renamed to method.kl_alpha",
        ),
        ("method: {name: tdpo, variant: 2}\n", [], "cfg.yaml: method.variant: expected one of tdpo1, tdpo2; got 2"),
    ],
)
def test_a_renamed_key_is_one_line_naming_the_file_the_key_and_its_new_name(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config(TrainJob, write(tmp_path, "data: {path: d.jsonl}\noutput_dir: out\n" + text), overrides)
    assert str(caught.value).endswith(message)
    assert "\n" not in str(caught.value)
    job = load_config(
        TrainJob,
        write(tmp_path, "data: {path: d.jsonl}\noutput_dir: out\nmethod: {name: tdpo}\n"),
        ["method.kl_alpha=0.3"],
    )
    assert job.method == TDPOConfig(kl_alpha=0.3)  # the new name


def test_method_defaults_are_what_the_authors_code_computes_with_their_published_settings():
    tdpo = TDPOConfig()  # TDPO-2 with the reference code's α
    assert (tdpo.variant, tdpo.kl_alpha, tdpo.label) == ("tdpo2", 0.5, "tdpo2")
    tidpo = TIDPOConfig()  # the released code's computation, Table B12's values, σ = T/4 (B.6)
    assert (tidpo.beta, tidpo.gamma, tidpo.importance_lambda, tidpo.prior_sigma, tidpo.kl_alpha) == (
        0.1,
        0.1,
        0.7,
        0.25,
        0.5,
    )
    assert (tidpo.normalisation, tidpo.weight_span, tidpo.variant, tidpo.importance_source) == (
        "mean",
        "sequence",
        "tdpo2-kl",
        "policy",
    )
    assert (tidpo.anchor_top_k, tidpo.anchor_top_p, tidpo.anchor_temperature, tidpo.anchor_max_new_tokens) == (
        50,
        0.95,
        0.8,
        64,
    )
    assert (tidpo.triplet_margin, tidpo.triplet_alignment, tidpo.anchor_every) == (0.001, "pairwise", 1)
    sparsepo = SparsePOConfig()  # the official code's defaults (its experiment scripts set no L1 weight)
    assert (sparsepo.lambda_u, sparsepo.lambda_d, sparsepo.mask_dropout, sparsepo.head_weight_decay) == (
        0.0,
        0.0,
        0.01,
        0.01,
    )
    assert (sparsepo.mask_position, sparsepo.head_init, sparsepo.head_learning_rate) == ("prediction", "official", None)
    assert (sparsepo.hooks, sparsepo.hook_aggregation) == (["mlp", "attention", "residual", "logits"], "by-type")
    assert DPOConfig().beta == 0.1


def test_command_line_options_take_type_default_and_help_from_the_config_fields():
    import argparse

    from tokenpo.harness.cli import build_parser
    from tokenpo.harness.options import add_field_options
    from tokenpo.harness.pipeline.config import DataConfig
    from tokenpo.trainers.config import TrainingConfig

    args = build_parser().parse_args(["data", "check", "prefs.jsonl"])
    defaults = TrainingConfig()
    assert (args.max_length, args.max_prompt_length) == (defaults.max_length, defaults.max_prompt_length)
    assert (args.format, args.split, args.skip_invalid) == ("auto", "train", False)
    parser = argparse.ArgumentParser()
    add_field_options(parser, DataConfig, "format", "skip_invalid", "limit")
    by_flag = {action.option_strings[0]: action for action in parser._actions if action.option_strings}
    assert by_flag["--format"].choices == ("auto", "standard", "conversational", "hh-rlhf", "hh-rlhf-chat")
    assert by_flag["--format"].help.endswith("(default: auto)") and by_flag["--skip-invalid"].const is True
    assert parser.parse_args(["--limit", "3"]).limit == 3 and parser.parse_args([]).limit is None
    with pytest.raises(TypeError, match="no command-line form"):
        add_field_options(argparse.ArgumentParser(), DataConfig, "sentiment")
