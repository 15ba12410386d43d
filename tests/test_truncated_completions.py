"""Completions cut at a length limit get no end-of-text: the pipeline's continuations cut at
``max_new_tokens``, records flagged ``chosen_truncated`` / ``rejected_truncated``, and user data
loaded with ``data.truncated_completions``. Complete ones keep TRL's appended end-of-text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from tokenpo.core.config import from_mapping
from tokenpo.harness.models.tiny import build_tiny_model
from tokenpo.harness.pipeline.config import DataConfig, RunConfig, SentimentPairs
from tokenpo.harness.pipeline.sentiment import (
    Continuation,
    build_pairs,
    end_of_text_ids,
    sample_continuations,
    split_continuation,
    write_jsonl,
)
from tokenpo.trainers.data import (
    DataError,
    PreferenceExample,
    TruncationPolicy,
    load_preferences,
    mark_truncated,
    tokenize_examples,
)

NO_LIMIT = TruncationPolicy(None, None)
CAP = 6  # max_new_tokens in these tests
ENDS_AFTER = 3  # content tokens an ending continuation has before its end-of-text
ENDOFTEXT = 0  # the tiny tokenizer's "<|endoftext|>": a second end-of-text id, as models list several


class ScriptedLlama(LlamaForCausalLM):
    """A tiny Llama whose next token is scripted by its prompt, so generation is deterministic in kind.

    It samples only a few plain words. A prompt whose last word is a key of ``endings`` is continued by
    ``ENDS_AFTER`` words and then that key's end-of-text id; any other prompt never ends (cut at the cap).
    Generation must run without a cache so that ``forward`` sees the whole row.
    """

    def __init__(self, config: LlamaConfig, words: Sequence[int], endings: dict[int, int]):
        super().__init__(config)
        self.words, self.endings = list(words), endings

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs):
        out = super().forward(input_ids=input_ids, **kwargs)
        scripted = torch.full_like(out.logits[:, -1], -1e9)
        scripted[:, self.words] = 0.0
        for row, ids in enumerate(input_ids.tolist()):
            marks = [position for position, token in enumerate(ids) if token in self.endings]
            if marks and len(ids) - 1 - marks[-1] >= ENDS_AFTER:
                scripted[row] = -1e9
                scripted[row, self.endings[ids[marks[-1]]]] = 0.0
        out.logits[:, -1] = scripted
        return out


def _token(tokenizer: PreTrainedTokenizerBase, word: str) -> int:
    (token,) = tokenizer(word, add_special_tokens=False)["input_ids"]
    return token


@pytest.fixture(scope="module")
def scripted() -> tuple[ScriptedLlama, PreTrainedTokenizerBase]:
    base, tokenizer = build_tiny_model("llama")
    words = [_token(tokenizer, word) for word in (" great", " boring", " story", " funny", " the")]
    # "... wonderful" ends with <|im_end|> (the tokenizer's eos), "... terrible" with <|endoftext|>.
    endings = {_token(tokenizer, " wonderful"): tokenizer.eos_token_id, _token(tokenizer, " terrible"): ENDOFTEXT}
    model = ScriptedLlama(base.config, words, endings).eval()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, ENDOFTEXT]
    model.generation_config.pad_token_id = tokenizer.pad_token_id  # = eos: padding looks like an ending
    model.generation_config.use_cache = False
    return model, tokenizer


PROMPTS = ["This movie was wonderful", "This film was terrible", "This movie was"]  # ends, ends, cut


def _sample(scripted, samples: int = 3) -> list[list[Continuation]]:
    model, tokenizer = scripted
    # One batch: the ending rows are padded while the cut row runs on to the cap.
    return sample_continuations(model, tokenizer, PROMPTS, samples, CAP, temperature=1.0, batch_size=16, seed=3)


def test_a_continuation_cut_at_the_cap_is_marked_truncated_and_one_that_ended_is_not(scripted):
    ended_eos, ended_other, cut = _sample(scripted)
    for item in ended_eos + ended_other:
        assert not item.truncated and len(item.text.split()) == ENDS_AFTER  # padding after the end is no content
    for item in cut:
        assert item.truncated and len(item.text.split()) == CAP


def test_content_stops_at_the_first_end_of_text_and_padding_is_not_content():
    assert split_continuation([5, 6, 2, 2, 2], [2]) == ([5, 6], False)
    assert split_continuation([5, 0, 2, 2], [2, 0]) == ([5], False)
    assert split_continuation([5, 6, 7], [2]) == ([5, 6, 7], True)
    assert split_continuation([5, 6, 2], [2]) == ([5, 6], False)  # an end-of-text as the last allowed token ended it


def test_end_of_text_ids_come_from_the_generation_config_as_an_int_or_a_list():
    model, tokenizer = build_tiny_model("llama")
    assert end_of_text_ids(model, tokenizer) == [tokenizer.eos_token_id]
    model.generation_config.eos_token_id = [7, tokenizer.eos_token_id]
    assert end_of_text_ids(model, tokenizer) == [7, tokenizer.eos_token_id]
    model.generation_config.eos_token_id = None
    assert end_of_text_ids(model, tokenizer) == [tokenizer.eos_token_id]  # the tokenizer's, as a fallback


def test_the_pipelines_truncated_pairs_hold_no_end_of_text(scripted, tmp_path):
    _, tokenizer = scripted
    continuations = _sample(scripted)
    scores = [[0.1, 0.5, 0.9] for _ in PROMPTS]
    pairs, stats = build_pairs(PROMPTS, continuations, scores, min_margin=0.0)
    assert stats.truncated == 3 and len(pairs) == 3
    assert [(p["chosen_truncated"], p["rejected_truncated"]) for p in pairs] == [
        (False, False),
        (False, False),
        (True, True),
    ]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    examples = load_preferences(str(tmp_path / "pairs.jsonl")).examples
    for example, tokens in zip(examples, tokenize_examples(examples, tokenizer, NO_LIMIT), strict=True):
        for truncated, ids in (
            (example.chosen_truncated, tokens.chosen_ids),
            (example.rejected_truncated, tokens.rejected_ids),
        ):
            if truncated:
                assert tokenizer.eos_token_id not in ids and ENDOFTEXT not in ids and len(ids) == CAP
            else:
                assert ids[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in ids[:-1]
                assert len(ids) == ENDS_AFTER + 1


def test_sentiment_data_stage_writes_the_flags_and_counts_the_cut(scripted, tmp_path, monkeypatch):
    import tokenpo.evals.judges.sentiment as judge
    import tokenpo.harness.pipeline.work as work

    model, tokenizer = scripted
    monkeypatch.setattr(work, "load_causal_lm", lambda path: model)
    monkeypatch.setattr(work, "load_tokenizer", lambda path: tokenizer)
    monkeypatch.setattr(judge, "score_texts", lambda texts, classifier: [0.1 * (i % 3) for i in range(len(texts))])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in [*PROMPTS, "held out"]))
    config = from_mapping(
        RunConfig,
        {
            "name": "t",
            "methods": [{"name": "dpo", "method": {"name": "dpo"}}],
            "data": {
                "sentiment": {
                    "prompts": str(prompts),
                    "train_prompts": 3,
                    "eval_prompts": 1,
                    "completions_per_prompt": 3,
                    "max_new_tokens": CAP,
                    "min_margin": 0.0,
                }
            },
        },
        "test",
    )
    summary = work.sentiment_pairs(config, "unused", tmp_path)
    assert (summary["continuations"], summary["truncated"]) == (9, 3)
    rows = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert [row["truncated"] for row in rows] == [False] * 6 + [True] * 3
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [(p["chosen_truncated"], p["rejected_truncated"]) for p in pairs] == [
        (False, False),
        (False, False),
        (True, True),
    ]


# --- records -------------------------------------------------------------------------------------

PLAIN = {"prompt": "Say hi.", "chosen": " Hi", "rejected": " No"}
CHAT = {
    "prompt": [{"role": "user", "content": "Say hi."}],
    "chosen": [{"role": "assistant", "content": "Hi"}],
    "rejected": [{"role": "assistant", "content": "No"}],
}


def _jsonl(path: Path, *records: dict) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def test_a_record_flags_its_completions_and_absent_or_null_means_complete(tmp_path):
    path = _jsonl(
        tmp_path / "p.jsonl", {**PLAIN, "chosen_truncated": True}, {**PLAIN, "rejected_truncated": None}, PLAIN
    )
    flags = [(e.chosen_truncated, e.rejected_truncated) for e in load_preferences(path).examples]
    assert flags == [(True, False), (False, False), (False, False)]


def test_a_bad_truncated_value_is_one_line_naming_file_record_and_field(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PLAIN, {**PLAIN, "chosen_truncated": "yes"})
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    assert str(caught.value) == f"{path}:2: chosen_truncated: expected true or false, got string"
    path = _jsonl(tmp_path / "q.jsonl", {**PLAIN, "rejected_truncated": 1})
    with pytest.raises(DataError, match=r"q.jsonl:1: rejected_truncated: expected true or false, got int$"):
        load_preferences(path)


def test_a_truncated_conversational_record_is_an_error_not_ignored(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", {**CHAT, "rejected_truncated": True})
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    assert str(caught.value) == (
        f"{path}:1: rejected_truncated: truncated completions are supported for plain-text records only"
    )
    hh = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello",
        "rejected": "\n\nHuman: hi\n\nAssistant: go",
        "chosen_truncated": True,
    }
    with pytest.raises(DataError, match=r"h\.jsonl:1: chosen_truncated: truncated completions are supported"):
        load_preferences(_jsonl(tmp_path / "h.jsonl", hh), fmt="hh-rlhf-chat")
    assert load_preferences(_jsonl(tmp_path / "h2.jsonl", hh), fmt="hh-rlhf").examples[0].chosen_truncated
    assert load_preferences(_jsonl(tmp_path / "c2.jsonl", {**CHAT, "chosen_truncated": False})).examples


def test_csv_flags_are_true_or_false_text(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,chosen,rejected,chosen_truncated\nq," a"," b",True\nq," a"," c",\nq," a"," d",maybe\n')
    with pytest.raises(DataError, match=r"p.csv:4: chosen_truncated: expected true or false, got string"):
        load_preferences(str(path))
    loaded = load_preferences(str(path), skip_invalid=True)
    assert [e.chosen_truncated for e in loaded.examples] == [True, False] and len(loaded.rejected) == 1


# --- the data.truncated_completions switch -------------------------------------------------------


def test_the_switch_marks_every_plain_text_completion_and_without_it_eos_comes_last(tmp_path, tiny_tokenizer):
    path = _jsonl(tmp_path / "p.jsonl", PLAIN, {**PLAIN, "chosen": " Hello"}, CHAT)
    eos = tiny_tokenizer.eos_token_id

    default = load_preferences(path).examples
    for pair in tokenize_examples(default[:2], tiny_tokenizer, NO_LIMIT):  # TRL's behaviour, unchanged
        assert pair.chosen_ids[-1] == eos and pair.rejected_ids[-1] == eos

    switched = load_preferences(path, truncated_completions=True).examples
    assert [(e.chosen_truncated, e.rejected_truncated) for e in switched] == [
        (True, True),
        (True, True),
        (False, False),
    ]
    pairs = tokenize_examples(switched, tiny_tokenizer, NO_LIMIT)
    for pair in pairs[:2]:
        assert eos not in pair.chosen_ids and eos not in pair.rejected_ids
    assert pairs[2] == tokenize_examples(default, tiny_tokenizer, NO_LIMIT)[2]  # the chat template's own ending
    assert mark_truncated(default[2]) == default[2]


def test_a_truncated_example_must_be_plain_text():
    with pytest.raises(DataError, match=r"f\.jsonl:3: chosen_truncated: truncated completions are supported"):
        PreferenceExample(CHAT["prompt"], CHAT["chosen"], CHAT["rejected"], "f.jsonl", 3, chosen_truncated=True)


def test_data_config_switch_is_for_data_path():
    assert DataConfig(path="x.jsonl").truncated_completions is False
    with pytest.raises(ValueError, match=r"truncated_completions: applies to data\.path"):
        DataConfig(sentiment=SentimentPairs(), truncated_completions=True)


def test_harness_run_keeps_the_flags_in_its_pairs_file(tmp_path, tiny_tokenizer):
    from tokenpo.harness.pipeline.work import file_pairs

    path = _jsonl(tmp_path / "p.jsonl", PLAIN, {**PLAIN, "chosen": " Hello", "rejected_truncated": False})
    config = from_mapping(
        RunConfig,
        {
            "name": "t",
            "methods": [{"name": "dpo", "method": {"name": "dpo"}}],
            "data": {"path": path, "truncated_completions": True},
        },
        "test",
    )
    folder = tmp_path / "data"
    folder.mkdir()
    file_pairs(config, folder)
    written = load_preferences(str(folder / "pairs.jsonl")).examples
    direct = load_preferences(path, truncated_completions=True).examples
    assert tokenize_examples(written, tiny_tokenizer, NO_LIMIT) == tokenize_examples(direct, tiny_tokenizer, NO_LIMIT)
    assert all(e.chosen_truncated and e.rejected_truncated for e in written)


@pytest.mark.parametrize("switch", [False, True])
def test_harness_train_honours_the_switch(switch, tmp_path, tiny_model_dirs, monkeypatch):
    import tokenpo.harness.commands.train as command
    from tokenpo.harness.cli import main

    trained: list[PreferenceExample] = []

    def fake_train(config, model, examples, output, config_record, eval_examples):
        assert eval_examples == []  # no held-out pairs asked for
        trained.extend(examples)
        return SimpleNamespace(
            already_done=False,
            steps=0,
            resumed_from=None,
            run_dir=tmp_path,
            final_dir=tmp_path,
            metrics_path=tmp_path / "metrics.jsonl",
        )

    monkeypatch.setattr(command, "train_with_cards", fake_train)
    data = _jsonl(tmp_path / "p.jsonl", PLAIN, {**PLAIN, "chosen": " Hello"})
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {tiny_model_dirs['llama']}\ndata: {{path: {data}}}\noutput_dir: {tmp_path / 'run'}\n")
    override = f"data.truncated_completions={str(switch).lower()}"
    assert main(["train", "--config", str(config), "--no-progress", override]) == 0
    assert [(e.chosen_truncated, e.rejected_truncated) for e in trained] == [(switch, switch)] * 2
