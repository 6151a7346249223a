"""What `cai plan` plans (PlanConfig) and what it comes to (Plan: per stage, its StageLoad)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PREFILL_FACTOR = 20.0
SAMPLE_ROWS = 32


@dataclass
class PlanConfig:
    """The pipeline planned: SL-CAI (generate, then --rounds of critique and revise) and RL-CAI (generate --n, label-prefs)."""

    rounds: int = 2
    n: int = 2  # candidates per prompt for label-prefs; 0: no RL-CAI half
    principles: int | str = 4  # per comparison; as given ("all"), plan_command settles it against the constitution
    swap: bool = True
    cot: bool = False
    few_shot: int | None = None
    output_tokens: float | None = None  # mean tokens per generated text; None: measured, else max_tokens
    rows: int | None = None  # rows to plan for; None: the input's
    sample: int = SAMPLE_ROWS
    synthesize: Any = None  # a stages.synthesize.Synthesize: plan it first, over every request it would write


@dataclass
class StageLoad:
    """One stage over every row."""

    stage: str
    generations: float = 0.0  # texts the model writes
    judge_calls: float = 0.0  # questions the judge scores (label-prefs: principles x orders x pairs)
    prompt_tokens: float = 0.0
    output_tokens: float = 0.0
    seconds: float | None = None  # device-seconds, measured here (--measure)
    gpu_seconds: float | None = None


@dataclass
class Plan:
    rows: int
    sampled: int
    model: str
    output_tokens: float
    output_tokens_source: str  # "--output-tokens", "measured", "--max-tokens (an upper bound)"
    stages: list[StageLoad] = field(default_factory=list)
    throughput: float | None = None
    prefill_throughput: float | None = None
    gpus: int = 1
    price: float | None = None
    measured_rows: int = 0

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(sum(getattr(s, k) for s in self.stages)) for k in ("generations", "judge_calls", "prompt_tokens", "output_tokens")}
        if all(s.gpu_seconds is not None for s in self.stages):
            gpu_seconds = sum(s.gpu_seconds or 0.0 for s in self.stages)
            out["gpu_hours"] = gpu_seconds / 3600
            out["hours"] = gpu_seconds / 3600 / self.gpus
            if self.price is not None:
                out["cost"] = out["gpu_hours"] * self.price
        return out

    def as_dict(self) -> dict:
        return {
            "kind": "cai-plan",
            "rows": self.rows,
            "sampled": self.sampled,
            "model": self.model,
            "output_tokens_per_text": round(self.output_tokens, 1),
            "output_tokens_source": self.output_tokens_source,
            "throughput": self.throughput,
            "prefill_throughput": self.prefill_throughput,
            "gpus": self.gpus,
            "price_per_gpu_hour": self.price,
            "measured_rows": self.measured_rows,
            "stages": [{k: _rounded(k, v) for k, v in asdict(s).items()} for s in self.stages],
            "totals": {k: _rounded(k, v) for k, v in self.totals().items()},
        }


def _rounded(key: str, value: Any) -> Any:
    """Counts as whole numbers; hours, seconds and money to six decimals."""
    if not isinstance(value, float):
        return value
    return round(value) if key in ("generations", "judge_calls", "prompt_tokens", "output_tokens") else round(value, 6)
