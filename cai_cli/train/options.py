"""The options every `cai train-*` command shares, declared once and injected like the stage options. Light: no torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..common import register_command

TRAIN_PANEL = "Training (any trl config field: --config YAML)"

TRAIN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "output": (Annotated[str, typer.Option("--output", "-o", help="Output folder: checkpoints/, metrics.jsonl, then the final model (usable as --model).", rich_help_panel=TRAIN_PANEL)], ...),
    "model": (Annotated[str | None, typer.Option("--model", "-m", help="Base model folder or hub id. Default: the embedded SmolLM2-135M-Instruct.", rich_help_panel=TRAIN_PANEL)], None),
    "lora": (Annotated[bool | None, typer.Option("--lora/--full", help="LoRA adapters (merged on save) or every weight. Default: LoRA unless a GPU holds full fine-tuning.", show_default=False, rich_help_panel=TRAIN_PANEL)], None),
    "epochs": (Annotated[float | None, typer.Option("--epochs", min=0, help="Passes over the data (trl default 3).", rich_help_panel=TRAIN_PANEL)], None),
    "max_steps": (Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after N optimizer steps (overrides --epochs).", rich_help_panel=TRAIN_PANEL)], None),
    "lr": (Annotated[float | None, typer.Option("--lr", min=0, help="Learning rate (default: trl's, or a LoRA-sized one under LoRA).", rich_help_panel=TRAIN_PANEL)], None),
    "batch_size": (Annotated[int | None, typer.Option("--batch-size", min=1, help="Examples per device per step (trl default 8).", rich_help_panel=TRAIN_PANEL)], None),
    "grad_accum": (Annotated[int | None, typer.Option("--grad-accum", min=1, help="Gradient accumulation steps.", rich_help_panel=TRAIN_PANEL)], None),
    "max_length": (Annotated[int | None, typer.Option("--max-length", min=8, help="Longest tokenized example (trl default 1024).", rich_help_panel=TRAIN_PANEL)], None),
    "seed": (Annotated[int | None, typer.Option("--seed", help="Seed for shuffling, LoRA init, the eval split, sampling (default 0).", rich_help_panel=TRAIN_PANEL)], None),
    "config": (Annotated[str | None, typer.Option("--config", help="YAML of trl config fields (and `lora:` peft fields); command-line options win.", rich_help_panel=TRAIN_PANEL)], None),
    "progress": (Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal).", rich_help_panel=TRAIN_PANEL)], None),
    "verbose": (Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.", rich_help_panel=TRAIN_PANEL)], False),
}

InputArg = Annotated[str, typer.Argument(help="Input JSONL file ('-' reads stdin).", show_default=False)]


def train_command(app: typer.Typer, name: str) -> Callable:
    """Register FN as `cai NAME`: its first parameter is the input file, the shared options arrive as `opts`."""

    def build(values: dict):
        from .common import TrainOptions

        return TrainOptions(**{k: v for k, v in values.items() if k != "verbose"})

    return lambda fn: register_command(app, name, fn, TRAIN_OPTIONS, "opts", build)
