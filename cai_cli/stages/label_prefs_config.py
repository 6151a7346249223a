"""label-prefs' options: where the label comes from (Mode), which responses are compared (PairSource), which pairs
become rows (Pairs), and the rest of LabelConfig; each closed choice an Enum from the command line on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..constitution.routing import DEFAULT_RANKER, Ranker
from ..errors import CaiError, choice
from ..judge import DEFAULT_PRINCIPLES, DEFAULT_PRIORITY, TIER_CONFIDENCE, VIOLATION_THRESHOLD, JudgeConfig, JudgeExample, JudgeFormat, Priority


class Mode(str, Enum):
    """--mode: where the label comes from."""

    judge = "judge"  # the AI judge's soft label
    revision_wins = "revision-wins"  # the revision is chosen over the first reply (p_chosen 1.0)


class PairSource(str, Enum):
    """--pair: which responses are compared."""

    candidates = "candidates"  # `candidates`, from `generate --n N`
    initial_vs_final = "initial-vs-final"  # `initial_response` against the revised `response`


class Pairs(str, Enum):
    """--pairs: with more than two candidates, which pairs become rows."""

    best_worst = "best-worst"  # one row: best against worst by mean win probability
    all = "all"  # one row per pair


@dataclass
class LabelConfig:
    mode: Mode = Mode.judge
    pair: PairSource | None = None  # None: candidates (initial-vs-final under revision-wins)
    pairs: Pairs = Pairs.best_worst
    principles: int = DEFAULT_PRINCIPLES
    fmt: JudgeFormat = JudgeFormat.chat
    swap: bool = True
    cot: bool = False
    clamp: tuple[float, float] | None = None
    min_confidence: float | None = None
    gold: str | None = None
    examples: tuple[JudgeExample, ...] = ()
    examples_source: str | None = None
    priority: Priority = DEFAULT_PRIORITY
    tier_confidence: float = TIER_CONFIDENCE
    gate_threshold: float = VIOLATION_THRESHOLD
    ranker: Ranker = DEFAULT_RANKER  # how a document's passage is routed for each tier's question

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(fmt=self.fmt, swap=self.swap, cot=self.cot, clamp=self.clamp, examples=self.examples)

    def __post_init__(self):
        # Each choice as its Enum (a caller in Python may give the value), or one line naming the option.
        self.mode = choice(Mode, self.mode, "--mode")
        self.pairs = choice(Pairs, self.pairs, "--pairs")
        self.fmt = choice(JudgeFormat, self.fmt, "--format")
        self.priority = choice(Priority, self.priority, "--priority")
        self.ranker = choice(Ranker, self.ranker, "--ranker")
        if self.pair is None:
            self.pair = PairSource.initial_vs_final if self.mode is Mode.revision_wins else PairSource.candidates
        self.pair = choice(PairSource, self.pair, "--pair")
        if self.mode is Mode.revision_wins and self.pair is not PairSource.initial_vs_final:
            raise CaiError("--mode revision-wins compares the revision with the first reply: it needs --pair initial-vs-final")

    @property
    def source(self) -> PairSource:
        """--pair, as __post_init__ settled it."""
        assert self.pair is not None, "__post_init__ settles --pair"
        return self.pair


def responses(row: dict, pair: PairSource) -> tuple[list[str], list[str]]:
    """The responses ROW's pair compares and where each came from (recorded as chosen_source/rejected_source)."""
    if pair is PairSource.initial_vs_final:
        # The revision comes first, so an exact tie goes to it.
        return [row["response"], row["initial_response"]], ["response", "initial_response"]
    return list(row["candidates"]), [f"candidates[{i}]" for i in range(len(row["candidates"]))]
