"""Which judge decides a win rate's pairs: the settings ``harness judge winrate`` takes as flags and
``harness run`` as ``eval.winrate.judge``, checked once here."""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpo.core.config import field_error


@dataclass(frozen=True)
class JudgeChoice:
    """Exactly one of a hosted endpoint (``url`` + ``model``), a model the harness ``serve``s itself, or a
    ``reward_model``. ``serve`` and ``reward_model`` are model specs in a configuration; the harness resolves
    them to folders before judging."""

    url: str | None = field(
        default=None, metadata={"help": "an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1"}
    )
    model: str | None = field(default=None, metadata={"help": "the judge model's name at url"})
    key_env: str | None = field(
        default=None, metadata={"help": "the environment variable holding url's key (e.g. OPENAI_API_KEY); null: none"}
    )
    serve: str | None = field(
        default=None,
        metadata={"help": "a model the harness serves itself as the judge (the hf backend's chat server)"},
    )
    reward_model: str | None = field(
        default=None,
        metadata={"help": "a sequence-classification reward model: the answer with the higher reward wins"},
    )
    max_tokens: int = field(default=512, metadata={"help": "the LLM judge's reply cap in tokens"})
    timeout: float = field(default=60.0, metadata={"help": "seconds per judge call"})

    def __post_init__(self) -> None:
        chosen = [name for name in ("url", "serve", "reward_model") if getattr(self, name)]
        if len(chosen) != 1:
            raise field_error("url", f"give exactly one of url, serve and reward_model, got {chosen or 'none'}")
        if self.url and not self.model:
            raise field_error("model", "name the judge model served at url")
        for name in ("model", "key_env"):
            if getattr(self, name) and not self.url:
                raise field_error(name, "applies only to a judge at a url")
        if self.max_tokens < 1 or not self.timeout > 0:
            raise field_error("max_tokens", "max_tokens must be at least 1 and timeout positive")

    @property
    def is_llm(self) -> bool:
        """Whether the judge is a chat model asked both orders (else a reward model)."""
        return self.reward_model is None
