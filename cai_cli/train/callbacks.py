"""Trainer callbacks: metrics as JSONL in DIR, and progress on stderr. Imported only when training starts."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from transformers import TrainerCallback


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/inf; readers such as jq would reject the line
    return value


class MetricsCallback(TrainerCallback):
    """One JSON line per log event in DIR/metrics.jsonl, appended across resumed runs."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3)}
        record.update({k: _plain(v) for k, v in logs.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class StderrProgress(TrainerCallback):
    """A rich progress bar on a terminal; otherwise a log line every ~10 s (every step would flood a CI log)."""

    def __init__(self, command: str, show: bool | None, every: float = 10.0):
        self.command = command
        self.tty = sys.stderr.isatty() if show is None else show
        self.every = every
        self.last_print = 0.0
        self.progress = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.tty:
            return
        from rich.progress import TextColumn

        from ..progress import progress_bar

        self.progress = progress_bar(self.command, TextColumn("{task.fields[info]}"))
        self.progress.start()
        self.task = self.progress.add_task(self.command, total=state.max_steps, completed=state.global_step, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return  # the end-of-training summary: the command prints its own
        info = _summary(logs)
        if self.progress is not None:
            self.progress.update(self.task, info=info)
            return
        now = time.monotonic()
        if now - self.last_print >= self.every or state.global_step >= state.max_steps:
            self.last_print = now
            print(f"cai {self.command}: step {state.global_step}/{state.max_steps} {info}", file=sys.stderr, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _summary(logs: dict) -> str:
    keys = ("loss", "eval_loss", "accuracy", "rewards/accuracies", "reward", "kl", "learning_rate")
    parts = []
    for key in keys:
        if key in logs and isinstance(logs[key], (int, float)):
            parts.append(f"{key.split('/')[-1]} {logs[key]:.4g}")
    return " ".join(parts)
