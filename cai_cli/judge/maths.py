"""The judge's arithmetic: log-odds from two option scores, both orders combined, an ensemble of principles,
the clamp, ranking candidates, and the one scored yes/no pair (a question asked both ways round).

Log-odds are the working unit: d = log P(A) - log P(B). A judge with a position bias (or a lean
towards "Yes") adds about a constant to d whatever it is shown, so averaging d over the two orders,
d(x first) and -d(y first), cancels a constant bias exactly; averaging probabilities would not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import CaiError

# Scores far beyond this carry no more information and only risk inf - inf = nan.
MAX_LOGODDS = 50.0
# With chain of thought a judge's probabilities are overconfident; each principle's is clamped to this unless --clamp says otherwise.
COT_CLAMP = (0.4, 0.6)
YES_NO = (" Yes", " No")


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


def clamp_p(p: float, clamp: tuple[float, float] | None) -> float:
    if clamp is None:
        return p
    lo, hi = clamp
    return min(max(p, lo), hi)


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


def ensemble(per_principle_p: Sequence[float]) -> float:
    """P(x beats y) over K principles: the mean of their probabilities (an ensemble of judges, each in [0, 1])."""
    return sum(per_principle_p) / len(per_principle_p)


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


def yes_no_pairs(engine, pairs: Sequence[tuple[list[dict], list[dict]]]) -> list[float | None]:
    """P(yes) for each (question, its opposite) pair of one-turn chats, from the " Yes"/" No" log-probs after "Answer:".

    Small models lean towards "Yes" whatever the question; the opposite question's yes means no, so its
    log-odds, negated, are averaged with the question's (as the two orders of a comparison are), and a
    constant lean cancels. None where the model gave neither answer any probability, never a 50% guess.
    """
    prompts = [engine.render_chat(chat) + "Answer:" for pair in pairs for chat in pair]
    if not prompts:
        return []
    scores = engine.score_options(prompts, list(YES_NO))
    out: list[float | None] = []
    for i in range(len(pairs)):
        yes, opposite = logodds(scores[2 * i]), logodds(scores[2 * i + 1])
        out.append(None if math.isnan(yes) or math.isnan(opposite) else sigmoid(pair_logodds(yes, opposite)))
    return out


def parse_clamp(value: str | None) -> tuple[float, float] | None:
    """'LO,HI', symmetric around 0.5: an uneven clamp would itself favour one side."""
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


def parse_min_confidence(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.5 <= value <= 1.0:
        raise CaiError(f"--min-confidence: expected a probability between 0.5 and 1, got {value}")
    return value
