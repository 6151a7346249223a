"""`cai plan`'s table on stdout."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import Plan


def _si(x: float) -> str:
    if x >= 1e9:
        return f"{x / 1e9:.2f}B"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    return f"{x:,.0f}"


def print_plan(plan: Plan) -> None:
    """The plan as a table on stdout (rich)."""
    from rich.console import Console
    from rich.table import Table

    timed = all(s.gpu_seconds is not None for s in plan.stages)
    title = f"cai plan: {plan.rows:,} rows ({plan.sampled} sampled), {plan.model}, {plan.output_tokens:.0f} output tokens per text ({plan.output_tokens_source})"
    table = Table(title=title, title_justify="left")
    table.add_column("stage", no_wrap=True)
    for name in ("texts written", "judge calls", "prompt tokens", "output tokens"):
        table.add_column(name, justify="right")
    if timed:
        table.add_column("GPU-hours" if not plan.measured_rows else "device-hours", justify="right", no_wrap=True)
    for s in plan.stages:
        cells = [s.stage, _si(s.generations), _si(s.judge_calls), _si(s.prompt_tokens), _si(s.output_tokens)]
        if timed:
            cells.append(f"{(s.gpu_seconds or 0.0) / 3600:,.2f}")
        table.add_row(*cells)
    totals = plan.totals()
    cells = ["total", _si(totals["generations"]), _si(totals["judge_calls"]), _si(totals["prompt_tokens"]), _si(totals["output_tokens"])]
    if timed:
        cells.append(f"{totals['gpu_hours']:,.2f}")
    table.add_row(*cells, style="bold")
    console = Console()
    console.print(table)
    if not timed:
        console.print("Give --throughput (output tokens per second per GPU) or --measure N for hours and cost.")
        return
    if plan.measured_rows:
        how = f"as measured here on {plan.measured_rows} rows"
    else:
        how = f"at {plan.throughput:g} output and {plan.prefill_throughput:g} prompt tokens/s per GPU"
    line = f"{totals['hours']:,.2f} hours on {plan.gpus} GPU{'s' if plan.gpus != 1 else ''} ({totals['gpu_hours']:,.1f} GPU-hours) {how}"
    if "cost" in totals:
        line += f"; {_money(totals['cost'])} at {_money(plan.price or 0.0)} per GPU-hour"
    console.print(line)


def _money(x: float) -> str:
    return f"${x:,.2f}" if x < 100 else f"${math.ceil(x):,}"
