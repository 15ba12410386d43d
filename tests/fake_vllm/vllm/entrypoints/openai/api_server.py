"""A stand-in for vLLM's OpenAI server, for the lifecycle and refusal tests: the same command line,
the endpoints the harness reads, answers from the model's own tokenizer. ``FAKE_VLLM_MODE``:
``good``, ``no-logprobs`` (echo without prompt log-probabilities), ``other-tokenizer``.
``FAKE_VLLM_PIDFILE``: where it writes its pid (and beside it ``.argv``, its command line, and ``.env``,
its ``VLLM_*`` variables);
``FAKE_VLLM_DELAY``: seconds each completion takes. A token's log-probability depends on the token
only, so answers are deterministic and differ between prompts. A generation is ``FAKE_VLLM_TEXT``
(default ``x``) cut at the request's stop strings, of which it takes ``VLLM_MAX_STOP_STRINGS`` (default
4) at most, answering 400 to more, as vLLM does."""

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from transformers import AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--served-model-name")
parser.add_argument("--port", type=int)
parser.add_argument("--host")
args, _ = parser.parse_known_args()
MODE = os.environ.get("FAKE_VLLM_MODE", "good")
tokenizer = AutoTokenizer.from_pretrained(args.model)
if os.environ.get("FAKE_VLLM_PIDFILE"):
    with open(os.environ["FAKE_VLLM_PIDFILE"], "w") as out:
        out.write(str(os.getpid()))
    with open(os.environ["FAKE_VLLM_PIDFILE"] + ".argv", "w") as out:
        out.write(json.dumps(sys.argv[1:]))
    with open(os.environ["FAKE_VLLM_PIDFILE"] + ".env", "w") as out:
        out.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith("VLLM_")}))
DELAY = float(os.environ.get("FAKE_VLLM_DELAY", "0"))
TEXT = os.environ.get("FAKE_VLLM_TEXT", "x")
MAX_STOP_STRINGS = int(os.environ.get("VLLM_MAX_STOP_STRINGS", "4"))


def _generated(stop):
    text = TEXT
    for term in [stop] if isinstance(stop, str) else stop or []:
        text = text.split(term)[0]
    return text


def _choice(index, prompt):
    values = [None] + [-((token % 7) + 1) / 7 for token in prompt[1:]] + [-0.5]
    if MODE == "no-logprobs":
        values = [None] * (len(prompt) + 1)
    top = [None] + [{"t": value} for value in values[1:]]
    return {"index": index, "text": "x", "logprobs": {"token_logprobs": values, "top_logprobs": top}}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer({"data": [{"id": args.served_model_name}]})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            ids = tokenizer(request["prompt"], add_special_tokens=False)["input_ids"]
            self._answer({"tokens": [i + 1 for i in ids] if MODE == "other-tokenizer" else ids})
            return
        stop = request.get("stop")
        if isinstance(stop, list) and len(stop) > MAX_STOP_STRINGS:
            self._answer({"error": {"message": f"stop: at most {MAX_STOP_STRINGS} items", "code": 400}}, status=400)
            return
        time.sleep(DELAY)
        prompts = request["prompt"] if isinstance(request["prompt"][0], list) else [request["prompt"]]
        choices = [_choice(index, prompt) for index, prompt in enumerate(prompts)]
        if not request.get("echo"):
            choices = [{"index": c["index"], "text": _generated(stop)} for c in choices]
        self._answer({"choices": choices})


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
