"""The model an evaluation answers with, and the life of the vLLM server behind it (``vllm-server``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.evals.backends import build_lm
from tokenpo.evals.errors import EvalError
from tokenpo.evals.evaluation import Evaluation


@dataclass(frozen=True)
class AnsweringModel:
    """lm-eval's model, and for a vLLM server what it computes with (``{"dtype", "server"}``; else None)."""

    lm: Any
    served: dict[str, Any] | None


@contextlib.contextmanager
def answering_model(evaluation: Evaluation, server_log: Path, answered: bool) -> Iterator[AnsweringModel]:
    """The lm-eval model to answer with, for the length of the block: a server the block starts is stopped
    when it ends (on success, error or Ctrl-C).

    ``server_log``: the started server's output; ``answered``: every answer is journaled already (the pass
    after shards), so no server is started."""
    if evaluation.backend != "vllm-server":
        lm = build_lm(
            evaluation.backend,
            evaluation.model,
            evaluation.tokenizer,
            batch_size=evaluation.batch_size,
            device=evaluation.device,
        )
        yield AnsweringModel(lm, None)
        return
    from tokenpo.evals import vllm_server
    from tokenpo.evals.served_lm import OPENAI_STOP_STRINGS

    server, model = evaluation.server, evaluation.model
    if server is None:
        raise EvalError("--backend", "vllm-server", "needs a vLLM environment (--vllm-python) or a server (--base-url)")
    if not evaluation.model_is_named or not Path(model).is_dir():
        raise EvalError("--backend", "vllm-server", "serves a model folder (pull or save the model first)")
    name = server.served_name or str(model)
    with contextlib.ExitStack() as stack:
        if answered:
            base_url = vllm_server.NO_SERVER
        else:
            base_url = server.base_url or stack.enter_context(server.start(str(model), server_log)).base_url
            vllm_server.check_server(base_url, name, _local_tokenizer(evaluation.tokenizer, model))
        stops = OPENAI_STOP_STRINGS if server.base_url else vllm_server.STARTED_STOP_STRINGS
        lm = vllm_server.completions_lm(base_url, name, str(model), server.max_model_len, server.concurrent, stops)
        computes = server.identity(str(model))
        yield AnsweringModel(lm, {"dtype": computes["dtype"], "server": computes})


def _local_tokenizer(tokenizer: Any, model: Any) -> Any:
    if tokenizer is not None and not isinstance(tokenizer, str | os.PathLike):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer or model))
