"""The judge as an online reward: every sampled completion scored by the same constitutional judge `cai label-prefs`
asks (PairwiseJudge: the comparison questions, both orders, log-odds; judge.maths.yes_no_pairs for yes/no), one
reward per priority tier, each hard constraint a penalty. Pure judge logic on any engine; trl's glue is
cai_cli/train/judge_reward.py, and `cai score --judge` (stages/score.py) puts the same rewards on rows.

Rewards (names, in the order trl receives them):
- `tier:<name>` per priority tier that has comparison questions (highest first), and `tier:untiered` for the
  questions of a tiered constitution that name no tier; a constitution without priorities has one, `judge`.
  Each is a probability in [0, 1]: how good the completion is by that tier's questions (see the modes).
- `constraint:<id>` per hard constraint: -P(the completion crosses it), from one scored yes/no pair.

Modes (RewardMode), the rewards' names and weights and their costs: judge/reward_config.py.

The questions are label-prefs' (judge/tiers.py: a tier's own questions, or a document's passage question), and for a
document each is shown after the passage routed for its tier from the prompt's conversation (tiers.quoted_questions),
so every completion of a group is judged against the same passages; `passages(conversation)` says which, and the
gate quotes each constraint with the passage stating it, as everywhere.

Identical questions are asked once: answers are cached by a hash of the prompt's conversation, the completion (and
its opponent) and the question, for the life of the JudgeReward; the principles a comparison asks are drawn from
its content, so the same completion gets the same reward in training and in `cai score --judge`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CaiError
from ..rows import stable_hash
from .gate import INTRO, stating_passages, violation_probabilities
from .maths import yes_no_pairs
from .pairwise import Ask, JudgeFailure, PairwiseJudge
from .principles import draw_principles
from .questions import format_conversation
from .reward_config import JudgeRewardConfig, RewardMode, reward_names, tier_pools

if TYPE_CHECKING:
    from ..constitution import Constitution

CACHE_SIZE = 200_000  # answers kept; one is a few floats


@dataclass
class Group:
    """The completions sampled for one prompt (trl's group), with the prompt row's reference answer if any."""

    conversation: list[dict]
    completions: list[str]
    reference: str | None = None


@dataclass
class Question:
    """One thing to ask the judge, named by its cache key: a comparison of two texts (A, B, in the order of their
    hash key, by the questions in PRINCIPLES), or a yes/no about one text (POINT: by each question; GATE: each
    hard constraint)."""

    kind: str  # "pair", "point" or "gate"
    key: str
    conversation: list[dict]
    a: str
    b: str | None = None
    principles: tuple = ()


@dataclass
class JudgeCalls:
    """What the judge cost, for metrics.jsonl and the summary line."""

    questions: int = 0  # comparisons and yes/no questions answered
    cached: int = 0  # of them, answered from the cache
    prompts: int = 0  # scored prompts sent to the engine
    prompt_tokens: int = 0  # their tokens, where the engine has a tokenizer to count them with
    seconds: float = 0.0
    failed: int = 0  # questions the judge gave no probability for (their rewards are None)

    def as_metrics(self) -> dict[str, float]:
        return {"judge/questions": self.questions, "judge/cached": self.cached, "judge/prompts": self.prompts,
                "judge/prompt_tokens": self.prompt_tokens, "judge/seconds": round(self.seconds, 4), "judge/failed": self.failed}

    def add(self, other: JudgeCalls) -> None:
        for name in ("questions", "cached", "prompts", "prompt_tokens", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds


def _about(conversation: Sequence[dict], completion: str) -> str:
    """The conversation and the completion, first in every yes/no question about it (as the gate asks), so engines
    compute that shared text once."""
    return f"{INTRO}\n\n{format_conversation([*conversation, {'role': 'assistant', 'content': completion}])}"


# ---- pointwise questions ------------------------------------------------------------------------------------------

POINT_STANDARD = 'A reviewer compares possible replies to this conversation with the question: "{question}"'
MEETS = "Is the assistant's last response a good reply by that standard?"
FALLS_SHORT = "Does the assistant's last response fall short of that standard?"


def _point_pairs(conversation: list[dict], completion: str, principles: Sequence) -> list[tuple[list[dict], list[dict]]]:
    head = _about(conversation, completion)
    out = []
    for p in principles:
        preface = getattr(p, "preface", "")  # the passage a document's question quotes, before the standard
        standard = (f"{preface}\n\n" if preface else "") + POINT_STANDARD.format(question=" ".join(getattr(p, "bare", p.question).split()))
        out.append(([{"role": "user", "content": f"{head}\n\n{standard}\n{MEETS} Answer Yes or No."}],
                    [{"role": "user", "content": f"{head}\n\n{standard}\n{FALLS_SHORT} Answer Yes or No."}]))
    return out


class JudgeReward:
    """The judge's rewards for groups of completions on ENGINE (any engine with score_options).

    plan(groups) lists the questions, answer(questions) asks the engine (cached; the part several processes can
    share out), rewards(groups, answers) combines them; score(groups) does all three.
    """

    def __init__(self, engine, constitution: Constitution, config: JudgeRewardConfig | None = None):
        self.engine = engine
        self.constitution = constitution
        self.cfg = config or JudgeRewardConfig()
        self.pools = tier_pools(constitution)
        self.constraints = tuple(constitution.hard_constraints)
        self.names = reward_names(constitution)
        self.tier_of = {q.id: name for name, pool in self.pools for q in pool}
        self.stated = stating_passages(constitution)
        self.cache: OrderedDict[str, Any] = OrderedDict()
        self.calls = JudgeCalls()

    # ---- what to ask ----

    def _draw(self, key: str, conversation: list[dict]) -> tuple:
        """The questions one comparison (or one pointwise completion) asks: per tier min(K, its questions), drawn
        with KEY, which names the texts compared, so the draw is the same wherever they are judged; each as the judge
        is shown it for CONVERSATION (after its tier's routed passage, for a document)."""
        from .tiers import quoted_questions

        k = self.cfg.principles
        drawn = [q for name, pool in self.pools for q in draw_principles(pool, k or len(pool), 0, f"{key}|{name}")]
        return tuple(quoted_questions(self.constitution, drawn, conversation, ranker=self.cfg.ranker))

    def passages(self, conversation: list[dict]) -> dict[str, str]:
        """Per reward, the passage its questions quote for CONVERSATION (a document's; {} for a list), and per hard
        constraint the passage its question quotes: what the rewards of that prompt's completions were asked about."""
        from .tiers import routed_passages

        routed = routed_passages(self.constitution, conversation, ranker=self.cfg.ranker)
        out = {name: routed[pool[0].tier].id for name, pool in self.pools if pool and routed.get(pool[0].tier) is not None}
        out.update({f"constraint:{cid}": p.id for cid, p in self.stated.items() if p is not None})
        return out

    def _pair(self, conversation: list[dict], x: str, y: str) -> Question:
        a, b = sorted((x, y))
        key = stable_hash(["pair", conversation, a, b], 32)
        return Question("pair", key, conversation, a, b, self._draw(key, conversation))

    def plan(self, groups: Sequence[Group]) -> list[Question]:
        """Every question the groups need, each once, in a fixed order (every process of a run lists the same)."""
        wanted: dict[str, Question] = {}

        def add(q: Question) -> None:
            wanted.setdefault(q.key, q)

        for g in groups:
            texts = list(dict.fromkeys(g.completions))
            if self.cfg.mode is RewardMode.group:
                for i, x in enumerate(texts):
                    for y in texts[i + 1:]:
                        add(self._pair(g.conversation, x, y))
            for x in texts:
                if self.cfg.mode is RewardMode.reference:
                    if g.reference is None:
                        raise CaiError(f"--reward-mode reference: a prompt row has no {self.cfg.reference_field!r} (the reference answer)")
                    if x != g.reference:
                        add(self._pair(g.conversation, x, g.reference))
                elif self.cfg.mode is RewardMode.pointwise:
                    key = stable_hash(["point", g.conversation, x], 32)
                    add(Question("point", key, g.conversation, x, principles=self._draw(key, g.conversation)))
                if self.constraints:
                    add(Question("gate", stable_hash(["gate", g.conversation, x], 32), g.conversation, x))
        return list(wanted.values())

    # ---- asking ----

    def answer(self, questions: Sequence[Question]) -> dict[str, Any]:
        """key -> answer for each question: a comparison's {question id: P(A beats B)} (None: the judge gave no
        probability), a pointwise {question id: P(yes)}, a gate's {constraint id: P(violation)}. Every new
        question of one kind goes to the engine in one call."""
        started = time.monotonic()
        out: dict[str, Any] = {}
        new: dict[str, list[Question]] = {"pair": [], "point": [], "gate": []}
        for q in questions:
            if q.key in self.cache:
                self.cache.move_to_end(q.key)
                out[q.key] = self.cache[q.key]
                self.calls.cached += 1
            else:
                new[q.kind].append(q)
        self.calls.questions += len(questions)
        counted = _Counting(self.engine)
        if new["pair"]:
            verdicts = PairwiseJudge(counted, self.cfg.judge).judge([Ask(q.conversation, q.a, q.b or "", list(q.principles), key=q.key) for q in new["pair"]])
            for q, v in zip(new["pair"], verdicts):
                out[q.key] = None if isinstance(v, JudgeFailure) else dict(v.principles)
        yes_no: list = []
        spans = []
        for q in new["point"]:
            spans.append((q, len(yes_no)))
            yes_no += _point_pairs(q.conversation, q.a, q.principles)
        if yes_no:
            probs = yes_no_pairs(counted, yes_no)
            for q, start in spans:
                out[q.key] = {p.id: probs[start + i] for i, p in enumerate(q.principles)}
        if new["gate"]:
            from ..constitution import behaviours as bh

            told = [bh.note(self.constitution, bh.in_force(self.constitution, q.conversation)) for q in new["gate"]]
            found = violation_probabilities(counted, [(q.conversation, q.a) for q in new["gate"]], self.constraints, self.stated, told)
            for q, violations in zip(new["gate"], found):
                out[q.key] = violations
        for kind in new.values():
            for q in kind:
                self._keep(q.key, out[q.key])
                self.calls.failed += out[q.key] is None or any(v is None for v in out[q.key].values())
        self.calls.prompts += counted.prompts
        self.calls.prompt_tokens += counted.tokens
        self.calls.seconds += time.monotonic() - started
        return out

    def _keep(self, key: str, value) -> None:
        self.cache[key] = value
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)

    # ---- rewards ----

    def _beats(self, answers: dict, conversation: list[dict], x: str, y: str) -> dict[str, float] | None:
        """Per reward name (tier), P(x beats y): the mean over that tier's questions asked. None: no verdict."""
        if x == y:
            return {name: 0.5 for name, _ in self.pools}
        q = self._pair(conversation, x, y)
        found = answers.get(q.key)
        if found is None:
            return None
        by_tier: dict[str, list[float]] = {}
        for pid, p in found.items():
            by_tier.setdefault(self.tier_of[pid], []).append(p if x == q.a else 1.0 - p)
        return {name: sum(ps) / len(ps) for name, ps in by_tier.items()}

    def rewards(self, groups: Sequence[Group], answers: dict[str, Any]) -> list[list[dict[str, float | None]]]:
        """Per group, per completion: {reward name: value}, every name present (None: the judge gave no answer)."""
        out = []
        for g in groups:
            rows = []
            for i, x in enumerate(g.completions):
                parts: dict[str, float | None] = {name: None for name in self.names}
                if self.cfg.mode is RewardMode.pointwise:
                    found = answers.get(stable_hash(["point", g.conversation, x], 32)) or {}
                    by_tier: dict[str, list[float]] = {}
                    for pid, p in found.items():
                        if p is not None:
                            by_tier.setdefault(self.tier_of[pid], []).append(p)
                    parts.update({name: sum(ps) / len(ps) for name, ps in by_tier.items()})
                else:
                    opponents = [y for j, y in enumerate(g.completions) if j != i] if self.cfg.mode is RewardMode.group else [g.reference or ""]
                    wins: dict[str, list[float]] = {}
                    for y in opponents:
                        for name, p in (self._beats(answers, g.conversation, x, y) or {}).items():
                            wins.setdefault(name, []).append(p)
                    parts.update({name: sum(ps) / len(ps) for name, ps in wins.items()})
                if self.constraints:
                    gate = answers.get(stable_hash(["gate", g.conversation, x], 32)) or {}
                    for h in self.constraints:
                        p = gate.get(h.id)
                        parts[f"constraint:{h.id}"] = None if p is None else -p
                rows.append(parts)
            out.append(rows)
        return out

    def score(self, groups: Sequence[Group]) -> list[list[dict[str, float | None]]]:
        return self.rewards(groups, self.answer(self.plan(groups)))


class _Counting:
    """The engine, counting the prompts scored and (where it has a tokenizer) their tokens."""

    def __init__(self, engine):
        self._engine = engine
        self.prompts = 0
        self.tokens = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def score_options(self, prompts, options):
        self.prompts += len(prompts)
        tok = getattr(self._engine, "tokenizer", None)
        if tok is not None and prompts:
            self.tokens += sum(len(ids) for ids in tok(list(prompts), add_special_tokens=False)["input_ids"])
        return self._engine.score_options(prompts, options)
