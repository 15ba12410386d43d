"""The win-rate judge's inputs: prompt sets, answers (generated and read), and the reward-model judge."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.answers import (
    LENGTH_UNIT,
    Answer,
    count_tokens,
    generate_answers,
    read_answers,
    write_answers,
)
from tokenpo.evals.judges.winrate.prompts import (
    Prompt,
    hh_first_turn,
    hh_helpful_prompts,
    ifeval_prompts,
    jsonl_prompts,
    load_prompt_set,
)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- prompts ----------------------------------------------------------------------------------------

DIALOGUE = (
    "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water.\n\nHuman: How long?\n\nAssistant: 8 min"
)


def test_hh_first_turn_stops_at_the_first_assistant_turn():
    assert hh_first_turn(DIALOGUE) == "How do I boil an egg?"
    assert hh_first_turn("Human: no leading blank lines\n\nAssistant: x") is None
    assert hh_first_turn("\n\nHuman: never answered") is None


def test_hh_helpful_prompts_dedup_in_file_order_with_line_ids(tmp_path):
    rows = [
        {"chosen": DIALOGUE, "rejected": DIALOGUE + "!"},
        {
            "chosen": "\n\nHuman: Name a colour.\n\nAssistant: Blue.",
            "rejected": "\n\nHuman: Name a colour.\n\nAssistant: No.",
        },
        {"chosen": DIALOGUE.replace("8 min", "9 min"), "rejected": DIALOGUE},  # the same first turn again
    ]
    folder = tmp_path / "hh_rlhf"
    folder.mkdir()
    with gzip.open(folder / "helpful-base_test.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    prompts = hh_helpful_prompts(tmp_path)
    assert prompts == [Prompt("hh-helpful-0", "How do I boil an egg?"), Prompt("hh-helpful-1", "Name a colour.")]
    assert hh_helpful_prompts(tmp_path, limit=1) == prompts[:1]
    assert load_prompt_set("hh-helpful", tmp_path, 5) == prompts


def test_hh_helpful_prompts_on_the_real_file(benchmarks_dir):
    prompts = hh_helpful_prompts(benchmarks_dir)
    # 2354 dialogues; 2207 distinct first turns (counted on the released file).
    assert len(prompts) == 2207
    texts = [p.text for p in prompts]
    assert len(set(texts)) == len(texts)
    assert len({p.prompt_id for p in prompts}) == len(prompts)
    assert not any("Assistant:" in t or "Human:" in t for t in texts)
    assert all(t == t.strip() and t for t in texts)
    assert prompts[0].prompt_id == "hh-helpful-0"
    assert hh_helpful_prompts(benchmarks_dir, limit=10) == prompts[:10]


def test_ifeval_prompts_on_the_real_file(benchmarks_dir):
    prompts = ifeval_prompts(benchmarks_dir)
    assert len(prompts) == 541
    assert all(p.prompt_id.startswith("ifeval-") and p.text.strip() for p in prompts)
    assert len({p.prompt_id for p in prompts}) == 541
    assert load_prompt_set("ifeval", benchmarks_dir, 3) == prompts[:3]


def test_jsonl_prompts_ids_and_limit(tmp_path):
    path = _write_lines(
        tmp_path / "p.jsonl",
        [
            json.dumps({"prompt": "a", "id": "first"}),
            "",
            json.dumps({"prompt": "b"}),
            json.dumps({"prompt": "c", "id": 7}),
        ],
    )
    assert jsonl_prompts(path) == [Prompt("first", "a"), Prompt("line-3", "b"), Prompt("7", "c")]
    assert jsonl_prompts(path, limit=2) == [Prompt("first", "a"), Prompt("line-3", "b")]
    assert load_prompt_set(str(path), None, None) == jsonl_prompts(path)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([json.dumps({"prompt": "a"}), "{not json"], ":2: json:"),
        ([json.dumps({"prompt": "a"}), json.dumps({"text": "b"})], ":2: prompt: missing"),
        ([json.dumps({"prompt": "  "})], ":1: prompt: empty"),
        ([json.dumps({"prompt": 3})], ":1: prompt: missing or not a string"),
        (
            [json.dumps({"prompt": "a", "id": "x"}), json.dumps({"prompt": "b", "id": "x"})],
            ":2: id: 'x' already on line 1",
        ),
        ([json.dumps({"prompt": "a", "id": True})], ":1: id:"),
        (["[1, 2]"], ":1: record:"),
    ],
)
def test_jsonl_prompts_errors_name_file_line_and_field(tmp_path, lines, expected):
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(EvalError) as raised:
        jsonl_prompts(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:") and expected in message
    assert "\n" not in message


def test_load_prompt_set_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EvalError, match="HF_HUB_OFFLINE is set"):
        load_prompt_set("hub:someorg/somedata:test", None, None)
    with pytest.raises(EvalError, match="expected hub:ORG/NAME"):
        load_prompt_set("hub:nosplitname", None, None)
    with pytest.raises(EvalError, match="unknown prompt set"):
        load_prompt_set("alpaca", tmp_path, None)
    with pytest.raises(EvalError, match="needs the benchmark data folder"):
        load_prompt_set("hh-helpful", None, None)
    with pytest.raises(EvalError, match="no such file"):
        load_prompt_set("hh-helpful", tmp_path, None)


# --- answers ----------------------------------------------------------------------------------------


def test_read_answers_forms_and_length_unit(tmp_path):
    path = _write_lines(
        tmp_path / "answers.jsonl",
        [
            json.dumps({"prompt_id": "p1", "answer": " Paris. "}),
            json.dumps({"prompt_id": 2, "completion": "Rome", "tokens": 1}),
            json.dumps({"prompt": "Capital of Spain?", "completion": "Madrid"}),
        ],
    )
    prompts = [Prompt("p1", "Capital of France?"), Prompt("2", "Capital of Italy?"), Prompt("p3", "Capital of Spain?")]
    answers = read_answers(path, prompts)
    assert answers == {
        "p1": Answer("p1", "Paris."),
        "2": Answer("2", "Rome", tokens=1),
        "p3": Answer("p3", "Madrid"),
    }
    assert LENGTH_UNIT == "characters"
    assert answers["p1"].length == len("Paris.")
    assert Answer("x", "héllo").length == 5  # code points, not bytes


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([json.dumps({"answer": "a"})], ":1: prompt_id: missing"),
        ([json.dumps({"prompt_id": "p1"})], ":1: answer: missing"),
        ([json.dumps({"prompt_id": "p1", "answer": 5})], ":1: answer: not a string"),
        (
            [json.dumps({"prompt_id": "p1", "answer": "a"}), json.dumps({"prompt_id": "p1", "answer": "b"})],
            ":2: prompt_id:",
        ),
        ([json.dumps({"prompt": "unknown", "answer": "a"})], ":1: prompt: matches no prompt"),
        ([json.dumps({"prompt_id": "p1", "answer": "a", "tokens": -1})], ":1: tokens:"),
        (['{"prompt_id": "p1",'], ":1: json:"),
    ],
)
def test_read_answers_errors_name_file_line_and_field(tmp_path, lines, expected):
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(EvalError) as raised:
        read_answers(path, [Prompt("p1", "known")])
    assert str(raised.value).startswith(f"{path}:") and expected in str(raised.value)


def test_generate_answers_is_deterministic_and_counts_tokens(tiny_model_dirs):
    from transformers import AutoTokenizer

    model_dir = tiny_model_dirs["llama"]
    prompts = [
        Prompt("a", "What is the capital of France?"),
        Prompt("b", "Write a short poem."),
        Prompt("c", "Numbers: 1 2 3"),
    ]
    first = generate_answers(model_dir, prompts, max_new_tokens=12, batch_size=2)
    second = generate_answers(model_dir, prompts, max_new_tokens=12, batch_size=2)
    assert first == second
    assert [answer.prompt_id for answer in first] == ["a", "b", "c"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for answer in first:
        assert answer.tokens == count_tokens(tokenizer, answer.text)
        assert answer.tokens == len(tokenizer(answer.text, add_special_tokens=False)["input_ids"])
        assert answer.truncated in (True, False)
        assert answer.tokens <= 3 * 12  # a decoded token re-encodes into at most a few byte tokens


# --- the reward-model judge --------------------------------------------------------------------------


def _save_tiny_classifier(folder: Path, num_labels: int, chat_template: bool = True) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tokenpo.harness.models.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    if not chat_template:
        tokenizer.chat_template = None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = LlamaForSequenceClassification(config)
        # The head starts near zero; a larger one spreads the rewards so that comparisons are not ties.
        torch.nn.init.normal_(model.score.weight, std=1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


PROMPTS = ["What is the capital of France?", "Say something nice.", "Add 2 and 3."]
ANSWERS = ["Paris.", "This movie was wonderful, moving and funny; the actors were brilliant.", "5"]


@pytest.mark.parametrize(("num_labels", "chat_template"), [(1, True), (2, True), (1, False)])
def test_reward_scores_equal_a_manual_forward_pass(tmp_path, num_labels, chat_template):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tokenpo.evals.judges.winrate.reward import RewardModelJudge

    folder = _save_tiny_classifier(tmp_path / "rm", num_labels, chat_template)
    judge = RewardModelJudge(folder, batch_size=3)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    manual = []
    for prompt, answer in zip(PROMPTS, ANSWERS):
        if chat_template:
            conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            text = tokenizer.apply_chat_template(conversation, tokenize=False)
            assert answer in text and prompt in text
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        else:
            text = prompt + "\n\n" + answer
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
        assert judge.format(prompt, answer) == text
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        manual.append(float(logits[0] if num_labels == 1 else logits[1] - logits[0]))
    batched = judge.scores(PROMPTS, ANSWERS)
    assert batched == pytest.approx(manual, abs=1e-5)
    # Batching (and so padding) does not change a score.
    single = RewardModelJudge(folder, batch_size=1).scores(PROMPTS, ANSWERS)
    assert batched == pytest.approx(single, abs=1e-5)
    settings = judge.settings()
    assert settings["model"] == str(folder) and settings["num_labels"] == num_labels
    assert settings["reward"] == ("logit" if num_labels == 1 else "logit[1] - logit[0]")
    assert ("chat template" in settings["format"]) == chat_template


def test_reward_compare_agrees_with_scores(tmp_path):
    from tokenpo.evals.judges.winrate.reward import RewardModelJudge

    judge = RewardModelJudge(_save_tiny_classifier(tmp_path / "rm", 1), batch_size=4)
    prompt = PROMPTS[0]
    rewards = judge.scores([prompt] * len(ANSWERS), ANSWERS)
    assert len(set(rewards)) == len(rewards)  # the test needs distinct rewards to check both outcomes
    for i, candidate in enumerate(ANSWERS):
        for j, baseline in enumerate(ANSWERS):
            expected = 0.5 if i == j else float(rewards[i] > rewards[j])
            assert judge.compare(prompt, candidate, baseline) == expected
    outcomes = judge.compare_many([prompt] * 3, ANSWERS, [ANSWERS[1], ANSWERS[1], ANSWERS[0]])
    assert [o for o, _, _ in outcomes] == [
        judge.compare(prompt, ANSWERS[0], ANSWERS[1]),
        0.5,
        judge.compare(prompt, ANSWERS[2], ANSWERS[0]),
    ]
    assert RewardModelJudge.outcome("a", "b", 1.0, 1.0) == 0.5


def test_reward_judge_refuses_other_heads(tmp_path):
    from tokenpo.evals.judges.winrate.reward import RewardModelJudge

    with pytest.raises(EvalError, match="num_labels"):
        RewardModelJudge(_save_tiny_classifier(tmp_path / "rm", 3))


def test_written_answers_read_back_equal_in_the_prompts_order(tmp_path):
    prompts = [Prompt("b", "second?"), Prompt("a", "first?")]
    answers = [Answer("a", "Yes, first.", 4, False), Answer("b", "No — «second».", 6, True)]
    path = write_answers(tmp_path / "answers.jsonl", prompts, answers)
    assert [json.loads(line)["prompt_id"] for line in path.read_text().splitlines()] == ["b", "a"]
    assert read_answers(path, prompts) == {answer.prompt_id: answer for answer in answers}
    with pytest.raises(ValueError, match="exactly once"):
        write_answers(tmp_path / "twice.jsonl", prompts, [answers[0], answers[0]])


def test_an_answers_truncated_flag_that_is_not_a_boolean_is_refused_naming_the_line(tmp_path):
    path = _write_lines(tmp_path / "answers.jsonl", [json.dumps({"prompt_id": "a", "answer": "x", "truncated": "no"})])
    with pytest.raises(EvalError, match=r"answers.jsonl:1: truncated: expected true, false or null"):
        read_answers(path)
