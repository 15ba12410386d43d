import pytest

from tokenpo.trainers.data import (
    PreferenceExample,
    TruncationPolicy,
    collate_pairs,
    length_statistics,
    tokenize_example,
)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_standard_pair_gets_eos_on_each_completion(tiny_tokenizer):
    tok = tiny_tokenizer
    pair = tokenize_example(PreferenceExample("Say hi.", " Hi!", " No."), tok, TruncationPolicy(None, None))
    assert pair.prompt_ids == _ids(tok, "Say hi.")
    assert pair.chosen_ids == [*_ids(tok, " Hi!"), tok.eos_token_id]
    assert pair.rejected_ids == [*_ids(tok, " No."), tok.eos_token_id]
    assert not pair.truncated


def test_conversational_pair_is_rendered_with_the_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer
    example = PreferenceExample(
        [{"role": "user", "content": "Capital of France?"}],
        [{"role": "assistant", "content": "Paris."}],
        [{"role": "assistant", "content": "Lyon."}],
    )
    pair = tokenize_example(example, tok, TruncationPolicy(None, None))
    assert tok.decode(pair.prompt_ids) == "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(pair.chosen_ids) == "Paris.<|im_end|>\n"
    assert tok.decode(pair.rejected_ids) == "Lyon.<|im_end|>\n"


def test_truncation_keeps_the_prompt_end_and_the_completion_start(tiny_tokenizer):
    tok = tiny_tokenizer
    prompt, chosen = "one two three four five six seven eight", " alpha beta gamma delta epsilon"
    full_prompt, full_chosen = _ids(tok, prompt), [*_ids(tok, chosen), tok.eos_token_id]
    policy = TruncationPolicy(max_length=8, max_prompt_length=3)
    pair = tokenize_example(PreferenceExample(prompt, chosen, " x"), tok, policy)
    assert pair.prompt_ids == full_prompt[-3:]
    assert pair.chosen_ids == full_chosen[:5]
    assert pair.rejected_ids == [*_ids(tok, " x"), tok.eos_token_id]  # short enough: untouched
    assert pair.full_lengths == (len(full_prompt), len(full_chosen), len(pair.rejected_ids)) and pair.truncated


@pytest.mark.parametrize(("max_length", "max_prompt_length"), [(8, 8), (8, None), (0, None), (8, -1)])
def test_truncation_policy_rejects_settings_that_would_empty_a_completion(max_length, max_prompt_length):
    with pytest.raises(ValueError):
        TruncationPolicy(max_length, max_prompt_length)


def test_collate_masks_completions_even_when_pad_equals_eos(tiny_tokenizer):
    tok = tiny_tokenizer
    policy = TruncationPolicy(None, None)
    pairs = [
        tokenize_example(PreferenceExample("Q?", " yes", " no way at all"), tok, policy),
        tokenize_example(PreferenceExample("Longer question here?", " A", " B"), tok, policy),
    ]
    batch = collate_pairs(pairs, tok.pad_token_id)
    assert batch["input_ids"].shape[0] == 4
    for row, (pair, completion) in enumerate(
        [
            (pairs[0], pairs[0].chosen_ids),
            (pairs[1], pairs[1].chosen_ids),
            (pairs[0], pairs[0].rejected_ids),
            (pairs[1], pairs[1].rejected_ids),
        ]
    ):
        mask = batch["completion_mask"][row].bool()
        assert batch["input_ids"][row][mask].tolist() == completion  # eos included, padding excluded
        length = len(pair.prompt_ids) + len(completion)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (batch["input_ids"].shape[1] - length)
    assert bool((batch["completion_mask"] <= batch["attention_mask"]).all())


def test_length_statistics_by_hand(tiny_tokenizer):
    from tokenpo.trainers.data import TokenizedPair

    pairs = [TokenizedPair([1] * 2, [1] * 3, [1] * 5, (2, 3, 5)), TokenizedPair([1] * 4, [1] * 1, [1] * 1, (4, 1, 1))]
    stats = length_statistics(pairs)
    assert stats["prompt"] == {"min": 2, "mean": 3, "p50": 3, "p95": 3.9, "max": 4}
    assert stats["longest sequence"]["max"] == 7 and stats["longest sequence"]["min"] == 5
