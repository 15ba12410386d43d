"""``harness train``: YAML + overrides to a run folder and its model cards; bad input and a diverging run exit 2
in one line."""

from __future__ import annotations

import json

from trainer_helpers import examples, write_jsonl

from tokenpo.cards import has_card
from tokenpo.harness.cli import main


def _config(tmp_path, model: str) -> str:
    data = write_jsonl(tmp_path / "prefs.jsonl", examples(8))
    path = tmp_path / "train.yaml"
    path.write_text(
        f"model: {model}\ndata: {{path: {data}}}\noutput_dir: {tmp_path / 'run'}\n"
        "method: {name: sparsepo, mask: activation}\n"
        "training: {per_device_batch_size: 4, max_steps: 2, learning_rate: 1.0e-3}\n"
    )
    return str(path)


def test_train_writes_the_run_folder_and_then_finds_it_done(tiny_model_dirs, tmp_path, capsys):
    config = _config(tmp_path, tiny_model_dirs["gpt2"])
    assert main(["train", "--config", config, "--no-progress", "method.beta=0.2"]) == 0
    out = capsys.readouterr().out
    assert "trained 2 steps" in out
    top = [line for line in out.splitlines() if line.startswith("highest mask_u (chosen): ")]
    assert len(top) == 1 and top[0].count(", '") == 7  # the 8 highest-masked chosen tokens
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and (run / "DONE").is_file()
    recorded = (run / "config.yaml").read_text()
    assert "beta: 0.2" in recorded and "mask: activation" in recorded and "vocab_chunk_tokens: 512" in recorded
    assert main(["train", "--config", config, "--no-progress", "method.beta=0.2"]) == 0
    assert "already holds this finished run" in capsys.readouterr().out


def test_bad_values_and_a_diverging_run_exit_2_with_one_line(tiny_model_dirs, tmp_path, capsys):
    config = _config(tmp_path, tiny_model_dirs["llama"])
    assert main(["train", "--config", config, "method.lambda_u=-1"]) == 2
    assert (
        capsys.readouterr().err == f"error: {config} (override 'method.lambda_u=-1'): method.lambda_u: "
        "must be non-negative, got -1.0\n"
    )
    assert (
        main(
            [
                "train",
                "--config",
                config,
                "--no-progress",
                "training.learning_rate=1e30",
                "training.max_grad_norm=null",
                "training.max_steps=4",
                "training.save_every=2",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    # Step 1 warms up at learning rate 0, step 2 applies 1e30, step 3 sees the damage.
    assert err.startswith("error: step 3: the ") and "is not finite" in err and err.count("\n") == 1
    checkpoint = tmp_path / "run" / "checkpoints" / "step-2"  # saved before the failure: its card is there
    assert has_card(checkpoint) and "Checkpoint after step 2" in (checkpoint / "README.md").read_text()


def test_the_cards_a_killed_run_did_not_write_are_written_when_it_is_run_again(tiny_model_dirs, tmp_path, capsys):
    config = _config(tmp_path, tiny_model_dirs["llama"])
    overrides = ["--no-progress", "training.max_steps=3", "training.save_every=1"]
    assert main(["train", "--config", config, *overrides]) == 0
    run = tmp_path / "run"
    folders = [run / "checkpoints" / "step-1", run / "checkpoints" / "step-2", run / "final"]
    cards = {folder: (folder / "README.md").read_bytes() for folder in folders}
    assert all(has_card(folder) for folder in folders) and (run / "final" / "token-picture.svg").is_file()
    for folder in folders[1:]:  # as a process killed after the training, before the harness wrote them
        (folder / "README.md").unlink()
    assert main(["train", "--config", config, *overrides]) == 0
    assert "already holds this finished run" in capsys.readouterr().out
    assert {folder: (folder / "README.md").read_bytes() for folder in folders} == cards
    # A card the evaluation rewrote (harness card, the pipeline's report) stays as it is.
    (run / "final" / "README.md").write_bytes(cards[run / "final"] + b"\n## Evaluation by hand\n")
    assert main(["train", "--config", config, *overrides]) == 0
    assert (run / "final" / "README.md").read_bytes().endswith(b"## Evaluation by hand\n")
