"""Helpers shared by the trainer tests: tiny model folders and small preference sets."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from tokenpo.trainers.data import PreferenceExample

PROMPTS = [
    "What is the capital of France?",
    "Name a good way to learn a language.",
    "Is this movie good?",
    "How many clips did Natalia sell?",
    "Write a function that adds two numbers.",
    "What does a language model predict?",
    "Say something about the quick brown fox.",
    "Which capital is Rome?",
]
GOOD = [
    " Paris is the capital of France.",
    " Practise a little every day.",
    " It was wonderful and moving.",
    " 48 + 24 = 72.",
    " def add(a, b): return a + b",
    " The next token of a text.",
    " It jumps over the lazy dog.",
    " Rome is the capital of Italy.",
]
BAD = [
    " Rome, I think.",
    " Never try.",
    " It was terrible and boring, far too long.",
    " 100.",
    " add = 3",
    " Nothing at all.",
    " The dog is quick.",
    " Madrid.",
]


def examples(count: int = 8) -> list[PreferenceExample]:
    return [
        PreferenceExample(PROMPTS[i % 8], GOOD[i % 8], BAD[i % 8], source="test", location=i + 1) for i in range(count)
    ]


def write_jsonl(path: Path, items: list[PreferenceExample]) -> Path:
    path.write_text(
        "".join(json.dumps({"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected}) + "\n" for e in items)
    )
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict:
    return load_file(str(Path(folder) / "model.safetensors"))


def pull_as_gguf(cache: Path, monkeypatch) -> Path:
    """``smollm2-135m-instruct`` pulled into ``cache`` the offline way (its Q4_1 GGUF, dequantised), with a
    tiny Llama standing in for the converted weights: the manifest is the one the store writes."""
    from tokenpo.harness.models import gguf
    from tokenpo.harness.models.store import ModelStore
    from tokenpo.harness.models.tiny import save_tiny_model

    monkeypatch.setattr(gguf, "fetch_gguf", lambda source, workdir: workdir / source.filename)
    monkeypatch.setattr(gguf, "convert_gguf", lambda gguf_path, out_dir: save_tiny_model("llama", out_dir))
    return ModelStore(cache).pull("smollm2-135m-instruct", prefer_hub=False)
