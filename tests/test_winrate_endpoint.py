"""The win-rate judge's chat endpoint against stand-in OpenAI-compatible servers (fast, no model), and the
built-in chat server on a tiny randomly initialised Llama."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests
from judge_stand_in import Answer, completion, stand_in_server

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.endpoint import ChatEndpoint, ChatReply
from tokenpo.evals.judges.winrate.server import serve_chat_model

MESSAGES = [{"role": "system", "content": "You judge."}, {"role": "user", "content": "A or B?"}]
KEY_ENV = "TOKENPO_TEST_JUDGE_KEY"


def endpoint(base_url: str, **settings: Any) -> ChatEndpoint:
    return ChatEndpoint(**{"base_url": base_url, "model": "judge", "retry_wait": 0.0, **settings})


def one_line_refusal(call: Any) -> str:
    with pytest.raises(EvalError) as refused:
        call()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_judge_that_answers_properly():
    with stand_in_server() as (url, stand_in):
        judge = endpoint(url, temperature=0.0, max_tokens=16)
        judge.check()
        reply = judge.complete(MESSAGES)
    assert isinstance(reply, ChatReply)
    assert (reply.text, reply.error) == ("A", None)
    assert reply.seconds >= 0
    [sent] = stand_in.chat_requests()
    assert sent.body == {"model": "judge", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 16}
    assert sent.authorization is None  # no api_key_env: no header at all
    assert judge.settings() == {"base_url": url, "model": "judge", "temperature": 0.0, "max_tokens": 16}


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad gateway</html>", {"object": "chat.completion"}, {"choices": []}, completion(None)],
    ids=["not-json", "no-choices", "empty-choices", "null-content"],
)
def test_a_garbage_answer_is_a_malformed_response_not_retried(body):
    with stand_in_server([Answer(body=body)]) as (url, stand_in):
        reply = endpoint(url).complete(MESSAGES)
    assert (reply.text, reply.error) == (None, "malformed response")
    assert len(stand_in.chat_requests()) == 1


def test_a_judge_that_sleeps_past_the_timeout_is_recorded_after_the_retries():
    with stand_in_server([Answer(delay=1.5)]) as (url, stand_in):
        reply = endpoint(url, timeout=0.3, retries=1).complete(MESSAGES)
        # The handler threads are still sleeping; they were asked twice, then given up on.
        assert len(stand_in.chat_requests()) == 2
    assert (reply.text, reply.error) == (None, "timeout after 0.3s")
    assert 0.6 <= reply.seconds < 1.5


def test_a_server_error_is_retried_and_the_answer_after_it_kept():
    with stand_in_server([Answer(500, {"error": {"message": "busy"}}), Answer()]) as (url, stand_in):
        reply = endpoint(url, retries=2).complete(MESSAGES)
    assert (reply.text, reply.error) == ("A", None)
    assert len(stand_in.chat_requests()) == 2


def test_a_lasting_server_error_is_recorded_after_the_retries():
    with stand_in_server([Answer(503, b"down")]) as (url, stand_in):
        reply = endpoint(url, retries=2).complete(MESSAGES)
    assert (reply.text, reply.error) == (None, "HTTP 503")
    assert len(stand_in.chat_requests()) == 3


def test_a_refused_request_is_recorded_with_the_servers_words_and_not_retried():
    refusal = {"error": {"message": "This model's maximum context length is 2048 tokens.\nShorten it."}}
    with stand_in_server([Answer(400, refusal)]) as (url, stand_in):
        reply = endpoint(url).complete(MESSAGES)
    assert reply.text is None
    assert reply.error == "HTTP 400: This model's maximum context length is 2048 tokens. Shorten it."
    assert len(stand_in.chat_requests()) == 1


def test_a_model_the_server_does_not_serve_is_refused_naming_what_it_serves():
    with stand_in_server(models=["qwen-7b", "llama-8b"]) as (url, _):
        message = one_line_refusal(endpoint(url).check)
    assert message == f"judge: model: model judge not served at {url}; it serves: qwen-7b, llama-8b"


def test_a_404_on_completion_is_refused_as_the_model_not_served():
    with stand_in_server([Answer(404, {"error": {"message": "no such model"}})], models=["other"]) as (url, _):
        message = one_line_refusal(lambda: endpoint(url).complete(MESSAGES))
    assert f"model judge not served at {url}; it serves: other" in message


def test_no_server_at_the_url_is_refused_in_one_line():
    with socket.socket() as probe:  # a port nothing listens on: bound, then let go
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    message = one_line_refusal(endpoint(url).check)
    assert message == f"judge: base_url: no OpenAI-compatible server answers at {url} (connection refused)"


def test_a_server_that_is_not_openai_compatible_is_refused():
    with stand_in_server(models_status=404) as (url, _):
        message = one_line_refusal(endpoint(url).check)
    assert f"no OpenAI-compatible server answers at {url}" in message


def test_an_unset_key_variable_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with stand_in_server() as (url, stand_in):
        judge = endpoint(url, api_key_env=KEY_ENV)
        assert one_line_refusal(judge.check) == f"judge: api_key_env: environment variable {KEY_ENV} is not set"
        one_line_refusal(lambda: judge.complete(MESSAGES))
    assert stand_in.seen == []


def test_the_key_is_sent_as_a_bearer_token_and_never_recorded(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-secret-123")
    with stand_in_server() as (url, stand_in):
        judge = endpoint(url, api_key_env=KEY_ENV)
        judge.check()
        assert judge.complete(MESSAGES).text == "A"
    assert [seen.authorization for seen in stand_in.seen] == ["Bearer sk-secret-123"] * 2
    assert "sk-secret" not in json.dumps(judge.settings()) + repr(judge)


def test_a_rejected_key_is_refused(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    with stand_in_server(models_status=401) as (url, _):
        message = one_line_refusal(endpoint(url, api_key_env=KEY_ENV).check)
    assert message == f"judge: api_key_env: {url} rejected the key in {KEY_ENV} (HTTP 401)"


@pytest.mark.parametrize(
    "settings",
    [{"base_url": "localhost:8000/v1"}, {"temperature": -1.0}, {"max_tokens": 0}, {"timeout": 0}],
)
def test_impossible_settings_are_refused_at_construction(settings):
    one_line_refusal(lambda: endpoint(**{"base_url": "http://127.0.0.1:1/v1", **settings}))


# The built-in server, on a tiny random Llama (its tokenizer has a ChatML template).


def test_the_built_in_server_serves_a_tiny_model_as_a_judge(tiny_model_dirs):
    with serve_chat_model(tiny_model_dirs["llama"], served_name="tiny-judge") as url:
        judge = ChatEndpoint(url, "tiny-judge", temperature=0.0, max_tokens=8, timeout=30.0)
        judge.check()
        first, second = judge.complete(MESSAGES), judge.complete(MESSAGES)
        assert first.error is None and first.text is not None
        assert first.text == second.text  # greedy at temperature 0

        raw = requests.post(f"{url}/chat/completions", json={**judge.settings(), "messages": MESSAGES}, timeout=30)
        answer = raw.json()
        assert raw.status_code == 200 and answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"] == {"role": "assistant", "content": first.text}
        assert answer["choices"][0]["finish_reason"] in ("stop", "length")
        usage = answer["usage"]
        assert 1 <= usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        # Sampling is seeded per request: the same request twice, the same answer.
        sampled = {"model": "tiny-judge", "messages": MESSAGES, "temperature": 1.0, "max_tokens": 8, "seed": 3}
        texts = [requests.post(f"{url}/chat/completions", json=sampled, timeout=30).json() for _ in range(2)]
        assert texts[0]["choices"] == texts[1]["choices"]

        message = one_line_refusal(ChatEndpoint(url, "other-model").check)
        assert message == f"judge: model: model other-model not served at {url}; it serves: tiny-judge"
        missing = requests.post(f"{url}/chat/completions", json={**sampled, "model": "other-model"}, timeout=30)
        assert missing.status_code == 404 and "other-model" in missing.json()["error"]["message"]
        for bad in (b"{not json", b"[1, 2]", json.dumps({"model": "tiny-judge", "messages": []}).encode()):
            refused = requests.post(f"{url}/chat/completions", data=bad, timeout=30)
            assert refused.status_code == 400 and refused.json()["error"]["message"]
    with pytest.raises(requests.ConnectionError):  # stopped on leaving the block
        requests.get(f"{url}/models", timeout=5)


def test_the_built_in_server_names_the_model_after_its_folder(tiny_model_dirs):
    with serve_chat_model(tiny_model_dirs["gpt2"]) as url:
        ChatEndpoint(url, "gpt2", max_tokens=4).check()
