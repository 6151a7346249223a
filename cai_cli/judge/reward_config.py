"""What the judge's rewards are (judge/reward.py asks them): the mode (what each completion is compared with), the
rewards' names in trl's order, their default weights and the total trl trains on.

Modes (RewardMode): the cost of one step in scored prompts, for B prompts with G completions each, K questions per
comparison (per tier min(K, the tier's questions), summed over the tiers) and C hard constraints:
- group (default): each completion against every other completion of its group, both orders; a completion's tier
  reward is its mean P(win) over the other G - 1 (identical texts tie at 0.5 without being asked).
  B * G(G-1)/2 pairs * 2 orders * K = B * G(G-1) * K prompts.
- reference: each completion against its prompt row's reference answer (the --reference-field), both orders.
  B * G * 2K prompts.
- pointwise: each completion alone, one yes/no pair per question ("is it good by this question's standard?" and the
  opposite, so the judge's lean towards "Yes" cancels). B * G * 2K prompts.
Every mode adds the gate: B * G * 2C prompts.

Why group is the default: GRPO and RLOO learn only from differences within a group (the advantage is the reward
less the group's mean), and "which of these two answers to the same prompt is better?", asked in both orders, is
the question the judge answers best and the one label-prefs asks, so online rewards and DPO labels mean the same
thing. It needs no reference answer and no absolute scale: a small judge's yes/no is poorly calibrated from one
prompt to the next. At G = 2 (rloo's default) it costs half of the other modes, at G = 3 the same; above that its
cost grows with G (G = 8: 3.5 times), and reference is the cheaper pairwise choice.

Default weights (trl's `reward_weights`): tier rank r weighs TIER_RATIO**r (1, 1/3, 1/9, ...). Every tier reward
lies in [0, 1], so a tier's full difference (w^r) outweighs all the tiers below it together (< w^r / 2): a
higher tier dominates, lower tiers decide where the higher are indifferent. Each constraint weighs
CONSTRAINT_WEIGHT = 2, more than all the tiers together (< 1.5): a completion that surely crosses a hard constraint
never out-scores one that surely does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..constitution.routing import DEFAULT_RANKER, Ranker, check_ranker
from ..errors import CaiError, ConstitutionError, choice
from .pairwise import JudgeConfig
from .principles import DEFAULT_PRINCIPLES

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution

TIER_RATIO = 1.0 / 3.0
CONSTRAINT_WEIGHT = 2.0
UNTIERED = "untiered"
FLAT = "judge"  # the one reward of a constitution without priorities
REFERENCE_FIELD = "response"


class RewardMode(str, Enum):
    """--reward-mode: what each completion is compared with (see the module docstring for the cost of each)."""

    group = "group"  # every other completion of its group, both orders
    reference = "reference"  # the prompt row's reference answer, both orders
    pointwise = "pointwise"  # nothing: one yes/no pair per question


@dataclass(frozen=True)
class JudgeRewardConfig:
    mode: RewardMode = RewardMode.group
    principles: int = DEFAULT_PRINCIPLES  # questions per comparison and tier (0: all)
    reference_field: str = REFERENCE_FIELD  # the rows' reference answer, for --reward-mode reference
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    ranker: Ranker = DEFAULT_RANKER  # how a document's passage is routed for each tier's questions

    def __post_init__(self):
        object.__setattr__(self, "mode", choice(RewardMode, self.mode, "--reward-mode"))
        object.__setattr__(self, "ranker", check_ranker(choice(Ranker, self.ranker, "--ranker")))
        if not self.judge.swap:
            raise CaiError("the judge's rewards are asked in both orders: a reward with the judge's position bias in it would teach the policy where to stand")

    def settings(self) -> dict:
        out = {"mode": self.mode.value, "principles": self.principles, **self.judge.settings(), "ranker": self.ranker.value}
        if self.mode is RewardMode.reference:
            out["reference_field"] = self.reference_field
        return out


def tier_pools(constitution: Constitution) -> list[tuple[str, list[ComparisonPrinciple]]]:
    """(reward name, its questions), highest tier first (the judge's pools, judge/tiers.py); without priorities one
    pool, FLAT."""
    from .tiers import tier_pools as judge_pools

    pools = judge_pools(constitution)
    if not pools:
        raise ConstitutionError(f"{constitution.source}: has no comparison questions, which the judge's rewards are asked from "
                                "(use a constitution with `comparisons`, or a document with priorities: `cai constitution import` drafts them)")
    if not constitution.priorities:
        return [(FLAT, [q for _, pool in pools for q in pool])]
    return [(f"tier:{t}", qs) for t, qs in pools]


def reward_names(constitution: Constitution) -> list[str]:
    """Every reward, in trl's order: the tiers (or FLAT), then one per hard constraint."""
    return [name for name, _ in tier_pools(constitution)] + [f"constraint:{h.id}" for h in constitution.hard_constraints]


def default_weights(constitution: Constitution) -> list[float]:
    """trl's reward_weights: TIER_RATIO**rank per tier, CONSTRAINT_WEIGHT per hard constraint (module docstring)."""
    tiers = [TIER_RATIO**rank for rank, _ in enumerate(tier_pools(constitution))]
    return [round(w, 6) for w in tiers] + [CONSTRAINT_WEIGHT] * len(constitution.hard_constraints)


def parse_weights(value: str | None, names: Sequence[str]) -> list[float] | None:
    """--reward-weights W1,W2,...: one number per reward, in the order of NAMES."""
    if value is None:
        return None
    try:
        weights = [float(x) for x in value.split(",")]
    except ValueError:
        raise CaiError(f"--reward-weights: expected numbers separated by commas, got {value!r}") from None
    if len(weights) != len(names) or not all(math.isfinite(w) for w in weights):
        raise CaiError(f"--reward-weights: expected {len(names)} numbers, one per reward in this order: {', '.join(names)}; got {value!r}")
    return weights


def total(parts: dict[str, float | None], names: Sequence[str], weights: Sequence[float]) -> float | None:
    """The reward trl trains on: the weighted sum of the parts, a part that is None left out (trl's nansum); None
    when every part is None (trl's unscorable completion)."""
    present = [w * v for n, w in zip(names, weights) if (v := parts.get(n)) is not None]
    return sum(present) if present else None
