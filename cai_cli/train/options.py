"""The options every `cai train-*` command shares: options.py's declarations, injected like the stage options and
handed to the command as a TrainOptions (its defaults: None = "not given", the YAML file or cai's default decides)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from .. import options as o
from ..common import register_command, shared_options

TRAIN_OPTIONS = {
    "output": o.OutputOpt,
    "model": o.ModelOpt,
    "lora": o.LoraOpt,
    "epochs": o.EpochsOpt,
    "max_steps": o.MaxStepsOpt,
    "lr": o.LrOpt,
    "batch_size": o.BatchOpt,
    "grad_accum": o.GradAccumOpt,
    "max_length": o.MaxLengthOpt,
    "seed": o.SeedOpt,
    "config": o.ConfigOpt,
    "progress": o.ProgressOpt,
    "restart": o.TrainRestartOpt,
}


def train_command(app: typer.Typer, name: str) -> Callable:
    """Register FN as `cai NAME`: its first parameter is the input file, the shared options arrive as `opts`."""
    from .common import TrainOptions

    shared = shared_options(TrainOptions, TRAIN_OPTIONS)
    return lambda fn: register_command(app, name, fn, shared, "opts", lambda values: TrainOptions(**values))
