"""ROUGE against hand-computed values, VADER on clearly positive/negative texts, the sequence KL."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tokenpo.core.hardware import native_bf16
from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges import rouge, sentiment
from tokenpo.harness.cli import main
from tokenpo.harness.pipeline.work import eval_autocast


def test_rouge_equals_hand_computed_values():
    # prediction "the cat sat on the mat" vs reference "the cat is on the mat":
    # unigrams: 5 of 6 match each way -> F = 5/6; bigrams the-cat, on-the, the-mat: 3 of 5 -> F = 3/5;
    # LCS "the cat on the mat" = 5 tokens -> F = 5/6.
    [score] = rouge.score_pairs(["the cat sat on the mat"], ["the cat is on the mat"])
    assert score["rouge1"] == pytest.approx(5 / 6)
    assert score["rouge2"] == pytest.approx(3 / 5)
    assert score["rougeL"] == pytest.approx(5 / 6)
    assert score["rougeLsum"] == pytest.approx(5 / 6)


def test_rouge_stemming_and_lsum_sentences():
    [stemmed] = rouge.score_pairs(["cats running"], ["cat runs"])
    [plain] = rouge.score_pairs(["cats running"], ["cat runs"], stemming=False)
    assert stemmed["rouge1"] == 1.0 and plain["rouge1"] == 0.0
    # Lsum: union LCS per reference sentence. ref "a b\nc d", pred "c d\na b": each sentence is matched
    # whole -> 4/4; plain rougeL on the flat text finds LCS 2 -> 2/4.
    [score] = rouge.score_pairs(["c d\na b"], ["a b\nc d"], stemming=False)
    assert score["rougeLsum"] == pytest.approx(1.0) and score["rougeL"] == pytest.approx(0.5)


def _independent_percentile_interval(values: list[float], resamples: int, seed: int) -> np.ndarray:
    """The 95% percentile bootstrap interval of the mean, resampled here with plain numpy: each resample
    draws len(values) indices uniformly with replacement (one (resamples, n) draw from default_rng(seed))."""
    data = np.asarray(values)
    index = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    return np.quantile(data[index].mean(axis=1), [0.025, 0.975])


def test_rouge_intervals_are_the_shared_bootstrap_and_collapse_for_constant_scores():
    values = [0.0, 1.0] * 50
    scores = [dict.fromkeys(rouge.ROUGE_TYPES, v) for v in values]
    intervals = rouge.score_intervals(scores, resamples=500, seed=1)
    assert set(intervals) == set(rouge.ROUGE_TYPES)
    interval = intervals["rouge2"]
    assert interval.value == 0.5 and interval.low < 0.5 < interval.high and interval.how == "bootstrap"
    assert interval.stderr == pytest.approx((0.25 * 100 / 99) ** 0.5 / 10)
    assert (interval.low, interval.high) == pytest.approx(tuple(_independent_percentile_interval(values, 500, 1)))
    # every type draws the same pairs: equal scores, equal intervals
    assert all(other == interval for other in intervals.values())
    constant = rouge.score_intervals([dict.fromkeys(rouge.ROUGE_TYPES, 0.3)] * 10)["rouge1"]
    assert constant.low == pytest.approx(0.3) and constant.high == pytest.approx(0.3)
    with pytest.raises(EvalError, match="no samples"):
        rouge.score_intervals([])


def test_rouge_interval_of_two_pairs_is_the_independent_numpy_bootstrap():
    """The CLI test's pairs: ROUGE-1 of 5/6 and 1. A resample of two draws both pairs (mean 11/12) half the
    time, else one twice (5/6 or 1), so the 95% interval ends near those; numpy fixes the exact ends."""
    scores = rouge.score_pairs(["the cat sat on the mat", "hello world"], ["the cat is on the mat", "hello world"])
    interval = rouge.score_intervals(scores)["rouge1"]
    assert interval.value == pytest.approx(11 / 12)
    assert (interval.low, interval.high) == pytest.approx(
        tuple(_independent_percentile_interval([5 / 6, 1.0], 1000, 0)), abs=1e-12
    )
    assert 5 / 6 <= interval.low < interval.high <= 1.0


def test_vader_separates_clearly_positive_from_clearly_negative(benchmarks_dir):
    import csv

    with open(benchmarks_dir / "imdb" / "imdb_sample.csv", newline="", encoding="utf-8") as handle:
        reviews = list(csv.DictReader(handle))[:200]
    scores = sentiment.score_texts([r["text"] for r in reviews])
    positive = [s for s, r in zip(scores, reviews, strict=True) if r["label"] == "positive"]
    negative = [s for s, r in zip(scores, reviews, strict=True) if r["label"] == "negative"]
    assert sum(positive) / len(positive) > sum(negative) / len(negative) + 0.2
    clear = sentiment.score_texts(
        ["This movie was wonderful, I loved every minute of it!", "Terrible, boring and awful. I hated it."]
    )
    assert clear[0] > 0.9 and clear[1] < 0.1
    assert sentiment.is_positive(clear[0]) and not sentiment.is_positive(clear[1])


PROMPTS, COMPLETIONS = ["Hello there", "A longer prompt here"], [" general", " x y z"]


def other_model(model):
    """A second model of the same architecture, randomly initialised (seeded): KL to ``model`` > 0."""
    other = type(model)(model.config).eval()
    torch.manual_seed(1)
    for parameter in other.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    return other


def test_sequence_kl_is_zero_to_itself_and_matches_a_direct_computation(tiny_llama):
    model, tokenizer = tiny_llama
    other, prompts, completions = other_model(model), PROMPTS, COMPLETIONS
    assert sentiment.sequence_kl(model, model, tokenizer, prompts, completions) == pytest.approx([0.0, 0.0], abs=1e-6)
    kl = sentiment.sequence_kl(other, model, tokenizer, prompts, completions, batch_size=1)
    for prompt, completion, value in zip(prompts, completions, kl, strict=True):
        p_ids = tokenizer(prompt)["input_ids"]
        c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            log_p = torch.log_softmax(other(ids).logits[0], -1)
            log_q = torch.log_softmax(model(ids).logits[0], -1)
        expected = sum(
            float((log_p[t].exp() * (log_p[t] - log_q[t])).sum())
            for t in range(len(p_ids) - 1, len(p_ids) + len(c_ids) - 1)
        )
        assert value == pytest.approx(expected, rel=1e-5) and value > 0


@pytest.mark.skipif(not native_bf16(), reason="bf16 is emulated on this CPU: the setting falls back to float32")
def test_the_bf16_setting_computes_the_kl_in_bf16_close_to_float32(tiny_llama):
    model, tokenizer = tiny_llama
    other, prompts, completions = other_model(model), PROMPTS, COMPLETIONS
    exact = sentiment.sequence_kl(other, model, tokenizer, prompts, completions)
    with eval_autocast("bf16", model):
        fast = sentiment.sequence_kl(other, model, tokenizer, prompts, completions)
    with eval_autocast("no", model):
        assert sentiment.sequence_kl(other, model, tokenizer, prompts, completions) == exact
    # bf16 keeps 8 bits of mantissa: the sums differ in the third digit, not more.
    assert fast != exact and fast == pytest.approx(exact, rel=2e-2)


def test_cli_sentiment_and_rouge_write_result_folders(tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(
        json.dumps({"text": "I love this, it is great!"}) + "\n" + json.dumps({"text": "Awful and sad."}) + "\n"
    )
    assert main(["judge", "sentiment", "--texts", str(texts), "--out", str(tmp_path / "s")]) == 0
    result = json.loads((tmp_path / "s" / "results.json").read_text())
    assert result["results"]["sentiment"]["positive_rate,none"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "s" / "samples" / "sentiment.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in rows] == [0, 1] and rows[0]["p_positive"] > 0.5 > rows[1]["p_positive"]

    (tmp_path / "pred.txt").write_text("the cat sat on the mat\nhello world\n")
    (tmp_path / "ref.txt").write_text("the cat is on the mat\nhello world\n")
    pred, ref = str(tmp_path / "pred.txt"), str(tmp_path / "ref.txt")
    rouge_cli = ["judge", "rouge", "--predictions", pred, "--references", ref]
    assert main([*rouge_cli, "--out", str(tmp_path / "r")]) == 0
    result = json.loads((tmp_path / "r" / "results.json").read_text())["results"]["rouge"]
    assert result["rouge1,none"] == pytest.approx((5 / 6 + 1) / 2)
    assert result["rouge1_ci95_low,none"] <= result["rouge1,none"] <= result["rouge1_ci95_high,none"]
    (tmp_path / "ref.txt").write_text("only one\n")
    assert main([*rouge_cli, "--out", str(tmp_path / "r2")]) == 2


def test_classifier_pipeline_reports_its_positive_labels_probability(tiny_tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    texts = ["good movie", "a much longer and rather bad movie"]
    scores = sentiment.score_texts(texts, model=str(tmp_path), batch_size=1)
    for text, score in zip(texts, scores, strict=True):
        with torch.no_grad():
            logits = model(**tiny_tokenizer(text, return_tensors="pt")).logits[0]
        assert score == pytest.approx(float(torch.softmax(logits, -1)[1]), rel=1e-4)


def test_cli_sentiment_with_policy_and_reference_adds_the_sequence_kl(tmp_path, capsys):
    texts = tmp_path / "samples.jsonl"
    texts.write_text(
        "".join(json.dumps({"prompt": "The movie was", "completion": c}) + "\n" for c in [" great!", " bad."])
    )
    common = ["judge", "sentiment", "--texts", str(texts)]
    assert main([*common, "--out", str(tmp_path / "kl"), "--policy", "tiny-llama", "--reference", "tiny-llama"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "kl" / "samples" / "sentiment.jsonl").read_text().splitlines()]
    assert [r["kl_to_ref"] for r in rows] == pytest.approx([0.0, 0.0], abs=1e-6)  # a model against itself
    assert main([*common, "--out", str(tmp_path / "x"), "--policy", "tiny-llama"]) == 2
    assert "give both" in capsys.readouterr().err
