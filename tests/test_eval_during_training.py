"""Held-out pairs evaluated during training: rows at the configured steps under TRL's names, equal to a
separate evaluation of the saved checkpoint, the same after a resume; the split and its refusals."""

from __future__ import annotations

import math

import pytest
from trainer_helpers import BAD, GOOD, PROMPTS, examples, metrics

from tokenpo.trainers import DPOConfig, SparsePOConfig, TIDPOConfig, TrainConfig, TrainingConfig, train
from tokenpo.trainers.data import DataError, PreferenceExample, held_out_split
from tokenpo.trainers.run import evaluate_checkpoint

TRL_KEYS = [
    "eval_loss",
    "eval_rewards/chosen",
    "eval_rewards/rejected",
    "eval_rewards/margins",
    "eval_rewards/accuracies",
    "eval_logps/chosen",
    "eval_logps/rejected",
]


def held_out() -> list[PreferenceExample]:
    # Other pairs than the training ones: the answers swapped between prompts.
    return [
        PreferenceExample(PROMPTS[i], GOOD[(i + 1) % 8], BAD[(i + 3) % 8], source="held-out", location=i + 1)
        for i in range(5)
    ]


def config(method, **training) -> TrainConfig:
    values = dict(learning_rate=3e-3, per_device_batch_size=2, max_steps=5, save_every=2, eval_steps=2, seed=3)
    return TrainConfig(method, TrainingConfig(**{**values, **training}))


@pytest.mark.parametrize(
    "method",
    [
        DPOConfig(beta=0.5),
        SparsePOConfig(beta=0.5, head_init="average"),
        TIDPOConfig(beta=0.5, anchor_max_new_tokens=6),
    ],
    ids=["dpo", "sparsepo-learned", "tidpo"],
)
def test_held_out_rows_come_at_the_eval_steps_and_equal_an_evaluation_of_the_checkpoint(
    tiny_model_dirs, tmp_path, method
):
    model = tiny_model_dirs["llama"]
    settings = config(method)
    result = train(settings, model, examples(8), tmp_path / "run", eval_examples=held_out())
    rows = metrics(result.run_dir)
    evaluated = [row for row in rows if "eval_loss" in row]
    # Every eval_steps steps and after the last one, in the step's own row.
    assert [row["step"] for row in evaluated] == [2, 4, 5]
    for row in evaluated:
        assert list(row)[:1] == ["step"] and all(key in row for key in TRL_KEYS)
        assert all(math.isfinite(row[key]) for key in TRL_KEYS)
        assert row["eval_rewards/margins"] == pytest.approx(row["eval_rewards/chosen"] - row["eval_rewards/rejected"])
    assert not any(key.startswith("eval_") for row in rows if row["step"] in (1, 3) for key in row)
    # The method's own metrics come along under the same prefix (SparsePO's mask statistics, ...).
    own = {key.removeprefix("eval_") for key in evaluated[0] if key.startswith("eval_")} - {
        key.removeprefix("eval_") for key in TRL_KEYS
    }
    trained = {key for key in rows[0] if key not in ("step", "epoch", "grad_norm", "learning_rate")}
    assert own <= trained
    # A separate evaluation of each saved model gives the row the training wrote.
    for folder, row in ((result.run_dir / "checkpoints" / "step-2", evaluated[0]),
                        (result.run_dir / "checkpoints" / "step-4", evaluated[1]),
                        (result.final_dir, evaluated[2])):  # fmt: skip
        apart = evaluate_checkpoint(settings, model, folder, held_out())
        assert apart == {key: row[key] for key in apart}, folder.name
    # Training went on with and without an evaluation: the held-out pairs change no training number.
    plain = train(config(method, eval_steps=0), model, examples(8), tmp_path / "plain")
    for with_eval, without in zip(rows, metrics(plain.run_dir), strict=True):
        assert {k: v for k, v in with_eval.items() if not k.startswith("eval_")} == without


def test_a_run_stopped_after_a_checkpoint_resumes_to_the_same_evaluation_rows(tiny_model_dirs, tmp_path, monkeypatch):
    import tokenpo.trainers.loop as loop

    model, settings = tiny_model_dirs["llama"], config(DPOConfig(beta=0.5))
    straight = train(settings, model, examples(8), tmp_path / "straight", eval_examples=held_out())

    original = loop.Trainer._log

    def log_then_stop(self, row):
        original(self, row)
        if row["step"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.Trainer, "_log", log_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(settings, model, examples(8), tmp_path / "resumed", eval_examples=held_out())
    monkeypatch.setattr(loop.Trainer, "_log", original)
    resumed = train(settings, model, examples(8), tmp_path / "resumed", eval_examples=held_out())
    assert resumed.resumed_from == 2
    assert metrics(resumed.run_dir) == metrics(straight.run_dir)


def test_other_held_out_pairs_make_another_run():
    # The held-out pairs are fingerprinted: a folder trained with other ones is not resumed into.
    from tokenpo.trainers.runfolder import fingerprint_of

    settings = config(DPOConfig())
    pair = type("Pair", (), {"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4]})()
    other = type("Pair", (), {"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [5]})()
    without = fingerprint_of(settings, "m", [pair])
    assert fingerprint_of(settings, "m", [pair], [pair]) != without
    assert fingerprint_of(settings, "m", [pair], [pair]) != fingerprint_of(settings, "m", [pair], [other])
    # When to evaluate is not what a run computes.
    assert fingerprint_of(config(DPOConfig(), eval_steps=3), "m", [pair]) == without


def test_the_held_out_split_is_seeded_and_whole():
    pairs = list(range(10))
    train_part, held = held_out_split(pairs, 0.25, seed=0)
    assert len(held) == 3 and sorted(train_part + held) == pairs  # ⌈0.25 · 10⌉, nothing lost
    assert train_part == sorted(train_part) and held == sorted(held)  # each keeps the data's order
    assert held_out_split(pairs, 0.25, seed=0) == (train_part, held)
    assert held_out_split(pairs, 0.25, seed=1) != (train_part, held)


@pytest.mark.parametrize(
    ("fraction", "problem"),
    [(0.0, "must lie strictly between 0 and 1, got 0.0"), (1.0, "must lie strictly between 0 and 1, got 1.0"),
     (0.95, "0.95 of 10 pairs leaves none to train on")],
)  # fmt: skip
def test_a_fraction_that_holds_out_nothing_or_everything_is_refused(fraction, problem):
    with pytest.raises(DataError) as raised:
        held_out_split(list(range(10)), fraction, seed=0, source="pairs.jsonl")
    assert str(raised.value) == f"pairs.jsonl: eval_fraction: {problem}"


def test_the_report_draws_held_out_beside_training_and_the_card_tables_it(tiny_model_dirs, tmp_path):
    from tokenpo.harness.pipeline.work import write_training_cards
    from tokenpo.leaderboards.report_training import curves_section
    from tokenpo.leaderboards.runs import load_runs

    result = train(config(DPOConfig(beta=0.5)), tiny_model_dirs["llama"], examples(8), tmp_path / "run",
                   eval_examples=held_out())  # fmt: skip
    html = curves_section(load_runs([result.run_dir]))
    # One chart per metric, the held-out series in it: the loss chart holds both lines.
    loss_chart = html.split("<svg")[1]
    assert "<title>run</title>" in loss_chart and "<title>run (held-out)</title>" in loss_chart
    write_training_cards(result.run_dir)
    card = (result.final_dir / "README.md").read_text()
    last = metrics(result.run_dir)[-1]
    assert "and the held-out pairs' value at their last evaluation (step 5)" in card
    assert "| `loss` |" in card and f"| {last['eval_loss']:.4g} |" in card
