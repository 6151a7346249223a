"""The judge as a reward: for (conversation, completion[, other completion]), each tier's score and each hard
constraint's probability of a violation, by the same judge, gate and combination label-prefs and eval use.

    from cai_cli.judge.rewards import judge_completions
    scores = judge_completions(engine, constitution, [(conversation, completion, other), (conversation, completion, None)])
    scores[0].tiers["safe"], scores[0].p_better, scores[0].violations["creates-sexual-content-involving-minors"]

With an other completion, `tiers` holds P(completion beats other) per tier and `p_better` the label under
`priority` (the gate first: a completion that crosses a constraint the other does not gets 1 - P(violation));
without one, only the gate runs (`tiers` is empty, `p_better` None). `violations` is always the completion's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .gate import Gate
from .pairwise import Ask, JudgeConfig, JudgeFailure, PairwiseJudge
from .priority import DEFAULT_PRIORITY, TIER_CONFIDENCE, Priority
from .tiers import TieredJudge, principles_for

if TYPE_CHECKING:
    from ..constitution import Constitution


@dataclass
class CompletionScores:
    violations: dict[str, float | None]  # hard constraint id -> P(the completion crosses it); None: no probability
    tiers: dict[str, float] = field(default_factory=dict)  # tier -> P(completion beats other), highest tier first
    p_better: float | None = None  # the combined label (None without an other completion, or where the judge failed)
    decided_by: str | None = None  # a tier, "hard-constraint:<id>", or None
    failure: str | None = None  # why the comparison gave no verdict


def judge_completions(
    engine,
    constitution: Constitution,
    items: Sequence[tuple[list[dict], str, str | None]],
    *,
    priority: Priority | str = DEFAULT_PRIORITY,
    confidence: float = TIER_CONFIDENCE,
    config: JudgeConfig | None = None,
    principles: int = 0,
    seed: int = 0,
) -> list[CompletionScores]:
    """Scores per (conversation, completion, other or None); PRINCIPLES questions per tier (0: all), drawn with SEED."""
    gate = Gate(constitution)
    checked = gate.check(engine, [(conv, text) for conv, text, _ in items] + [(conv, other) for conv, _, other in items if other is not None])
    own, others = checked[: len(items)], iter(checked[len(items) :])
    pairs = [(n, item) for n, item in enumerate(items) if item[2] is not None and item[1] != item[2]]
    asks = [Ask(conv, text, str(other), principles_for(constitution, principles, seed, f"reward:{n}", priority), key=f"reward:{n}")
            for n, (conv, text, other) in pairs]
    other_gate = {n: next(others) for n, item in enumerate(items) if item[2] is not None}
    judge = TieredJudge(PairwiseJudge(engine, config or JudgeConfig()), constitution, priority, confidence)
    decisions = judge.decide(asks, [(own[n], other_gate[n]) for n, _ in pairs])
    out = [CompletionScores(dict(g.violations)) for g in own]
    for (n, _), decision in zip(pairs, decisions):
        if isinstance(decision, JudgeFailure):
            out[n].failure = decision.reason
            continue
        out[n].tiers = {t.tier: t.p_x for t in decision.tiers}
        out[n].p_better, out[n].decided_by = decision.p_x, decision.decided_by
    for n, (_, text, other) in enumerate(items):
        if other is not None and text == other:
            out[n].p_better = 0.5  # the same words are no better than themselves
    return out
