"""The HH-RLHF adapter on the real released test files."""

import gzip
import json

import pytest

from tokenpo.harness.cli import main
from tokenpo.trainers.data import DataError, load_preferences
from tokenpo.trainers.data.readers import RawRecord
from tokenpo.trainers.data.records import parse_record


def _raw(chosen, rejected):
    return RawRecord("hh.jsonl", 1, {"chosen": chosen, "rejected": rejected})


def test_prompt_is_the_shared_prefix_up_to_the_last_shared_assistant_turn():
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Price?\n\nAssistant: Umm.\n\nAssistant: $50."
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Price?\n\nAssistant: Visit their site."
    example = parse_record(_raw(chosen, rejected), "auto")
    assert example.prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Price?\n\nAssistant:"
    assert (example.chosen, example.rejected) == (" Umm.\n\nAssistant: $50.", " Visit their site.")
    chat = parse_record(_raw(chosen, rejected), "hh-rlhf-chat")
    assert chat.prompt == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Price?"},
    ]
    assert chat.rejected == [{"role": "assistant", "content": "Visit their site."}]


def test_dialogues_without_a_shared_assistant_turn_are_rejected():
    with pytest.raises(DataError, match=r"hh.jsonl:1: chosen: chosen and rejected share no"):
        parse_record(_raw("\n\nHuman: A\n\nAssistant: x", "\n\nHuman: B\n\nAssistant: y"), "hh-rlhf")


def test_real_helpful_base_split_exactly_as_released(benchmarks_dir):
    path = str(benchmarks_dir / "hh_rlhf" / "helpful-base_test.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        raw = [json.loads(line) for line in lines]
    identical = [number for number, r in enumerate(raw, start=1) if r["chosen"] == r["rejected"]]
    assert len(raw) == 2354 and len(identical) == 2  # as the README of the data says
    assert identical == [722, 2169]
    # As released, four rejected replies are a lone space: empty completions, which we refuse.
    with pytest.raises(DataError) as stopped:
        load_preferences(path, fmt="hh-rlhf")
    assert str(stopped.value) == f"{path}:121: rejected: empty completion"

    loaded = load_preferences(path, fmt="hh-rlhf", skip_invalid=True)
    assert len(loaded.examples) == 2348
    assert [(r.error.location, r.error.problem) for r in loaded.rejected] == [
        (121, "empty completion"),
        (722, "identical to chosen"),
        (741, "empty completion"),
        (1215, "empty completion"),
        (2064, "empty completion"),
        (2169, "identical to chosen"),
    ]
    kept = [r for n, r in enumerate(raw, start=1) if n not in {121, 722, 741, 1215, 2064, 2169}]
    for example, record in zip(loaded.examples, kept):
        assert example.prompt.endswith("\n\nAssistant:")
        assert example.prompt + example.chosen == record["chosen"]
        assert example.prompt + example.rejected == record["rejected"]
    first = loaded.examples[0]
    assert first.prompt == "\n\nHuman: Do you know why turkeys became the official food of thanksgiving?\n\nAssistant:"
    assert first.chosen.startswith(" To be honest, I don’t know anything about that.")


def test_real_harmless_base_as_chat_messages(benchmarks_dir):
    path = str(benchmarks_dir / "hh_rlhf" / "harmless-base_test.jsonl.gz")
    loaded = load_preferences(path, fmt="hh-rlhf-chat", skip_invalid=True)
    assert len(loaded.examples) == 2308
    skipped = [(r.error.location, r.error.field) for r in loaded.rejected]
    assert skipped == [(87, "chosen"), (517, "chosen"), (926, "chosen"), (1104, "chosen")]
    assert all(example.prompt[-1]["role"] == "user" for example in loaded.examples)


def test_data_check_prints_token_statistics_for_hh(benchmarks_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(benchmarks_dir / "hh_rlhf" / "helpful-base_test.jsonl.gz")
    assert main(["data", "check", path, "--model", "tiny-llama", "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "skipped 6 invalid records of 2354; written to helpful-base_test.rejects.jsonl" in captured.err
    assert "records:     2354  valid: 2348  skipped: 6" in captured.out
    assert "format:      2348 standard, 0 conversational" in captured.out
    assert len((tmp_path / "helpful-base_test.rejects.jsonl").read_text().splitlines()) == 6
    lines = captured.out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line[:6] in ("prompt", "chosen", "reject")}
    assert set(rows) == {"prompt", "chosen", "rejected"}
    assert 0 < float(rows["prompt"][1]) <= float(rows["prompt"][3]) <= float(rows["prompt"][5])
