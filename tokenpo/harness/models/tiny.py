"""Tiny randomly initialised causal LMs with a real byte-level BPE tokenizer, for fast tests.

Everything is built locally in well under a second: the tokenizer is trained on a short English
text kept here, so it needs no hub and no pulled model, and any text (bytes included) encodes.
The models are Llama- and GPT-2-family ``transformers`` models of a few hundred thousand
parameters; they generate nonsense but exercise exactly the code paths the real models do.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

VOCAB_SIZE = 1024
PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"

# ChatML, as SmolLM2 and many instruct models use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """
The capital of France is Paris. The capital of Italy is Rome, and the capital of Spain is Madrid.
Human: What is the best way to learn a new language? Assistant: Practise a little every day, read
books you enjoy, listen to people who speak it well, and do not be afraid of making mistakes.
This movie was wonderful, moving and funny; the actors were brilliant and the story was great.
This film was terrible, boring and far too long; the plot made no sense and I hated the ending.
Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips
in May. How many clips did Natalia sell altogether in April and May? Answer: 48 + 24 = 72.
def add(a, b):
    return a + b
The quick brown fox jumps over the lazy dog. A language model predicts the next token of a text
from the tokens before it; preference optimisation teaches it which of two answers people prefer.
Write your answer in at least 300 words, in English, and use no commas. Respond in JSON format.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Punctuation: . , ; : ! ? ' " ( ) [ ] { } - + * / = < > #
"""


@functools.lru_cache(maxsize=1)
def _trained_tokenizer_json() -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([line for line in _CORPUS.splitlines() if line], trainer=trainer)
    return tokenizer.to_str()


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (~670 tokens: 256 bytes + merges) with ChatML; pad equals eos.

    Pad equals eos on purpose, as in SmolLM2 and GPT-2: code that finds completions by
    comparing against the pad id instead of using masks fails on these tiny models too.
    """
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json()),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=PAD,
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(family: str = "llama", seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised model of ``family`` ('llama' or 'gpt2') and its tokenizer."""
    tokenizer = build_tiny_tokenizer()
    special = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if family == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            **special,
        )
        model_cls: type[PreTrainedModel] = LlamaForCausalLM
    elif family == "gpt2":
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=3, n_head=4, n_positions=512, **special)
        model_cls = GPT2LMHeadModel
    else:
        raise ValueError(f"unknown tiny model family {family!r}; expected 'llama' or 'gpt2'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval(), tokenizer


def save_tiny_model(family: str, folder: Path, seed: int = 0) -> None:
    model, tokenizer = build_tiny_model(family, seed=seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
