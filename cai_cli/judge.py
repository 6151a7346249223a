"""The AI judge's question and its arithmetic: pure functions, no model, no command line.

A judgment asks a comparison principle as a multiple-choice question with the two
responses as options (A) and (B), and reads the judge's answer as the log-probs of
the option tokens. Everything here works on numbers and strings so it can be
tested exactly; `stages/label_prefs.py` runs the engine.

Log-odds are the working unit: d = log P("A") - log P("B") after "The answer is: (" is the judge's
log-odds that the response shown first is better. A judge with a position bias
adds (about) a constant to d whatever the responses are, so averaging the two
orders in log-odds, d(x first) and -d(y first), cancels a constant bias exactly;
averaging probabilities would not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import CaiError

# The answer prefix ends inside the parenthesis, so each option is a single token: an engine can read both
# from one next-token distribution, and " (" + "A" tokenizes as the model itself writes "(A)".
OPTIONS = ("A", "B")
ANSWER_PREFIX = "The answer is: ("
COT_PROMPT = "Think step by step about both responses first, then say which option is better."
COT_ANSWER_PREFIX = "\n\nSo the answer is: ("
# Scores far beyond this carry no more information and only risk inf - inf = nan.
MAX_LOGODDS = 50.0


# --------------------------------------------------------------------------- the question


def format_conversation(conv: Sequence[dict]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in conv)


def question_text(conv: Sequence[dict], question: str, first: str, second: str, cot: bool = False) -> str:
    """The multiple-choice question; options (A) and (B) follow the principle's wording directly."""
    ask = COT_PROMPT if cot else "Answer with (A) or (B)."
    return (
        f"Consider the following conversation between a human and an assistant:\n\n{format_conversation(conv)}\n\n"
        f"{question}\nOptions:\n(A) {first}\n(B) {second}\n\n{ask}"
    )


@dataclass(frozen=True)
class JudgeExample:
    """A worked judgment shown before the real question (--judge-examples)."""

    conversation: tuple[tuple[str, str], ...]
    a: str
    b: str
    answer: str  # "A" or "B"
    question: str | None = None  # None: the principle being asked

    def turns(self, principle_question: str) -> list[dict]:
        conv = [{"role": r, "content": c} for r, c in self.conversation]
        text = question_text(conv, self.question or principle_question, self.a, self.b)
        return [{"role": "user", "content": text}, {"role": "assistant", "content": f"{ANSWER_PREFIX}{self.answer})"}]


def judge_messages(conv, question: str, first: str, second: str, examples: Sequence[JudgeExample] = (), cot: bool = False) -> list[dict]:
    turns: list[dict] = []
    for ex in examples:
        turns += ex.turns(question)
    return turns + [{"role": "user", "content": question_text(conv, question, first, second, cot)}]


def plain_prompt(messages: Sequence[dict]) -> str:
    """The judge's turns as plain Human/Assistant text, for base models with no chat template (the paper's format).

    Ends on an open assistant turn, so what is appended (the answer prefix, or the reasoning) continues it.
    """
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names[m['role']]}: {m['content']}" for m in messages).lstrip("\n") + "\n\nAssistant:"


# --------------------------------------------------------------------------- arithmetic


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def logit(p: float) -> float:
    p = min(max(p, 1e-300), 1.0 - 1e-16)
    return math.log(p) - math.log1p(-p)


def logodds(scores: Sequence[float]) -> float:
    """log P(A) - log P(B) from the two option scores; nan when the judge gave neither any probability."""
    a, b = float(scores[0]), float(scores[1])
    if math.isinf(a) and math.isinf(b):
        return math.nan
    d = a - b
    if math.isnan(d):
        return math.nan
    return max(-MAX_LOGODDS, min(MAX_LOGODDS, d))


def clamp_logodds(d: float, clamp: tuple[float, float] | None) -> float:
    if clamp is None:
        return d
    lo, hi = clamp
    return logit(min(max(sigmoid(d), lo), hi))


def pair_logodds(d_x_first: float, d_y_first: float | None) -> float:
    """Log-odds that x beats y for one principle: the mean of the two orders (y first counts negated)."""
    if d_y_first is None:
        return d_x_first
    return (d_x_first - d_y_first) / 2.0


def orders_disagree(d_first_is_x: float, d_first_is_y: float) -> bool:
    """Both orders favour whichever response was shown first (or both the second): the judge followed the position.

    Each argument is log-odds for the first-shown option (any score centred on 0 works); an exact tie is no disagreement.
    """
    return (d_first_is_x > 0 and d_first_is_y > 0) or (d_first_is_x < 0 and d_first_is_y < 0)


def ensemble(per_principle_logodds: Sequence[float]) -> float:
    """P(x beats y) over K principles: the mean of their probabilities (an ensemble of judges, each in [0, 1])."""
    return sum(sigmoid(d) for d in per_principle_logodds) / len(per_principle_logodds)


def orient(p_x: float) -> tuple[bool, float]:
    """(x is chosen, p_chosen). A tie goes to x, so labels never depend on float noise in y's favour."""
    return (True, p_x) if p_x >= 0.5 else (False, 1.0 - p_x)


def rank(n: int, p_beats: dict[tuple[int, int], float]) -> tuple[list[int], list[float]]:
    """Candidates best first by their mean win probability over every pair they were in; ties keep index order.

    p_beats[(i, j)] (i < j) is P(candidate i beats candidate j).
    """
    wins = [0.0] * n
    games = [0] * n
    for (i, j), p in p_beats.items():
        wins[i] += p
        wins[j] += 1.0 - p
        games[i] += 1
        games[j] += 1
    rates = [w / g if g else 0.5 for w, g in zip(wins, games)]
    order = sorted(range(n), key=lambda c: (-rates[c], c))
    return order, rates


# --------------------------------------------------------------------------- option parsing


def parse_clamp(value: str | None) -> tuple[float, float] | None:
    """'LO,HI', symmetric around 0.5: an uneven clamp would itself favour one position."""
    if value is None:
        return None
    bad = f"--clamp: expected LO,HI with 0 <= LO < 0.5 < HI <= 1 and LO + HI = 1, such as 0.4,0.6; got {value!r}"
    try:
        lo, hi = (float(x) for x in value.split(","))
    except ValueError:
        raise CaiError(bad) from None
    if not (0.0 <= lo < 0.5 < hi <= 1.0) or abs(lo + hi - 1.0) > 1e-9:
        raise CaiError(bad)
    return lo, hi


def parse_principles(value: str, available: int) -> int:
    """--principles K or 'all' -> how many comparison principles each comparison averages."""
    if value.strip().lower() == "all":
        return available
    try:
        k = int(value)
    except ValueError:
        raise CaiError(f"--principles: expected a number >= 1 or 'all', got {value!r}") from None
    if k < 1:
        raise CaiError(f"--principles: expected a number >= 1 or 'all', got {value!r}")
    if k > available:
        raise CaiError(f"--principles {k}: the constitution has only {available} comparison questions (use --principles all)")
    return k


def parse_min_confidence(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.5 <= value <= 1.0:
        raise CaiError(f"--min-confidence: expected a probability between 0.5 and 1, got {value}")
    return value


_ANSWER = re.compile(r"\(\s*([AB])\s*\)|\b(?i:option|response|answer)\s*:?\s*\(?([AB])\b|^\s*([AB])\b")


def parse_answer(text: str) -> str | None:
    """'A' or 'B' from a generated answer ("The answer is (B)", "Option A", "B."), or None."""
    m = _ANSWER.search(text)
    if not m:
        return None
    return next(g for g in m.groups() if g)
