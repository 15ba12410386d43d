"""A stand-in for vLLM's OpenAI server, for the lifecycle and refusal tests: the same command line,
the endpoints the harness reads, answers from the model's own tokenizer. ``FAKE_VLLM_MODE``:
``good``, ``no-logprobs`` (echo without prompt log-probabilities), ``other-tokenizer``.
``FAKE_VLLM_PIDFILE``: where it writes its pid (and ``.argv`` beside it: its command line);
``FAKE_VLLM_DELAY``: seconds each completion takes. A token's log-probability depends on the token
only, so answers are deterministic and differ between prompts."""

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
DELAY = float(os.environ.get("FAKE_VLLM_DELAY", "0"))


def _choice(index, prompt):
    values = [None] + [-((token % 7) + 1) / 7 for token in prompt[1:]] + [-0.5]
    if MODE == "no-logprobs":
        values = [None] * (len(prompt) + 1)
    top = [None] + [{"t": value} for value in values[1:]]
    return {"index": index, "text": "x", "logprobs": {"token_logprobs": values, "top_logprobs": top}}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
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
        time.sleep(DELAY)
        prompts = request["prompt"] if isinstance(request["prompt"][0], list) else [request["prompt"]]
        self._answer({"choices": [_choice(index, prompt) for index, prompt in enumerate(prompts)]})


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
