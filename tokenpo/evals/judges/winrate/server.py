"""A small OpenAI-compatible chat server on the hf backend, so a local model folder can be the win-rate judge
without vLLM: :func:`serve_chat_model` loads it, serves it in a background thread, and yields the base URL
a :class:`~tokenpo.evals.judges.winrate.endpoint.ChatEndpoint` talks to, exactly as to any other server.

It serves what the judge sends and no more: ``GET /v1/models`` and non-streaming ``POST
/v1/chat/completions`` (``messages``, ``temperature``, ``top_p``, ``max_tokens`` or
``max_completion_tokens``, ``seed``). Requests are taken concurrently but generated one at a time: there is
one model, and one generation already uses every core. Greedy at temperature 0; otherwise sampled from a
generator seeded per request (``seed``, default 0), so the same request gets the same answer whatever
came before it. Refusals are OpenAI-shaped JSON errors with their HTTP status: 400 for a malformed body,
404 for another model or path, 500 if generation itself fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from tokenpo.core.hardware import default_device
from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.answers import chat_prompt_ids, end_token_ids

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024  # a judge prompt is two answers and a question, far below this


class RequestError(Exception):
    """A request the server refuses: sent back as an OpenAI error body with ``status``."""

    def __init__(self, status: HTTPStatus, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str  # "stop": the model ended its answer; "length": cut at max_tokens or the context
    prompt_tokens: int
    completion_tokens: int


class ChatModel:
    """A causal LM and its tokenizer, generating one chat answer at a time (the lock)."""

    def __init__(self, model_path: str, name: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.device = torch.device(default_device())
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not getattr(self.tokenizer, "chat_template", None):
            raise EvalError(model_path, "chat_template", "the tokenizer has no chat template to build prompts with")
        # float32 on the CPU (half precision there is slow and loses accuracy); on a GPU the model's own dtype.
        dtype: Any = "auto" if self.device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        generation = self.model.generation_config
        self.eos_ids: list[int] = end_token_ids(self.model, self.tokenizer)
        pad = generation.pad_token_id if generation.pad_token_id is not None else self.tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else self.eos_ids[0]
        self.context: int = getattr(self.model.config, "max_position_embeddings", None) or int(
            self.tokenizer.model_max_length
        )
        self.lock = threading.Lock()
        self.closed = False  # set under the lock when the server stops: no generation starts after it

    def generate(
        self, messages: list[dict[str, str]], temperature: float, top_p: float, max_tokens: int | None, seed: int
    ) -> Generated:
        from transformers import GenerationConfig

        input_ids = torch.tensor([chat_prompt_ids(self.tokenizer, messages)], device=self.device)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        prompt_tokens = int(input_ids.shape[1])
        room = self.context - prompt_tokens
        if room < 1:
            message = f"the prompt has {prompt_tokens} tokens; the model's context is {self.context} tokens"
            raise RequestError(HTTPStatus.BAD_REQUEST, message)
        # As vLLM without max_tokens: up to the end of the context; with it, never past the context either.
        new_tokens = room if max_tokens is None else min(max_tokens, room)
        sampled = temperature > 0
        # A config of its own, so sampling settings in the model's generation_config.json (many instruct
        # models ship temperature/top_k/top_p there) cannot change what the request asked for. top_k=0 when
        # sampling: OpenAI's API has no top-k (greedy leaves it unset, as transformers warns about it there).
        config = GenerationConfig(
            max_new_tokens=new_tokens,
            do_sample=sampled,
            temperature=temperature if sampled else 1.0,
            top_p=top_p if sampled else 1.0,
            top_k=0 if sampled else None,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
        )
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with self.lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            if self.closed:
                raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is stopping", "server_error")
            # Seeded inside the lock and a forked generator: the answer depends on the request alone, and
            # the caller's random state (a test's, a training run's) is left as it was.
            torch.manual_seed(seed)
            output = self.model.generate(**inputs, generation_config=config)
        tokens: list[int] = output[0, prompt_tokens:].tolist()
        ended = next((i for i, token in enumerate(tokens) if token in self.eos_ids), None)
        content = tokens if ended is None else tokens[:ended]
        return Generated(
            text=self.tokenizer.decode(content, skip_special_tokens=True),
            finish_reason="length" if ended is None else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(tokens) if ended is None else ended + 1,  # the end token was generated too
        )


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that hangs never keeps the process alive

    def __init__(self, address: tuple[str, int], chat: ChatModel):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 host such as ::1
        super().__init__(address, ChatHandler)
        self.chat = chat


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            owned = {"id": self.server.chat.name, "object": "model", "created": 0, "owned_by": "tokenpo"}
            self._send(HTTPStatus.OK, {"object": "list", "data": [owned]})
        else:
            self._refuse(RequestError(HTTPStatus.NOT_FOUND, f"no route GET {self.path}", "not_found_error"))

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._refuse(RequestError(HTTPStatus.NOT_FOUND, f"no route POST {self.path}", "not_found_error"))
            return
        try:
            self._send(HTTPStatus.OK, self._complete(self._body()))
        except RequestError as refusal:
            self._refuse(refusal)
        except Exception as failure:  # the model failed, not the request: 500, and the server serves on
            log.exception("chat completion failed")
            message = f"generation failed: {type(failure).__name__}: {failure}"
            self._refuse(RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, message, "server_error"))

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body exceeds {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")
        return body

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = self.server.chat
        model = body.get("model")
        if not isinstance(model, str):
            raise RequestError(HTTPStatus.BAD_REQUEST, "model: a model name is required")
        if model != chat.name:
            raise RequestError(HTTPStatus.NOT_FOUND, f"the model {model} does not exist; served: {chat.name}")
        if body.get("stream"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "stream: streaming is not supported")
        if body.get("n", 1) != 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "n: one choice per request only")
        generated = chat.generate(
            _messages(body.get("messages")),
            temperature=_number(body, "temperature", 1.0, 0.0, 2.0),  # OpenAI's default: 1
            top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
            max_tokens=_max_tokens(body),
            seed=_integer(body, "seed", 0),
        )
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": generated.text},
            "finish_reason": generated.finish_reason,
        }
        usage = {
            "prompt_tokens": generated.prompt_tokens,
            "completion_tokens": generated.completion_tokens,
            "total_tokens": generated.prompt_tokens + generated.completion_tokens,
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.name,
            "choices": [choice],
            "usage": usage,
        }

    def _refuse(self, refusal: RequestError) -> None:
        error = {"message": refusal.message, "type": refusal.kind, "param": None, "code": int(refusal.status)}
        self._send(refusal.status, {"error": error})

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (its timeout); it will retry or record the request unjudged

    def log_message(self, format: str, *args: Any) -> None:
        # http.server writes every request to stderr; a judging run sends thousands.
        log.debug("%s: %s", self.address_string(), format % args)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RequestError(HTTPStatus.BAD_REQUEST, "messages: a non-empty list of messages is required")
    for i, message in enumerate(value):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"messages[{i}]: needs a string role and a string content")
    return [{"role": message["role"], "content": message["content"]} for message in value]


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: {value!r} is not a number from {low:g} to {high:g}")
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: {value!r} is not an integer")
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens is OpenAI's newer name for the same cap; a client sends one or the other.
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: {value!r} is not a positive integer")
    return value


@contextlib.contextmanager
def serve_chat_model(
    model_path: str, host: str = "127.0.0.1", port: int = 0, served_name: str | None = None
) -> Iterator[str]:
    """Serve the model folder ``model_path`` as ``served_name`` (default: the folder's name) on ``host``
    and ``port`` (0: a free one) while the block runs; yields the base URL, ``http://HOST:PORT/v1``.

    Leaving the block stops the server: it waits for the answer being generated, and refuses (503) the
    requests still waiting for the model, so no generation runs after the block."""
    folder = Path(model_path)
    if not folder.is_dir():
        raise EvalError(model_path, "", "no model folder here (the built-in judge server loads a local folder)")
    chat = ChatModel(str(folder), served_name or folder.resolve().name)
    server = ChatServer((host, port), chat)
    thread = threading.Thread(target=server.serve_forever, name=f"judge-server-{chat.name}", daemon=True)
    thread.start()
    try:
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{server.server_address[1]}/v1"
    finally:
        server.shutdown()  # no new connection is accepted
        server.server_close()
        thread.join()
        with chat.lock:  # the generation under way ends first; those queued behind it are refused
            chat.closed = True
