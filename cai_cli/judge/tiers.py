"""The judge per priority tier: which comparison questions each tier asks, the pairwise judge's verdict split into
the tiers' verdicts, combined under --priority (priority.py), with the hard-constraint gate (gate.py) above every
tier. label-prefs and eval judge a pair through TieredJudge; the RL reward (reward.py) asks the same tiers' questions
(tier_pools) and leaves their combination to trl's reward_weights.

Questions per tier: a tier's own comparison questions; a tier of a document constitution that has none asks
PASSAGE_QUESTION. Under holistic and strict, --principles K draws up to K of each tier's questions (seeded per
comparison and tier; a tier with fewer asks all of them); under flat, K are drawn from all the questions together,
as before tiers existed. A constitution without priorities has one group, drawn the same way under every --priority
(the labels before tiers existed).

The judge is asked about the constitution's words: for a document, each question is shown after the passage routed
for its tier (`routed_passages`: the tier's routed passage that ranks highest against the conversation, by the
ranker routing uses, --ranker; every pair of a conversation is judged against the same passages, so one standard
holds for both sides), quoted whole under its heading path (`Quoted`). Each verdict records the passage it quoted and its hash, and the
hash of the question as shown (`units_used`), which --amend compares (`shown_questions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..constitution.routing import DEFAULT_RANKER, Ranker
from .gate import GateResult, Separation, separate
from .pairwise import Ask, JudgeFailure, PairwiseJudge, Verdict
from .principles import draw_principles
from .priority import TIER_CONFIDENCE, UNTIERED, Priority, TierVerdict, combine, split_by_tier

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution

PASSAGE_QUESTION = "Which of these assistant responses better follows this passage of the constitution?"
PASSAGE_PREFIX = "passage:"  # the id of a tier's PASSAGE_QUESTION: "passage:<tier>"
QUOTE = 'The assistant\'s constitution says, in "{heading}":\n\n{text}\n\n{question}'


@dataclass(frozen=True)
class Quoted:
    """A comparison question as the judge is shown it: the passage routed for its tier, quoted whole, then the
    question (`question` holds both). `passage` is None where there is no passage to quote (a list constitution)."""

    id: str
    question: str
    tier: str | None
    passage: str | None = None
    passage_hash: str | None = None
    bare: str = ""  # the question alone, without the quoted passage

    @property
    def preface(self) -> str:
        """The quoted passage that opens `question` ("" where none is quoted)."""
        return self.question[: len(self.question) - len(self.bare)].rstrip() if self.passage is not None else ""

    @property
    def key(self) -> str:
        """How a label records it: the question id, and "@<passage>" where it quoted one."""
        return self.id if self.passage is None else f"{self.id}@{self.passage}"

    @property
    def hash(self) -> str:
        """What the judge was shown of the constitution: the quoted passage and the question."""
        from ..constitution.model import short_hash

        return short_hash({"question": self.question})


def quote(question: ComparisonPrinciple, passage: Any | None, behaviours: str = "") -> Quoted:
    """QUESTION shown after PASSAGE (a constitution.passages.Passage), or alone where PASSAGE is None; BEHAVIOURS (the
    note of the instructable behaviours in force) between them."""
    asked = f"{behaviours}\n\n{question.question}" if behaviours else question.question
    if passage is None:
        return Quoted(question.id, asked, question.tier, bare=question.question)
    text = QUOTE.format(heading=passage.heading, text=passage.text.strip(), question=asked)
    return Quoted(question.id, text, question.tier, passage.id, passage.hash, question.question)


def tier_pools(constitution: Constitution) -> list[tuple[str, list[ComparisonPrinciple]]]:
    """(tier, its questions), highest first; questions without a tier last, as UNTIERED. A document's tier without a
    question of its own asks PASSAGE_QUESTION about the passage routed for it."""
    from ..constitution import ComparisonPrinciple

    pools: list[tuple[str, list[ComparisonPrinciple]]] = []
    for tier in constitution.priorities:
        own = list(constitution.comparisons_in(tier))
        if not own and any(p.tier == tier and p.routed for p in constitution.passages):
            own = [ComparisonPrinciple(f"{PASSAGE_PREFIX}{tier}", PASSAGE_QUESTION, tier)]
        if own:
            pools.append((tier, own))
    loose = [q for q in constitution.comparisons if q.tier is None]
    if loose:
        pools.append((UNTIERED, loose))
    return pools


@lru_cache(maxsize=8)
def _router(constitution: Constitution, ranker: Ranker):
    from ..constitution.routing import Router, Routing

    return Router(constitution, Routing.relevance, ranker)


def routed_passages(constitution: Constitution, conversation: Sequence[dict], extra: str = "",
                    ranker: Ranker | str = DEFAULT_RANKER) -> dict[str | None, Any]:
    """Per tier (None: the questions without a tier), the routed passage of a document that ranks highest against the
    conversation under RANKER (ties: the first in the document, so a conversation sharing no word with a tier gets its
    opening passage); {} for a list constitution. Passages whose `when` the conversation rules out (operator,
    no-operator) are left out."""
    if not constitution.is_document:
        return {}
    from ..constitution.model import applies
    from ..constitution.routing import conversation_text

    operator = any(m.get("role") == "system" for m in conversation)
    router = _router(constitution, Ranker(ranker))
    eligible = [p for p in constitution.critiques if p.passage is not None
                and (p.when in ("always", "refused", "answered") or applies(p.when, "answer", operator))]
    ranked = router.rank("\n".join(x for x in (conversation_text(list(conversation)), extra) if x), eligible)
    out: dict[str | None, Any] = {}
    for r in ranked:
        passage = constitution.passage_by_id(r.id)
        out.setdefault(passage.tier, passage)
        out.setdefault(None, passage)
    return out


def quoted_questions(constitution: Constitution, questions: Sequence[ComparisonPrinciple], conversation: Sequence[dict],
                     behaviours: dict | None = None, ranker: Ranker | str = DEFAULT_RANKER) -> list[Quoted]:
    """QUESTIONS as the judge is shown them for CONVERSATION: each after the passage routed (by RANKER) for its tier,
    told the instructable behaviours in force (BEHAVIOURS: constitution.behaviours.in_force; from the conversation
    where None)."""
    from ..constitution import behaviours as bh

    states = bh.in_force(constitution, conversation) if behaviours is None else behaviours
    passages = routed_passages(constitution, conversation, bh.switched_text(constitution, states), ranker)
    told = bh.note(constitution, states)
    return [quote(q, passages.get(q.tier), told) for q in questions]


def askable(constitution: Constitution) -> int:
    """How many questions the judge can ask under this constitution (0: label-prefs cannot judge)."""
    return sum(len(pool) for _, pool in tier_pools(constitution))


def principles_for(constitution: Constitution, k: int, seed: int, key: str, priority: Priority | str,
                   conversation: Sequence[dict] | None = None, behaviours: dict | None = None, ranker: Ranker | str = DEFAULT_RANKER) -> list:
    """The questions one comparison (KEY: the row and the pair) asks; see the module docstring. With CONVERSATION,
    each as the judge is shown it (`Quoted`: after the passage RANKER routes for its tier, told the BEHAVIOURS in
    force)."""
    pools = tier_pools(constitution)
    if Priority(priority) is Priority.flat or not constitution.priorities:
        every = list(constitution.comparisons) or [q for _, pool in pools for q in pool]
        drawn = draw_principles(every, k or len(every), seed, key)
    else:
        drawn = [q for tier, pool in pools for q in draw_principles(pool, k or len(pool), seed, f"{key}|{tier}")]
    return drawn if conversation is None else quoted_questions(constitution, drawn, conversation, behaviours, ranker)


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
    asked: list = field(default_factory=list)  # the questions as the judge was shown them (Quoted, or the constitution's)

    def passage_of(self, question_id: str) -> str | None:
        """The passage the question QUESTION_ID quoted (None: none)."""
        return next((getattr(q, "passage", None) for q in self.asked if q.id == question_id), None)


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
            asked = list(asks[n].principles)
            if split is None:
                out.append(Decision(combined.p_x, combined.decided_by, tiers, verdict.p_x, verdict, gate, None, asked))
                continue
            # The gate's decision: the confidence is the probability that the rejected response crosses the line.
            p_x = 1.0 - split.p_violation if split.loser == "x" else split.p_violation
            out.append(Decision(p_x, f"hard-constraint:{split.constraint}", tiers, verdict.p_x, verdict, gate, split, asked))
        return out


def units_used(constitution: Constitution, principle_ids: Sequence[str], asked: Sequence = ()) -> dict:
    """What a verdict was made from, with content hashes, so `--amend` can tell whether a changed constitution
    touches it: the comparison questions asked (`comparisons`), each question as the judge was shown it with the passage
    it quoted (`questions`: "<question>@<passage>" -> hash; ASKED holds them), the passages quoted (`passages`), what
    the gate asked of every hard constraint (the gate checks them all) and the order of the tiers."""
    from .gate import constraint_hashes

    ids = set(principle_ids)
    out: dict = {"comparisons": {q.id: q.hash for q in constitution.comparisons if q.id in ids}}
    shown = [q for q in asked if q.id in ids]
    if shown:
        out["questions"] = {q.key: q.hash for q in shown if isinstance(q, Quoted)}
        passages = {q.passage: q.passage_hash for q in shown if isinstance(q, Quoted) and q.passage is not None}
        if passages:
            out["passages"] = passages
            out["passage_tokens"] = constitution.passage_tokens
    if constitution.hard_constraints:
        out["constraints"] = constraint_hashes(constitution)
    if constitution.priorities:
        out["priorities"] = list(constitution.priorities)
    return out


def shown_questions(constitution: Constitution, used: dict, behaviours: dict | None = None) -> dict[str, str]:
    """For each question a verdict recorded (USED: its `used`), the hash of that question as the judge would be shown
    it now (its passage, under the recorded passage budget, told the BEHAVIOURS the verdict recorded); a question or
    passage no longer there is left out."""
    from ..constitution import behaviours as bh
    from ..constitution.requests import sized
    from ..errors import ConstitutionError

    told = bh.note(constitution, behaviours or {}) if behaviours else ""
    budget = used.get("passage_tokens")
    if constitution.is_document and isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        constitution = sized(constitution, budget)
    pool = {q.id: q for _, questions in tier_pools(constitution) for q in questions}
    out: dict[str, str] = {}
    for key in used.get("questions", {}):
        qid, _, pid = str(key).partition("@")
        if qid not in pool:
            continue
        try:
            passage = constitution.passage_by_id(pid) if pid else None
        except ConstitutionError:
            continue
        out[key] = quote(pool[qid], passage, told).hash
    return out
