import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenpo.harness.cli import main
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import ModelStore, load_causal_lm, load_tokenizer, resolve_model
from tokenpo.harness.models.cache import atomic_directory


def test_resolve_accepts_folders_and_hub_ids_and_rejects_the_rest(tmp_path):
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(HarnessError, match="not a model folder"):
        resolve_model(str(tmp_path))
    with pytest.raises(HarnessError, match="is not a built-in name"):
        resolve_model("no-such-model")


def test_pull_tiny_writes_a_loadable_folder_with_a_manifest(tmp_path):
    store = ModelStore(tmp_path)
    path = store.pull("tiny-llama")
    assert json.loads((path / "harness-model.json").read_text())["source"] == "tiny"
    assert resolve_model("tiny-llama", cache_dir=tmp_path) == str(path)
    model, tokenizer = load_causal_lm(str(path)), load_tokenizer(str(path))
    assert model.config.model_type == "llama" and tokenizer.chat_template
    assert store.pull("tiny-llama") == path  # second pull is a no-op


def test_atomic_directory_leaves_nothing_when_the_block_fails(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_directory(final) as scratch:
        (scratch / "weights").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_pull_removes_partials_of_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "models" / f".partial-tiny-gpt2-{dead.pid}"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    ModelStore(tmp_path).pull("tiny-gpt2")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-gpt2"]


def test_models_list_shows_what_is_pulled(tmp_path, capsys):
    ModelStore(tmp_path).pull("tiny-gpt2")
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "pulled (tiny" in lines["tiny-gpt2"]
    assert "not pulled" in lines["tiny-llama"] and "not pulled" in lines["smollm2-135m-instruct"]


@pytest.mark.slow
def test_sigkill_during_the_real_conversion_leaves_no_half_model(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenpo", "models", "pull", "smollm2-135m-instruct", "--cache-dir", str(tmp_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    models = tmp_path / "models"
    deadline = time.time() + 120
    while time.time() < deadline and not any(models.glob(".partial-*/.download/*/*.gguf")):
        time.sleep(0.2)
    assert process.poll() is None, "the pull finished before it could be killed"
    time.sleep(3)  # well inside the ~20 s dequantisation
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (models / "smollm2-135m-instruct").exists()
    assert ModelStore(tmp_path).entry("smollm2-135m-instruct").pulled is False
    # The stale partial is cleaned by the next pull of anything into the same cache.
    ModelStore(tmp_path).pull("tiny-llama")
    assert sorted(p.name for p in models.iterdir()) == ["tiny-llama"]


@pytest.mark.slow
def test_smollm2_answers_the_capital_of_france(smollm2_path):
    import torch

    manifest = json.loads((Path(smollm2_path) / "harness-model.json").read_text())
    assert manifest["source"] in {"hub", "gguf"}
    tokenizer = load_tokenizer(smollm2_path)
    model = load_causal_lm(smollm2_path)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
