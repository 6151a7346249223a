"""The judge per priority tier: which comparison questions each tier asks, the pairwise judge's verdict split into
the tiers' verdicts, combined under --priority (priority.py), with the hard-constraint gate (gate.py) above every
tier. label-prefs and eval judge a pair through TieredJudge; the RL reward (reward.py) asks the same tiers' questions
(tier_pools) and leaves their combination to trl's reward_weights.

Questions per tier: a tier's own comparison questions; a tier of a document constitution that has none gets one
question built from its routed sections' headings. Under holistic and strict, --principles K draws up to K of each
tier's questions (seeded per comparison and tier; a tier with fewer asks all of them); under flat, K are drawn
from all the questions together, as before tiers existed. A constitution without priorities has one group, drawn
the same way under every --priority (the labels before tiers existed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .gate import GateResult, Separation, separate
from .pairwise import Ask, JudgeFailure, PairwiseJudge, Verdict
from .principles import draw_principles
from .priority import TIER_CONFIDENCE, UNTIERED, Priority, TierVerdict, combine, split_by_tier

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution

SECTION_QUESTION = (
    "Which of these assistant responses better meets what these parts of the assistant's constitution ask for: {headings}?"
)


def section_question(constitution: Constitution, tier: str) -> ComparisonPrinciple | None:
    """A question built from TIER's routed sections (their heading paths), for a tier with no comparison question."""
    from ..constitution import ComparisonPrinciple

    headings = [s.heading for s in constitution.sections if s.tier == tier and s.routed]
    if not headings:
        return None
    return ComparisonPrinciple(f"sections:{tier}", SECTION_QUESTION.format(headings="; ".join(headings)), tier)


def section_ids_of(constitution: Constitution, principle_id: str) -> list[str]:
    """The sections a built question was made from ([] for a comparison question of the constitution)."""
    if not principle_id.startswith("sections:"):
        return []
    tier = principle_id.removeprefix("sections:")
    return [s.id for s in constitution.sections if s.tier == tier and s.routed]


def tier_pools(constitution: Constitution) -> list[tuple[str, list[ComparisonPrinciple]]]:
    """(tier, its questions), highest first; questions without a tier last, as UNTIERED."""
    pools: list[tuple[str, list[ComparisonPrinciple]]] = []
    for tier in constitution.priorities:
        own = list(constitution.comparisons_in(tier))
        built = None if own else section_question(constitution, tier)
        if own or built is not None:
            pools.append((tier, own or [built]))  # type: ignore[list-item]  # built is not None here
    loose = [q for q in constitution.comparisons if q.tier is None]
    if loose:
        pools.append((UNTIERED, loose))
    return pools


def askable(constitution: Constitution) -> int:
    """How many questions the judge can ask under this constitution (0: label-prefs cannot judge)."""
    return sum(len(pool) for _, pool in tier_pools(constitution))


def principles_for(constitution: Constitution, k: int, seed: int, key: str, priority: Priority | str) -> list[ComparisonPrinciple]:
    """The questions one comparison (KEY: the row and the pair) asks; see the module docstring."""
    pools = tier_pools(constitution)
    if Priority(priority) is Priority.flat or not constitution.priorities:
        every = list(constitution.comparisons) or [q for _, pool in pools for q in pool]
        return draw_principles(every, k or len(every), seed, key)
    return [q for tier, pool in pools for q in draw_principles(pool, k or len(pool), seed, f"{key}|{tier}")]


@dataclass
class Decision:
    """A pair judged per tier: the label P(x beats y), who decided it, every tier's verdict, the votes, the gate."""

    p_x: float
    decided_by: str | None  # a tier, "hard-constraint:<id>", or None (several tiers together; flat)
    tiers: list[TierVerdict]
    flat_p: float  # the mean over every question asked
    verdict: Verdict  # the pairwise judge's votes and per-question probabilities
    gate: tuple[GateResult, GateResult] | None = None
    separation: Separation | None = None  # set where the gate decided


class TieredJudge:
    """Asks comparisons through the one pairwise judge and labels them per tier under PRIORITY, the gate first."""

    def __init__(self, judge: PairwiseJudge, constitution: Constitution, priority: Priority | str, confidence: float = TIER_CONFIDENCE):
        self.judge = judge
        self.constitution = constitution
        self.priority = Priority(priority)
        self.confidence = confidence
        self.order = [t for t, _ in tier_pools(constitution)]
        self.tier_of = {q.id: t for t, pool in tier_pools(constitution) for q in pool}

    def decide(self, asks: Sequence[Ask], gates: Sequence[tuple[GateResult, GateResult] | None] | None = None) -> list[Decision | JudgeFailure]:
        """One Decision per Ask (x against y); GATES, where given, holds each ask's (x's, y's) gate results."""
        verdicts = self.judge.judge(asks) if asks else []
        out: list[Decision | JudgeFailure] = []
        for n, verdict in enumerate(verdicts):
            if isinstance(verdict, JudgeFailure):
                out.append(verdict)
                continue
            tiers = split_by_tier(verdict.principles, self.tier_of, self.order)
            combined = combine(tiers, verdict.p_x, self.priority, self.confidence)
            gate = gates[n] if gates is not None else None
            split = separate(*gate) if gate is not None else None
            if split is None:
                out.append(Decision(combined.p_x, combined.decided_by, tiers, verdict.p_x, verdict, gate))
                continue
            # The gate's decision: the confidence is the probability that the rejected response crosses the line.
            p_x = 1.0 - split.p_violation if split.loser == "x" else split.p_violation
            out.append(Decision(p_x, f"hard-constraint:{split.constraint}", tiers, verdict.p_x, verdict, gate, split))
        return out


def units_used(constitution: Constitution, principle_ids: Sequence[str]) -> dict:
    """What a label was made from, with content hashes, so `--amend` can tell whether a changed constitution
    touches it: the comparison questions asked, the sections a built question came from, every hard constraint
    (the gate checks them all) and the order of the tiers."""
    ids = set(principle_ids)
    out: dict = {"comparisons": {q.id: q.hash for q in constitution.comparisons if q.id in ids}}
    sections = {sid: constitution.section_by_id(sid).hash for pid in sorted(ids) for sid in section_ids_of(constitution, pid)}
    if sections:
        out["sections"] = sections
    if constitution.hard_constraints:
        out["constraints"] = {h.id: h.hash for h in constitution.hard_constraints}
    if constitution.priorities:
        out["priorities"] = list(constitution.priorities)
    return out
