"""An OpenAI-compatible vLLM server as lm-eval's backend: started from its own environment, checked, stopped.

lm-eval reads the server through its ``local-completions`` model: loglikelihood requests as
completions with ``echo`` and prompt log-probabilities (so MMLU and TruthfulQA mc work), generation
as plain completions, the prompts sent as the token ids of the model's own tokenizer. A server that
returns no prompt log-probabilities, or tokenizes differently, would give chance-level scores
silently; :func:`check_server` refuses it first.

:class:`VllmServer` starts ``python -m vllm.entrypoints.openai.api_server`` with the interpreter of
a vLLM environment (vLLM pins its own transformers, so it never shares this package's), in a
process group of its own that also receives SIGTERM if the harness dies; leaving the block (the
evaluation ended, failed or was interrupted) stops the whole group.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.evals.errors import EvalError

PROBE = "The quick brown fox jumps over the lazy dog. 1234 + 5678 = 6912; naïve café, 東京."
_PR_SET_PDEATHSIG = 1
NO_SERVER = "http://no-server.invalid/v1"  # for a pass that sends nothing: every answer is journaled
# A server we start takes this many stop strings per request (vLLM's default is OpenAI's 4, fewer than
# HumanEval's): every stop then ends generation on the server; a running server gets OpenAI's 4.
STARTED_STOP_STRINGS = 32
# How long one request may take. lm-eval's default, 300 s, is shorter than a long generation with many
# requests in flight on a CPU: IFEval's 1,280-token answers, 32 at a time on 2 cores, run at ~2 tokens/s
# each, time out and are generated again from the start, until the run fails.
REQUEST_TIMEOUT_SECONDS = 3600
# vLLM's CPU build keeps one core for its scheduler and computes on the others: on 2 cores, on one. On a
# machine this small the harness gives it every core (VLLM_CPU_NUM_OF_RESERVED_CPU=0): 40 GSM8K problems
# took 155 s instead of 266 s on 2 cores, the same 40 answers. Set the variable to keep vLLM's choice.
SMALL_MACHINE_CORES = 4


@dataclass(frozen=True)
class ServerBackend:
    """The ``vllm-server`` backend's settings: start a server from ``python`` or use the one at ``base_url``."""

    python: str | None = None  # the vLLM environment's interpreter (harness vllm install)
    base_url: str | None = None  # a running server's ``http://HOST:PORT/v1`` instead
    served_name: str | None = None  # the running server's model name (default: the model folder)
    dtype: str | None = None  # None: the model's own (config.json), as the hf backend loads it
    max_model_len: int = 2048
    concurrent: int = 8  # requests in flight (lm-eval's num_concurrent)
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    startup_seconds: float = 900.0

    def start(self, model: str, log: Path, port: int | None = None) -> VllmServer:
        """A server for the model folder ``model`` (enter it to start and wait until it answers)."""
        if self.python is None:
            raise EvalError("--backend", "vllm-server", "no vLLM environment to start a server from")
        return VllmServer(self, str(model), log, port)

    def identity(self, model: str) -> dict[str, Any]:
        """What can change an answer beyond the model files: how the server computes and batches. A running
        server (``base_url``) does not report its dtype, so none is recorded for it."""
        return {
            "base_url": self.base_url,
            "dtype": None if self.base_url else self.dtype or model_dtype(model),
            "max_model_len": self.max_model_len,
            "concurrent": self.concurrent,
            "extra_args": list(self.extra_args),
        }


def model_dtype(folder: str | os.PathLike[str]) -> str:
    """The dtype a model folder declares (``dtype``, or the older ``torch_dtype``, in config.json), which
    transformers' ``dtype="auto"`` (lm-eval's hf default) loads; float32 when it declares none, as
    transformers does. (vLLM's own ``auto`` would serve float32 weights in half precision.)"""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    declared = config.get("dtype") or config.get("torch_dtype")
    return str(declared).removeprefix("torch.") if declared else "float32"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when the harness dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _request(url: str, body: dict | None = None, timeout: float = 60.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class VllmServer:
    """``with backend.start(model, log) as server:`` a ready server at ``server.base_url`` (``…/v1``)."""

    def __init__(self, backend: ServerBackend, model: str, log: Path, port: int | None = None):
        self.backend, self.model, self.log = backend, model, Path(log)
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.name = model
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        b = self.backend
        return [
            b.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.name,
            "--dtype", b.identity(self.model)["dtype"], "--max-model-len", str(b.max_model_len),
            "--host", "127.0.0.1", "--port", str(self.port),
            *b.extra_args,
        ]  # fmt: skip

    def __enter__(self) -> VllmServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the server's environment is its own
        env["VLLM_MAX_STOP_STRINGS"] = str(STARTED_STOP_STRINGS)
        if len(os.sched_getaffinity(0)) <= SMALL_MACHINE_CORES:
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env.update(self.backend.env)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.backend.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                ended = f"exited with {self.process.returncode}: {self._last_line()}"
                raise EvalError(str(self.log), "vllm server", ended)
            with contextlib.suppress(OSError, ValueError):
                models = _request(f"{self.base_url}/models", timeout=5)
                if any(m.get("id") == self.name for m in models.get("data", [])):
                    return
            time.sleep(1.0)
        raise EvalError(str(self.log), "vllm server", f"not ready after {self.backend.startup_seconds:.0f} s")

    def _last_line(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(no output)"

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL after ``grace_seconds``."""
        if self.process is None or (self.process.poll() is not None and not _group_alive(self.process.pid)):
            return
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and (self.process.poll() is None or _group_alive(self.process.pid)):
                time.sleep(0.2)
            if self.process.poll() is not None and not _group_alive(self.process.pid):
                return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_server(base_url: str, name: str, tokenizer: Any) -> None:
    """Refuse (EvalError, one line) a server that tokenizes differently or returns no prompt log-probs."""
    local = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    root = base_url.removesuffix("/v1")
    try:
        body = {"model": name, "prompt": PROBE, "add_special_tokens": False}
        remote = _request(f"{root}/tokenize", body)["tokens"]
    except urllib.error.HTTPError as error:
        raise EvalError(base_url, "tokenize", f"the server has no /tokenize endpoint ({error.code})") from None
    if remote != local:
        raise EvalError(base_url, "tokenizer", "the server tokenizes differently from the model's tokenizer")
    answer = _request(
        f"{base_url}/completions",
        {"model": name, "prompt": local, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0},
    )
    logprobs = (answer.get("choices") or [{}])[0].get("logprobs") or {}
    values = logprobs.get("token_logprobs") or []
    if len(values) < len(local) or any(v is None for v in values[1 : len(local)]):
        problem = "the server returns no prompt log-probabilities (echo): loglikelihood tasks would score at chance"
        raise EvalError(base_url, "logprobs", problem)


def completions_lm(
    base_url: str, name: str, tokenizer_path: str, max_length: int, concurrent: int, max_stop_strings: int
):
    """lm-eval's ``local-completions`` model on the server, prompts sent as our tokenizer's ids, at most
    ``max_stop_strings`` stop strings per request (the others applied to the answers here)."""
    from tokenpo.evals.served_lm import StopCappedCompletions

    return StopCappedCompletions(
        base_url=f"{base_url}/completions",
        model=name,
        tokenizer=tokenizer_path,
        tokenizer_backend="huggingface",
        tokenized_requests=True,
        num_concurrent=concurrent,
        max_length=max_length,
        max_retries=3,
        timeout=REQUEST_TIMEOUT_SECONDS,
        max_stop_strings=max_stop_strings,
    )
