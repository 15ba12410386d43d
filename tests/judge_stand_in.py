"""A stand-in OpenAI-compatible chat server for the win-rate judge's tests: fast, no model, every request kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(text: str | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


@dataclass
class Answer:
    """What the stand-in sends for one chat request: ``body`` as JSON (a dict) or raw bytes, after ``delay``."""

    status: int = 200
    body: dict[str, Any] | bytes = field(default_factory=lambda: completion("A"))
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: Any


class StandIn:
    """An OpenAI-compatible server in a thread: ``/v1/models`` lists ``models``; the n-th chat request gets
    ``answers[n]`` (the last one again once they run out), or ``respond(body)`` when given (a judge that
    reads the question). Every request is kept in ``seen``."""

    def __init__(
        self,
        models: list[str],
        answers: list[Answer],
        models_status: int = 200,
        respond: Callable[[dict[str, Any]], Answer] | None = None,
    ):
        self.models, self.answers, self.models_status, self.respond = models, answers, models_status, respond
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def chat_requests(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.endswith("/chat/completions")]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._note(None)
                body = {"object": "list", "data": [{"id": name, "object": "model"} for name in stand_in.models]}
                self._send(stand_in.models_status, body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    number = len(stand_in.chat_requests())
                    self._note(body)
                answer = (
                    stand_in.respond(body)
                    if stand_in.respond is not None
                    else stand_in.answers[min(number, len(stand_in.answers) - 1)]
                )
                time.sleep(answer.delay)
                self._send(answer.status, answer.body)

            def _note(self, body: Any) -> None:
                stand_in.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"), body))

            def _send(self, status: int, body: dict[str, Any] | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def stand_in_server(
    answers: list[Answer] | None = None,
    models: list[str] | None = None,
    models_status: int = 200,
    respond: Callable[[dict[str, Any]], Answer] | None = None,
) -> Iterator[tuple[str, StandIn]]:
    stand_in = StandIn(["judge"] if models is None else models, answers or [Answer()], models_status, respond)
    server = ThreadingHTTPServer(("127.0.0.1", 0), stand_in.handler())
    server.daemon_threads = True  # a handler still sleeping past the client's timeout is not waited for
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
