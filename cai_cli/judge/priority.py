"""How the verdicts of the priority tiers combine into one label (`--priority holistic|strict|flat`).

A tiered constitution orders its aims (for example safe > ethical > guidelines > helpful). The judge asks each
tier's comparison questions and keeps each tier's verdict: p_r = P(x beats y) by tier r (rank 0 the highest), the
mean of its questions' probabilities (an ensemble, as everywhere in the judge); d_r = logit(p_r) is its log-odds.
A tier is *confident* when max(p_r, 1 - p_r) >= c, the confidence threshold (`--tier-confidence`, default
TIER_CONFIDENCE = 0.75); L = logit(c).

* **flat**: the mean of every question's probability, tiers ignored (the label before tiers existed).
* **strict**: the highest tier that is confident decides alone: p = p_r. Where no tier is confident, the flat
  mean decides (and no tier is named as deciding).
* **holistic** (the default): a confident higher tier dominates, and lower tiers still move close calls. In
  log-odds,

      D = d_0 + sum_{r >= 1} w^r * clip(d_r, -M, M),   w = 1/3,   M = 2L,   p = sigmoid(D)

  The highest tier counts in full; each lower tier counts a third of the one above it, and never beyond M (a
  lower tier's certainty adds no more than M). Since sum_{s > r} w^s < w^r / 2, all the tiers below r together add
  less than w^r * M / 2 = w^r * L in either direction, while a confident tier r adds at least w^r * L: **a
  confident tier is never overturned by the tiers below it**, whatever they say. Where the tiers above a lower one
  are close to indifferent (d near 0, the usual case: both answers are equally safe), the lower tier decides, in
  proportion to its weight; where they agree, their evidence adds up. With a single tier (a constitution without
  priorities) D = d_0 and the label is the flat one exactly.

  The tier named as deciding is the highest confident tier that points the way the label does (none where the
  label came from several tiers together).

Above every tier stands the hard-constraint gate (cai_cli.judge.gate): a response that crosses a constraint the
other does not loses whatever the tiers say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..errors import CaiError
from .maths import MAX_LOGODDS, logit, sigmoid


class Priority(str, Enum):
    """--priority: how the tiers' verdicts combine into one label."""

    holistic = "holistic"  # a confident higher tier dominates; lower tiers move close calls
    strict = "strict"  # the highest confident tier decides alone
    flat = "flat"  # the mean over every question, tiers ignored


DEFAULT_PRIORITY = Priority.holistic
TIER_CONFIDENCE = 0.75
HOLISTIC_WEIGHT = 1.0 / 3.0  # each tier counts this much of the one above it; at most 1/3 keeps a confident tier dominant
UNTIERED = "untiered"  # the group of comparison questions without a tier (ranked below every tier)


@dataclass(frozen=True)
class TierVerdict:
    """One tier's verdict on x against y: P(x beats y) (the mean of its questions) and each question's."""

    tier: str
    p_x: float
    principles: dict[str, float]


@dataclass(frozen=True)
class Combined:
    p_x: float
    decided_by: str | None  # the tier named as deciding (None: several tiers together, or flat)


def parse_tier_confidence(value: float) -> float:
    if not 0.5 < value < 1.0:
        raise CaiError(f"--tier-confidence: expected a probability between 0.5 and 1 (exclusive), got {value}")
    return value


def confident(p: float, confidence: float) -> bool:
    return max(p, 1.0 - p) >= confidence


def split_by_tier(principles: dict[str, float], tier_of: dict[str, str], order: Sequence[str]) -> list[TierVerdict]:
    """The tiers' verdicts, highest first, from each question's P(x beats y); a tier with no question asked is left out."""
    groups: dict[str, dict[str, float]] = {}
    for pid, p in principles.items():
        groups.setdefault(tier_of.get(pid, UNTIERED), {})[pid] = p
    ranked = [t for t in order if t in groups] + [t for t in groups if t not in order]
    return [TierVerdict(t, sum(groups[t].values()) / len(groups[t]), groups[t]) for t in ranked]


def holistic_logodds(tiers: Sequence[TierVerdict], confidence: float) -> float:
    """D of the holistic rule (module docstring), from the tiers' verdicts highest first."""
    bound = 2.0 * logit(confidence)
    total = 0.0
    for rank, t in enumerate(tiers):
        d = max(-MAX_LOGODDS, min(MAX_LOGODDS, logit(t.p_x)))
        total += d if rank == 0 else HOLISTIC_WEIGHT**rank * max(-bound, min(bound, d))
    return total


def combine(tiers: Sequence[TierVerdict], flat_p: float, priority: Priority | str, confidence: float = TIER_CONFIDENCE) -> Combined:
    """The label from the tiers' verdicts (highest first) under PRIORITY; FLAT_P is the mean over every question."""
    priority = Priority(priority)
    if priority is Priority.flat or not tiers:
        return Combined(flat_p, None)
    if priority is Priority.strict:
        for t in tiers:
            if confident(t.p_x, confidence):
                return Combined(t.p_x, t.tier)
        return Combined(flat_p, None)
    p = tiers[0].p_x if len(tiers) == 1 else sigmoid(holistic_logodds(tiers, confidence))
    decided = next((t.tier for t in tiers if confident(t.p_x, confidence) and (t.p_x > 0.5) == (p > 0.5) and not math.isclose(p, 0.5)), None)
    return Combined(p, decided)
