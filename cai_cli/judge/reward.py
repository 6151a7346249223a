"""The judge as an online reward: every sampled completion scored by the same constitutional judge `cai label-prefs`
asks (PairwiseJudge: the comparison questions, both orders, log-odds; judge.maths.yes_no_pairs for yes/no), one
reward per priority tier, each hard constraint a penalty. Pure judge logic on any engine; trl's glue is
cai_cli/train/judge_reward.py, and `cai score --judge` (stages/score.py) puts the same rewards on rows.

Rewards (names, in the order trl receives them):
- `tier:<name>` per priority tier that has comparison questions (highest first), and `tier:untiered` for the
  questions of a tiered constitution that name no tier; a constitution without priorities has one, `judge`.
  Each is a probability in [0, 1]: how good the completion is by that tier's questions (see the modes).
- `constraint:<id>` per hard constraint: -P(the completion crosses it), from one scored yes/no pair.

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

The questions are label-prefs' (judge/tiers.py: a tier's own questions, or a document's passage question), and for a
document each is shown after the passage routed for its tier from the prompt's conversation (tiers.quoted_questions),
so every completion of a group is judged against the same passages; `passages(conversation)` says which, and the
gate quotes each constraint with the passage stating it, as everywhere.

Identical questions are asked once: answers are cached by a hash of the prompt's conversation, the completion (and
its opponent) and the question, for the life of the JudgeReward; the principles a comparison asks are drawn from
its content, so the same completion gets the same reward in training and in `cai score --judge`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..constitution.routing import DEFAULT_RANKER, Ranker, check_ranker
from ..errors import CaiError, ConstitutionError, choice
from ..rows import stable_hash
from .gate import INTRO, stating_passages, violation_probabilities
from .maths import yes_no_pairs
from .pairwise import Ask, JudgeConfig, JudgeFailure, PairwiseJudge
from .principles import DEFAULT_PRINCIPLES, draw_principles
from .prompts import format_conversation

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution

TIER_RATIO = 1.0 / 3.0
CONSTRAINT_WEIGHT = 2.0
UNTIERED = "untiered"
FLAT = "judge"  # the one reward of a constitution without priorities
REFERENCE_FIELD = "response"
CACHE_SIZE = 200_000  # answers kept; one is a few floats


class RewardMode(str, Enum):
    """--reward-mode: what each completion is compared with (see the module docstring for the cost of each)."""

    group = "group"  # every other completion of its group, both orders
    reference = "reference"  # the prompt row's reference answer, both orders
    pointwise = "pointwise"  # nothing: one yes/no pair per question


@dataclass(frozen=True)
class JudgeRewardConfig:
    mode: str = RewardMode.group.value
    principles: int = DEFAULT_PRINCIPLES  # questions per comparison and tier (0: all)
    reference_field: str = REFERENCE_FIELD  # the rows' reference answer, for --reward-mode reference
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    ranker: str = DEFAULT_RANKER.value  # how a document's passage is routed for each tier's questions

    def __post_init__(self):
        object.__setattr__(self, "mode", choice(RewardMode, self.mode, "--reward-mode").value)
        object.__setattr__(self, "ranker", check_ranker(choice(Ranker, self.ranker, "--ranker")).value)
        if not self.judge.swap:
            raise CaiError("the judge's rewards are asked in both orders: a reward with the judge's position bias in it would teach the policy where to stand")

    def settings(self) -> dict:
        out = {"mode": self.mode, "principles": self.principles, **self.judge.settings(), "ranker": self.ranker}
        if self.mode == RewardMode.reference:
            out["reference_field"] = self.reference_field
        return out


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
            if self.cfg.mode == RewardMode.group:
                for i, x in enumerate(texts):
                    for y in texts[i + 1:]:
                        add(self._pair(g.conversation, x, y))
            for x in texts:
                if self.cfg.mode == RewardMode.reference:
                    if g.reference is None:
                        raise CaiError(f"--reward-mode reference: a prompt row has no {self.cfg.reference_field!r} (the reference answer)")
                    if x != g.reference:
                        add(self._pair(g.conversation, x, g.reference))
                elif self.cfg.mode == RewardMode.pointwise:
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
                if self.cfg.mode == RewardMode.pointwise:
                    found = answers.get(stable_hash(["point", g.conversation, x], 32)) or {}
                    by_tier: dict[str, list[float]] = {}
                    for pid, p in found.items():
                        if p is not None:
                            by_tier.setdefault(self.tier_of[pid], []).append(p)
                    parts.update({name: sum(ps) / len(ps) for name, ps in by_tier.items()})
                else:
                    opponents = [y for j, y in enumerate(g.completions) if j != i] if self.cfg.mode == RewardMode.group else [g.reference or ""]
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
