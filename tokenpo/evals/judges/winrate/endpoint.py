"""The judge's chat endpoint: any OpenAI-compatible ``/chat/completions`` server (vLLM, OpenAI, the built-in
:mod:`~tokenpo.evals.judges.winrate.server`), checked once before judging, then asked once per comparison.

Two kinds of failure, kept apart on purpose:

* a setup that cannot work (no server at the URL, the key's variable unset, the key rejected, the model not
  served) raises :class:`~tokenpo.evals.errors.EvalError` as one line, from :meth:`ChatEndpoint.check` before
  any judging, or from :meth:`ChatEndpoint.complete` should it appear later; judging on would only record
  the same failure for every pair;
* a failure of one request (a timeout or a server error that outlasts the retries, a body that is not an
  OpenAI chat completion) is returned as :class:`ChatReply` with ``text`` None and the reason in ``error``:
  the caller records that comparison as unjudged. A verdict is never guessed from a failed request, and
  one bad request never ends a run of thousands.

The API key is read from the environment variable named by ``api_key_env`` at each request: it is never
held by the endpoint, so it cannot reach :meth:`ChatEndpoint.settings`, a repr or a journal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from tokenpo.evals.errors import EvalError

WHERE = "judge"  # the EvalError's WHERE: the judge's settings; its field names the setting at fault
SHOWN_MODELS = 20  # the served models named in a refusal (OpenAI serves ~100; the line stays readable)
SHOWN_MESSAGE = 200  # characters of a server's error message kept in a ChatReply's error


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: its ``text``, or None and the ``error`` that left it unjudged; ``seconds`` is
    the wall time of all attempts."""

    text: str | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class ChatEndpoint:
    """A model behind an OpenAI-compatible chat API at ``base_url`` (``http://HOST:PORT/v1``).

    ``api_key_env`` names the environment variable holding the key (None: the server wants none, as a
    local vLLM). ``timeout`` bounds each attempt's connecting and each wait for data, in seconds; a
    timed-out, dropped or 429/5xx request is sent again up to ``retries`` times, ``retry_wait`` seconds
    after the first failure and twice as long after each further one (a busy server gets room to recover).
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    retries: int = 2
    retry_wait: float = 1.0

    def __post_init__(self) -> None:
        # Refused at construction, so a typo in the settings stops the run before any model is loaded.
        if not self.base_url.startswith(("http://", "https://")):
            raise EvalError(WHERE, "base_url", f"{self.base_url!r} is not an http(s) URL such as http://HOST:PORT/v1")
        if not self.model:
            raise EvalError(WHERE, "model", "no model name given")
        if not 0.0 <= self.temperature <= 2.0:
            raise EvalError(WHERE, "temperature", f"{self.temperature} is not between 0 and 2")
        if self.max_tokens < 1:
            raise EvalError(WHERE, "max_tokens", f"{self.max_tokens} is not a positive number of tokens")
        if self.timeout <= 0:
            raise EvalError(WHERE, "timeout", f"{self.timeout} is not a positive number of seconds")
        if self.retries < 0 or self.retry_wait < 0:
            raise EvalError(WHERE, "retries", "retries and retry_wait cannot be negative")

    @property
    def _root(self) -> str:
        return self.base_url.rstrip("/")

    def settings(self) -> dict[str, Any]:
        """What changes a verdict, as recorded with the judgments: never the key, nor its variable's name
        (a different key gives the same verdicts)."""
        return {
            "base_url": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def check(self) -> None:
        """One ``GET /models``: refuse (EvalError, one line) a URL where no server answers, an unset or
        rejected key, or a server that does not serve :attr:`model`."""
        served = self._served_models(self._headers())
        if self.model not in served:
            raise self._not_served(served)

    def complete(self, messages: Sequence[Mapping[str, str]]) -> ChatReply:
        """The judge's answer to ``messages`` (``[{"role": …, "content": …}, …]``), or the reason there is
        none. Raises only for a setup that cannot work (see the module's docstring)."""
        headers = self._headers()
        body = {
            "model": self.model,
            "messages": [dict(message) for message in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        start = time.monotonic()
        error = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_wait * 2 ** (attempt - 1))
            try:
                response = requests.post(
                    f"{self._root}/chat/completions", json=body, headers=headers, timeout=self.timeout
                )
            except requests.Timeout:
                error = f"timeout after {self.timeout:g}s"
                continue
            except requests.RequestException as failure:
                # The server was there at check(): a dropped connection is more likely a restart or an
                # overload than a wrong URL, so it is retried and, if it lasts, recorded like a timeout.
                error = f"connection failed ({_reason(failure)})"
                continue
            status = response.status_code
            if status in (401, 403):
                raise self._key_refused(status)
            if status == 404:
                raise self._missing_chat(headers)
            if status == 429 or status >= 500:
                error = f"HTTP {status}"
                continue
            if status != 200:
                # Another 4xx is about this request (say, a prompt longer than the model's context): sending
                # it again would get the same answer, and the other comparisons may still be judged.
                return ChatReply(None, f"HTTP {status}: {_server_message(response)}", time.monotonic() - start)
            text = _content(response)
            if text is None:
                return ChatReply(None, "malformed response", time.monotonic() - start)
            return ChatReply(text, None, time.monotonic() - start)
        return ChatReply(None, error, time.monotonic() - start)

    def _headers(self) -> dict[str, str]:
        if self.api_key_env is None:
            return {}
        key = os.environ.get(self.api_key_env)
        if key is None:
            raise EvalError(WHERE, "api_key_env", f"environment variable {self.api_key_env} is not set")
        if not key.strip():
            raise EvalError(WHERE, "api_key_env", f"environment variable {self.api_key_env} is empty")
        return {"Authorization": f"Bearer {key.strip()}"}

    def _served_models(self, headers: dict[str, str]) -> list[str]:
        """The ids ``GET /models`` lists; EvalError when no OpenAI-compatible server answers or the key is
        refused."""
        try:
            response = requests.get(f"{self._root}/models", headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise EvalError(WHERE, "base_url", f"no answer from {self.base_url} within {self.timeout:g}s") from None
        except requests.RequestException as failure:
            problem = f"no OpenAI-compatible server answers at {self.base_url} ({_reason(failure)})"
            raise EvalError(WHERE, "base_url", problem) from None
        if response.status_code in (401, 403):
            raise self._key_refused(response.status_code)
        not_openai = f"no OpenAI-compatible server answers at {self.base_url}"
        if response.status_code != 200:
            raise EvalError(WHERE, "base_url", f"{not_openai} (GET /models: HTTP {response.status_code})")
        try:
            listed = response.json()["data"]
            served = [entry["id"] for entry in listed]
        except (ValueError, KeyError, TypeError):
            raise EvalError(WHERE, "base_url", f"{not_openai} (GET /models: not a list of models)") from None
        if not all(isinstance(name, str) for name in served):
            raise EvalError(WHERE, "base_url", f"{not_openai} (GET /models: not a list of models)")
        return served

    def _not_served(self, served: list[str]) -> EvalError:
        shown = ", ".join(served[:SHOWN_MODELS]) or "nothing"
        if len(served) > SHOWN_MODELS:
            shown += f" and {len(served) - SHOWN_MODELS} more"
        return EvalError(WHERE, "model", f"model {self.model} not served at {self.base_url}; it serves: {shown}")

    def _missing_chat(self, headers: dict[str, str]) -> EvalError:
        """A 404 on ``/chat/completions``: the model is gone (vLLM's answer), or the server has no chat API
        (a completions-only server, a wrong path in ``base_url``); the model list tells which."""
        served = self._served_models(headers)
        if self.model not in served:
            return self._not_served(served)
        problem = f"{self.base_url} serves {self.model} but has no /chat/completions (HTTP 404)"
        return EvalError(WHERE, "base_url", problem)

    def _key_refused(self, status: int) -> EvalError:
        if self.api_key_env is None:
            problem = f"{self.base_url} wants an API key (HTTP {status}); name its environment variable"
        else:
            problem = f"{self.base_url} rejected the key in {self.api_key_env} (HTTP {status})"
        return EvalError(WHERE, "api_key_env", problem)


def _content(response: requests.Response) -> str | None:
    """``choices[0].message.content`` of an OpenAI chat completion, or None when the body is not one (a
    proxy's HTML page, a truncated body, a refusal without content)."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _server_message(response: requests.Response) -> str:
    """The server's own words for a refused request, on one line and short (OpenAI and vLLM put them in
    ``error.message``; anything else is shown as sent)."""
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text
    message = " ".join(message.split())
    return message[:SHOWN_MESSAGE] + ("…" if len(message) > SHOWN_MESSAGE else "")


def _reason(failure: requests.RequestException) -> str:
    """A few words for a failed connection: requests' own message nests urllib3's over several lines."""
    text = str(failure).lower()
    if "refused" in text:
        return "connection refused"
    if any(marker in text for marker in ("name or service", "nodename", "name resolution", "getaddrinfo")):
        return "host not found"
    if "reset" in text or "aborted" in text:
        return "connection reset"
    return type(failure).__name__
