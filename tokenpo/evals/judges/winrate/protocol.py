"""The pairwise judge protocol: the judge's prompt, its verdict, and how both orders of a pair combine.

**The prompt** is our own wording in the style of the published pairwise judge templates: MT-Bench's
pairwise judge (Zheng et al. 2023, *Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena*, NeurIPS
Datasets and Benchmarks; its ``[[A]]``/``[[B]]``/``[[C]]`` verdict format) and AlpacaEval's pairwise
annotator (Li et al. 2023, *AlpacaEval: An Automatic Evaluator of Instruction-following Models*;
Dubois et al. 2024, arXiv 2404.04475). The system message asks for a comparison of two assistant
answers to one question on helpfulness, accuracy and harmlessness, tells the judge to ignore the
answers' order and length, and to end with exactly one verdict token: ``[[A]]``, ``[[B]]`` or
``[[C]]`` (a tie). :data:`TEMPLATE_VERSION` names the wording and is recorded with every judgment, so
a changed prompt never reuses an old judgment.

**The verdict** (:func:`parse_verdict`) is read strictly: the reply must hold verdict tokens of one
kind only (the same token repeated is fine, as judges sometimes restate it); no token, or two different
ones, is unparseable (None). Nothing is guessed from prose such as "Answer A is better".

**Both orders.** Judges favour a position (Zheng et al. 2023, §3.3), so every pair is judged twice:
``candidate_first`` (the candidate is answer A) and ``baseline_first`` (the baseline is answer A).
Each order's verdict gives the candidate a score s ∈ {0, ½, 1}:

    candidate_first:  A → 1,  B → 0,  tie → ½
    baseline_first:   A → 0,  B → 1,  tie → ½

and the pair's outcome is their mean, (s₁ + s₂)/2 ∈ {0, ¼, ½, ¾, 1}: a consistent win 1, a consistent
loss 0, a verdict that follows the position (A in both orders, or B in both) ½, counted as a tie as
ties count half. **A pair counts only when both orders parsed**: with one order alone the position
bias we judge twice to cancel would be back in that pair's outcome, so a pair with a failed or
unparseable order is unjudged (None), counted and reported, never filled in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tokenpo.evals.errors import EvalError

Verdict = Literal["A", "B", "tie"]
Order = Literal["candidate_first", "baseline_first"]
ORDERS: tuple[Order, Order] = ("candidate_first", "baseline_first")
VERDICTS: tuple[Verdict, Verdict, Verdict] = ("A", "B", "tie")

# Bump on any change of the wording below: the journal keys judgments by it.
TEMPLATE_VERSION = "tokenpo-pairwise-1"

SYSTEM_PROMPT = (
    "You are a careful, impartial reviewer. You will see a question a user asked an AI assistant and "
    "two candidate answers to it, labelled Answer A and Answer B. Decide which answer serves the user "
    "better. Judge helpfulness (does it address what was asked, completely and usefully), accuracy (are "
    "its statements and reasoning correct) and harmlessness (does it avoid unsafe, deceptive or "
    "offensive content).\n"
    "The labels A and B were assigned at random: the order in which the answers appear must not "
    "influence you. Length is not quality either: do not prefer an answer for being longer or shorter, "
    "only for serving the user better.\n"
    "First explain your comparison briefly. Then finish your reply with exactly one verdict token and "
    "nothing after it: [[A]] if Answer A is better, [[B]] if Answer B is better, or [[C]] if they are "
    "equally good. Write no other text in double square brackets."
)

USER_TEMPLATE = (
    "### Question\n{question}\n\n"
    "### Answer A (begins)\n{answer_a}\n### Answer A (ends)\n\n"
    "### Answer B (begins)\n{answer_b}\n### Answer B (ends)\n\n"
    "Compare the two answers and finish with [[A]], [[B]] or [[C]]."
)

_TOKEN = re.compile(r"\[\[([ABC])\]\]")
_TOKEN_VERDICT: dict[str, Verdict] = {"A": "A", "B": "B", "C": "tie"}
# The candidate's score for each order's verdict (see the module docstring).
_SCORE: dict[Order, dict[Verdict, float]] = {
    "candidate_first": {"A": 1.0, "B": 0.0, "tie": 0.5},
    "baseline_first": {"A": 0.0, "B": 1.0, "tie": 0.5},
}


def judge_messages(question: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    """The judge's chat (OpenAI message format): the system prompt, then the question and both answers."""
    # str.format would read braces inside the answers (code, JSON) as fields: substitute by replace, in
    # one pass per field so an answer containing "{answer_b}" is not expanded either.
    parts = USER_TEMPLATE.split("{question}")
    head, rest = parts[0], parts[1]
    a_head, a_rest = rest.split("{answer_a}")
    b_head, b_rest = a_rest.split("{answer_b}")
    user = head + question + a_head + answer_a + b_head + answer_b + b_rest
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> Verdict | None:
    """The verdict in ``reply``: ``A``, ``B`` or ``tie`` (``[[C]]``) when every verdict token in it is the
    same one; None when there is none or two different ones (the judge contradicted itself)."""
    tokens = set(_TOKEN.findall(reply))
    if len(tokens) != 1:
        return None
    return _TOKEN_VERDICT[tokens.pop()]


@dataclass(frozen=True)
class Judgment:
    """One order of one pair, as judged: the judge's ``reply`` (None when the call failed), its parsed
    ``verdict`` (None when failed or unparseable) and the ``error`` of a failed call."""

    prompt_id: str
    order: Order
    reply: str | None
    verdict: Verdict | None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise EvalError("judgment", "order", f"{self.order!r} is not one of {', '.join(ORDERS)}")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise EvalError("judgment", "verdict", f"{self.verdict!r} is not one of A, B, tie")
        if self.verdict is not None and self.reply is None:
            raise EvalError("judgment", "verdict", "a verdict needs the reply it was read from")

    @classmethod
    def of_reply(cls, prompt_id: str, order: Order, reply: str) -> Judgment:
        """The judgment of a reply the judge gave, its verdict parsed by :func:`parse_verdict`."""
        return cls(prompt_id, order, reply, parse_verdict(reply), None)

    @classmethod
    def failed(cls, prompt_id: str, order: Order, error: str) -> Judgment:
        """The judgment of a call that returned no reply."""
        return cls(prompt_id, order, None, None, error)

    @property
    def score(self) -> float | None:
        """The candidate's score in this order (1 win, ½ tie, 0 loss); None without a verdict."""
        return None if self.verdict is None else _SCORE[self.order][self.verdict]


def pair_outcome(candidate_first: Judgment, baseline_first: Judgment) -> float | None:
    """The candidate's outcome on one pair, (s₁ + s₂)/2 over the two orders' scores (module docstring);
    None (unjudged) unless both orders have a verdict."""
    if candidate_first.order != "candidate_first" or baseline_first.order != "baseline_first":
        raise EvalError(
            "pair outcome",
            "order",
            f"expected candidate_first then baseline_first, got {candidate_first.order}, {baseline_first.order}",
        )
    if candidate_first.prompt_id != baseline_first.prompt_id:
        raise EvalError(
            "pair outcome",
            "prompt_id",
            f"the two orders judge different prompts: {candidate_first.prompt_id!r}, {baseline_first.prompt_id!r}",
        )
    first, second = candidate_first.score, baseline_first.score
    if first is None or second is None:
        return None
    return (first + second) / 2


def _pairs(judgments: Iterable[Judgment]) -> dict[str, dict[Order, Judgment]]:
    """Judgments grouped by prompt, each order at most once."""
    pairs: dict[str, dict[Order, Judgment]] = {}
    for judgment in judgments:
        orders = pairs.setdefault(judgment.prompt_id, {})
        if judgment.order in orders:
            raise EvalError("judgments", "prompt_id", f"{judgment.prompt_id!r} is judged {judgment.order} twice")
        orders[judgment.order] = judgment
    return pairs


def pair_outcomes(judgments: Iterable[Judgment]) -> tuple[dict[str, float], list[str]]:
    """Every prompt's :func:`pair_outcome`: ``(outcomes by prompt id, unjudged prompt ids)``, both in
    first-seen order. A prompt missing an order, or with an order that has no verdict, is unjudged."""
    outcomes: dict[str, float] = {}
    unjudged: list[str] = []
    for prompt_id, orders in _pairs(judgments).items():
        outcome = None
        if len(orders) == 2:
            outcome = pair_outcome(orders["candidate_first"], orders["baseline_first"])
        if outcome is None:
            unjudged.append(prompt_id)
        else:
            outcomes[prompt_id] = outcome
    return outcomes, unjudged


def position_bias(judgments: Iterable[Judgment]) -> dict[str, Any]:
    """How much the judge follows the position rather than the answer.

    - ``judgments``, ``parsed``: how many judgments there are and how many have a verdict;
    - ``decisive``: parsed judgments that are not ties; ``first_chosen``: of those, how many chose
      answer A; ``first_share`` = first_chosen / decisive (½ for a judge without position bias; None
      when nothing was decisive);
    - ``pairs``: prompts with both orders parsed; ``flips``: of those, how many the two orders scored
      differently for the candidate (s₁ ≠ s₂: a swap of positions changed the judgment, including a win
      turning into a tie); ``flip_share`` = flips / pairs (None without pairs);
    - ``same_position``: pairs where the judge chose the same label in both orders (A/A or B/B), the
      pure position choices ``pair_outcome`` counts as ties.
    """
    judgments = list(judgments)
    parsed = [j for j in judgments if j.verdict is not None]
    decisive = [j for j in parsed if j.verdict != "tie"]
    first_chosen = sum(1 for j in decisive if j.verdict == "A")
    pairs = flips = same_position = 0
    for orders in _pairs(judgments).values():
        if len(orders) != 2:
            continue
        one, two = orders["candidate_first"], orders["baseline_first"]
        if one.verdict is None or two.verdict is None:
            continue
        pairs += 1
        flips += one.score != two.score
        same_position += one.verdict == two.verdict and one.verdict != "tie"
    return {
        "judgments": len(judgments),
        "parsed": len(parsed),
        "decisive": len(decisive),
        "first_chosen": first_chosen,
        "first_share": first_chosen / len(decisive) if decisive else None,
        "pairs": pairs,
        "flips": flips,
        "flip_share": flips / pairs if pairs else None,
        "same_position": same_position,
    }
