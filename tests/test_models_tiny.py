import torch

from tokenpo.harness.models.tiny import build_tiny_model, build_tiny_tokenizer


def test_tiny_models_are_small_and_of_both_families(tiny_llama, tiny_gpt2):
    for (model, _), model_type in ((tiny_llama, "llama"), (tiny_gpt2, "gpt2")):
        assert model.config.model_type == model_type
        parameters = sum(p.numel() for p in model.parameters())
        assert 100_000 <= parameters <= 500_000


def test_tiny_model_is_deterministic_per_seed():
    first, _ = build_tiny_model("llama", seed=3)
    second, _ = build_tiny_model("llama", seed=3)
    other, _ = build_tiny_model("llama", seed=4)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))


def test_tiny_tokenizer_round_trips_any_text_and_has_chatml():
    tokenizer = build_tiny_tokenizer()
    text = "The capital of France is Paris. Ünïcödé ☃ and bytes \x00\x7f!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode())  # real BPE merges, not bytes one by one
    messages = [{"role": "user", "content": "hi"}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_tiny_model_generates_with_its_tokenizer(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    inputs = tokenizer("Hello", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 5)
