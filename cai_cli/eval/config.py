"""What one `cai eval` runs (EvalConfig: the commands' options, parsed), and how its models are named in rows."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..constitution import Constitution
from ..engines import EngineOptions, Sampling
from ..errors import choice
from ..judge import parse_principles
from ..judge.options import JudgeEngineOptions, JudgeOptions
from ..refusal import DEFAULT_DETECTOR, Detector
from ..runner import RunOptions
from ..stats import DEFAULT_BOOTSTRAP
from .suites import Suite

EMBEDDED_LABEL = "embedded"

# How the user names each judge's model and engine, for the engines' messages (written for --model, --engine, --base-url).
JUDGE_OPTIONS = {"--model": "--judge-model", "--engine": "--judge-engine", "--base-url": "--judge-base-url"}
REFUSAL_JUDGE_OPTIONS = {**JUDGE_OPTIONS, "--model": "--refusal-judge"}


@dataclass
class EvalConfig:
    sources: list[tuple[str | None, str | None]]  # (path or None for stdin, forced eval set or None)
    engine: EngineOptions
    sampling: Sampling
    constitution: Constitution
    run: RunOptions
    judge: JudgeOptions = field(default_factory=JudgeOptions)  # what the pairwise judge asks, how its tiers combine, the gate
    judge_engine: JudgeEngineOptions = field(default_factory=JudgeEngineOptions)  # the judges' model and engine (default: the model's)
    name: str | None = None
    baseline: str | None = None  # model spec ("embedded" for the embedded model); None: no baseline
    refusal_judge: str | None = None  # model spec of the refusal judge (None: none)
    reward_model: str | None = None
    summary: str | None = None
    bootstrap: int = DEFAULT_BOOTSTRAP
    answers: bool = False  # sources hold answers already (`--answers`): nothing is generated
    baseline_field: str | None = None  # with answers: the field holding the baseline's answer
    benign_field: str | None = None  # the field marking benign rows (default: the risky_looking rules)
    suite: Suite | None = None  # --suite: every prompt file is this benchmark's published CSV (eval/suites.py)
    gold: str | None = None  # with answers: the field naming the better of the two answers (--gold-field)
    detector: Detector = DEFAULT_DETECTOR  # --detector: which refusal detector labels the answers

    def __post_init__(self):
        self.principle_count = parse_principles(self.judge.principles, len(self.constitution.comparisons) or None)  # K (0: all)
        self.suite = choice(Suite, self.suite, "--suite") if self.suite is not None else None

    @property
    def compare(self) -> bool:
        """Whether there is a baseline to compare with (and so a pairwise judge)."""
        return self.baseline_field is not None if self.answers else self.baseline is not None

    @property
    def gated(self) -> bool:
        """Whether the constitution has hard constraints, which the judge checks every answer against."""
        return bool(self.constitution.hard_constraints)

    def judge_options(self, spec: str | None) -> EngineOptions:
        """A judge's engine running SPEC (JudgeEngineOptions: --judge-engine and --judge-base-url, else the model's)."""
        return self.judge_engine.engine_options(self.engine, model=spec)


def model_label(spec: str | None) -> str:
    return EMBEDDED_LABEL if spec in (None, "", "embedded", "default") else str(spec)


def labels(cfg: EvalConfig) -> tuple[str, str | None]:
    """The names of the model and the baseline in rows, summaries and reports."""
    if cfg.answers:
        path = cfg.sources[0][0]
        return cfg.name or (Path(path).name.removesuffix(".jsonl") if path else "answers"), cfg.baseline_field
    model = cfg.name or model_label(cfg.engine.model)
    if cfg.baseline is None:
        return model, None
    base = model_label(cfg.baseline)
    return model, (f"{base} (baseline)" if base == model else base)


def say(msg: str) -> None:
    print(f"cai eval: {msg}", file=sys.stderr)
