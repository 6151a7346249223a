"""`cai plan --measure N`: the pipeline run here on N sample rows, stage after stage through the runner, each stage's
seconds per row timed with its engine already loaded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import PlanConfig


def measure(sample: Sequence[dict], stages: dict[str, Any], cfg: PlanConfig, n_rows: int) -> tuple[dict[str, float], float]:
    """Run the pipeline here on N_ROWS sample rows, stage after stage through the runner; per stage its
    seconds per row (the engine loaded before the clock starts), and the mean tokens per generated text."""
    from ...output import temporary_folder, write_rows
    from ...progress import ProgressMode
    from ...runner import RunOptions, run_stage

    rows = list(sample[:n_rows])
    seconds: dict[str, float] = {}
    stages["generate"].start()  # the stages share one pool: one model for the whole pipeline, loaded before any clock starts
    texts = tokens = 0.0
    with temporary_folder("cai-plan-") as tmp:
        current = tmp / "in.jsonl"
        write_rows(current, rows)
        prompts = current

        def step(label: str, stage, source: Path) -> Path:
            nonlocal texts, tokens
            target = tmp / f"{label.replace(' ', '_')}.jsonl"
            before = stage.stats.tokens_out
            started = time.monotonic()
            run_stage(stage, RunOptions(input=str(source), output=str(target), progress=ProgressMode.off, batch_size=max(1, len(rows))))
            seconds[label] = (time.monotonic() - started) / len(rows)
            if stage.stats.tokens_out > before and label != "label-prefs":
                per_row = {"generate": 1, f"generate --n {cfg.n}": cfg.n}.get(label, 1)
                texts += per_row * len(rows)
                tokens += stage.stats.tokens_out - before
            return target

        current = step("generate", stages["generate"], current)
        for r in range(1, cfg.rounds + 1):
            current = step(f"critique {r}", stages["critique"], current)
            current = step(f"revise {r}", stages["revise"], current)
        if cfg.n >= 2:
            pairs = step(f"generate --n {cfg.n}", stages["generate-n"], prompts)
            step("label-prefs", stages["label-prefs"], pairs)
    return seconds, (tokens / texts if texts else 0.0)
