"""A stand-in for vLLM's OpenAI server, for the lifecycle and refusal tests: the same command line,
the endpoints the harness reads, answers from the model's own tokenizer. ``FAKE_VLLM_MODE``:
``good``, ``no-logprobs`` (echo without prompt log-probabilities), ``other-tokenizer``.
``FAKE_VLLM_PIDFILE``: where it writes its pid."""

import argparse
import json
import os
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
        prompt = request["prompt"]
        values = [None] + [-1.0] * (len(prompt) - 1) + [-0.5]
        if MODE == "no-logprobs":
            values = [None] * (len(prompt) + 1)
        logprobs = {"token_logprobs": values, "tokens": ["t"] * len(values)}
        self._answer({"choices": [{"text": "x", "logprobs": logprobs}]})


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
