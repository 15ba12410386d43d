"""lm-eval's ``local-completions`` model for a server that takes only a few stop strings per request.

OpenAI's completions API, and vLLM's server unless ``VLLM_MAX_STOP_STRINGS`` says otherwise, accept
at most 4 stop strings; lm-eval sends a task's whole ``until`` list (HumanEval's has 5, plus the
end-of-text token), and the server answers 400 to every request. :class:`StopCappedCompletions` sends
the first ``max_stop_strings`` to the server and cuts each generation at the first occurrence of any
of the task's stop strings itself, as lm-eval's hf backend does after ``generate``. Under greedy
decoding the text before a stop does not depend on where generation stopped, so the answer is the one
a server honouring every stop string would give; only the server's work past a dropped stop is wasted.
The cut is applied to what the cache hook receives too, so a journal holds the answers lm-eval sees.
"""

from __future__ import annotations

from typing import Any

from lm_eval.models.openai_completions import LocalCompletionsAPI
from lm_eval.models.utils import postprocess_generated_text

OPENAI_STOP_STRINGS = 4  # the completions API's limit, and vLLM's default VLLM_MAX_STOP_STRINGS


def cut_at_stops(text: str, until: Any) -> str:
    """``text`` up to the first occurrence of any stop string of ``until`` (a string, a list or None)."""
    return postprocess_generated_text(text, until, None)


class StopCappedCompletions(LocalCompletionsAPI):
    """``local-completions`` that sends at most ``max_stop_strings`` stop strings and applies the rest here."""

    def __init__(self, *args: Any, max_stop_strings: int = OPENAI_STOP_STRINGS, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_stop_strings = max_stop_strings

    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs) -> dict:
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos,
                                          **kwargs)  # fmt: skip
        if generate and isinstance(payload.get("stop"), list):
            payload["stop"] = payload["stop"][: self.max_stop_strings]
        return payload

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        hook = self.cache_hook
        self.set_cache_hook(_CuttingHook(hook))
        try:
            answers = super().generate_until(requests, disable_tqdm=disable_tqdm)
        finally:
            self.set_cache_hook(hook)
        stops = [request.args[1].get("until") for request in requests]
        return [cut_at_stops(answer, until) for answer, until in zip(answers, stops, strict=True)]


class _CuttingHook:
    """A cache hook that passes generations on cut at their request's stop strings."""

    def __init__(self, inner: Any):
        self.inner = inner

    def add_partial(self, method: str, args: Any, response: Any) -> None:
        if method == "generate_until" and isinstance(response, str):
            response = cut_at_stops(response, args[1].get("until"))
        self.inner.add_partial(method, args, response)
