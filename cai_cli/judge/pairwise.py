"""The one pairwise AI judge: asks (is x better than y, by these principles?) in, verdicts out. Both orders, the
ensemble over principles, the clamp, chain of thought; `cai label-prefs` and `cai eval` both judge through it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import CaiError, choice
from .maths import clamp_p, ensemble, logodds, orders_disagree, pair_logodds, sigmoid
from .principles import SALT
from .questions import (
    ANSWER_PREFIX,
    COT_ANSWER_PREFIX,
    OPTIONS,
    PLAIN_COT_ANSWER,
    PLAIN_OPTIONS,
    JudgeExample,
    JudgeFormat,
    judge_messages,
    plain_prompt,
    with_plain_stop,
)


@dataclass(frozen=True)
class JudgeConfig:
    """How the judge asks: the layout, both orders or one, chain of thought, the clamp, worked examples."""

    fmt: JudgeFormat = JudgeFormat.chat
    swap: bool = True
    cot: bool = False
    clamp: tuple[float, float] | None = None
    examples: tuple[JudgeExample, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "fmt", choice(JudgeFormat, self.fmt, "--format"))

    def settings(self) -> dict:
        return {"format": self.fmt.value, "swap": self.swap, "cot": self.cot, "clamp": list(self.clamp) if self.clamp else None, "judge_examples": len(self.examples)}


@dataclass
class Ask:
    """One comparison: is x better than y in CONVERSATION, by each of PRINCIPLES (each has .id and .question)?"""

    conversation: list[dict]
    x: str
    y: str
    principles: list
    key: str = ""  # names the comparison, for the chain of thought's per-question seeds


@dataclass
class Vote:
    principle: str
    x_first: bool
    p_first: float  # P(the response shown as (A) is better), as the judge said it (never clamped)
    reasoning: str | None = None


@dataclass
class Verdict:
    p_x: float  # P(x beats y): the mean over principles of each one's (clamped) probability
    principles: dict[str, float]  # per principle: P(x beats y), its two orders combined, then clamped
    votes: list[Vote]
    orders_agreed: bool | None  # every principle's two orders favoured the same response (None: one order)


@dataclass
class JudgeFailure:
    reason: str


class PairwiseJudge:
    """Judges Asks on an engine. `chat(conversations, seeds)` and `complete(prompts, seeds)` generate the
    chain of thought (defaults: the engine's own, with SAMPLING); pass a stage's counting wrappers to
    have its tokens counted."""

    def __init__(self, engine, config: JudgeConfig, sampling=None, chat: Callable | None = None, complete: Callable | None = None):
        self.engine = engine
        self.cfg = config
        self.sampling = sampling
        self._chat = chat or (lambda convs, seeds: engine.chat(convs, sampling, seeds=seeds))
        self._complete = complete
        if config.cot and config.fmt is JudgeFormat.plain and complete is None:
            if not callable(getattr(engine, "complete", None)):
                raise CaiError(f"--format plain --cot: the {getattr(engine, 'name', 'chosen')} engine cannot continue plain text (it has no `complete`); use --format chat")
            self._complete = lambda prompts, seeds: engine.complete(prompts, with_plain_stop(sampling), seeds=seeds)

    def render(self, conv, question: str, first: str, second: str) -> str:
        """The judge's prompt up to where it continues (its answer, or its reasoning with --cot)."""
        if self.cfg.fmt is JudgeFormat.plain:
            return plain_prompt(conv, question, first, second, self.cfg.examples, self.cfg.cot)
        return _head(self.engine.render_chat(judge_messages(conv, question, first, second, self.cfg.examples, self.cfg.cot)))

    def prompt_tokens(self, conv, question: str, first: str, second: str) -> int:
        """About how many tokens one question takes (for checking it fits the judge's context)."""
        if self.cfg.fmt is JudgeFormat.chat:
            return self.engine.count_tokens(judge_messages(conv, question, first, second, self.cfg.examples, self.cfg.cot))
        tok = getattr(self.engine, "tokenizer", None)
        text = self.render(conv, question, first, second)
        if tok is not None:
            return len(tok(text, add_special_tokens=False)["input_ids"])
        return self.engine.count_tokens([{"role": "user", "content": text}])

    def judge(self, asks: Sequence[Ask]) -> list[Verdict | JudgeFailure]:
        """One Verdict (or JudgeFailure) per Ask; identical x and y should not be asked (they tie by definition)."""
        jobs = []  # (ask index, principle, x shown first?)
        for n, ask in enumerate(asks):
            for p in ask.principles:
                jobs.append((n, p, True))
                if self.cfg.swap:
                    jobs.append((n, p, False))
        if not jobs:
            return [JudgeFailure("no principle to ask") for _ in asks]
        prompts = []
        for n, p, x_first in jobs:
            a = asks[n]
            first, second = (a.x, a.y) if x_first else (a.y, a.x)
            prompts.append(self.render(a.conversation, p.question, first, second))
        reasoning: list[str | None] = [None] * len(jobs)
        failed: dict[int, str] = {}
        if self.cfg.cot:
            from ..rows import row_seed

            seed = getattr(self.sampling, "seed", 0)
            seeds = [row_seed(seed, SALT, asks[n].key, p.id, "x" if x_first else "y") for n, p, x_first in jobs]
            if self.cfg.fmt is JudgeFormat.plain:
                assert self._complete is not None  # __init__ sets it for --format plain --cot, or refuses the engine
                comps = self._complete(prompts, seeds)
            else:
                comps = self._chat([judge_messages(asks[n].conversation, p.question, *((asks[n].x, asks[n].y) if xf else (asks[n].y, asks[n].x)), self.cfg.examples, True) for n, p, xf in jobs], seeds)
            said = [(comp.texts[0] if comp.texts else "").strip() for comp in comps]
            for k, comp in enumerate(comps):
                if comp.error:
                    failed.setdefault(jobs[k][0], f"the judge's reasoning failed: {comp.error}")
                reasoning[k] = said[k]
            after = PLAIN_COT_ANSWER if self.cfg.fmt is JudgeFormat.plain else COT_ANSWER_PREFIX
            prompts = [prompts[k] + (" " if self.cfg.fmt is JudgeFormat.plain and said[k] else "") + said[k] + after for k in range(len(jobs))]
        elif self.cfg.fmt is JudgeFormat.chat:
            prompts = [p + ANSWER_PREFIX for p in prompts]
        options = list(PLAIN_OPTIONS if self.cfg.fmt is JudgeFormat.plain else OPTIONS)
        # Similar lengths side by side, so an engine that batches in order pads little.
        order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
        scores: list = [None] * len(prompts)
        for k, s in zip(order, self.engine.score_options([prompts[k] for k in order], options)):
            scores[k] = s

        by_ask: dict[int, list] = {}
        for k, (n, p, x_first) in enumerate(jobs):
            d = logodds(scores[k])
            if math.isnan(d):
                failed.setdefault(n, "the judge gave no probability to either option (A) or (B)")
                continue
            by_ask.setdefault(n, []).append((p, x_first, d, reasoning[k]))
        return [JudgeFailure(failed[n]) if n in failed else self._combine(by_ask[n]) for n in range(len(asks))]

    def _combine(self, asked: list) -> Verdict:
        votes, per_principle, agreed = [], {}, []
        step = 2 if self.cfg.swap else 1  # jobs were made principle by principle, x first then (with swap) y first
        for s in range(0, len(asked), step):
            group = asked[s : s + step]
            p = group[0][0]
            d_x_first = group[0][2]
            d_y_first = group[1][2] if self.cfg.swap else None
            per_principle[p.id] = clamp_p(sigmoid(pair_logodds(d_x_first, d_y_first)), self.cfg.clamp)
            if d_y_first is not None:
                agreed.append(not orders_disagree(d_x_first, d_y_first))
            for _, x_first, d, why in group:
                votes.append(Vote(p.id, x_first, sigmoid(d), why))
        return Verdict(ensemble(list(per_principle.values())), per_principle, votes, all(agreed) if self.cfg.swap else None)


def _head(text: str) -> str:
    # A template-less (base) model's prompt ends on "Assistant:"; the answer must not run into it.
    return text if not text or text[-1].isspace() else text + " "
