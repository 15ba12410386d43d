"""The win-rate judge: the candidate's answers against the DPO baseline's, judged pairwise in both orders."""

from tokenpo.evals.judges.winrate.journal import JudgmentJournal, judge_key, messages_hash
from tokenpo.evals.judges.winrate.protocol import (
    ORDERS,
    TEMPLATE_VERSION,
    Judgment,
    judge_messages,
    pair_outcome,
    pair_outcomes,
    parse_verdict,
    position_bias,
)
from tokenpo.evals.judges.winrate.stats import (
    LengthGLM,
    fit_length_glm,
    length_controlled_win_rate,
    paired_bootstrap,
    win_rate,
)

__all__ = [
    "ORDERS",
    "TEMPLATE_VERSION",
    "Judgment",
    "JudgmentJournal",
    "LengthGLM",
    "fit_length_glm",
    "judge_key",
    "judge_messages",
    "length_controlled_win_rate",
    "messages_hash",
    "pair_outcome",
    "pair_outcomes",
    "paired_bootstrap",
    "parse_verdict",
    "position_bias",
    "win_rate",
]
