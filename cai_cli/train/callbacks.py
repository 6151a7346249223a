"""Trainer callbacks: metrics as JSONL in DIR, and progress on stderr. Imported only when training starts."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/inf; readers such as jq would reject the line
    return value


class MetricsCallback(TrainerCallback):
    """One JSON line per log event in DIR/metrics.jsonl, appended across resumed runs (rewind_metrics first drops what
    the checkpoint being resumed does not hold). trl's end-of-training summary is left out: it covers only the steps of
    one process's run, and cai-train.json holds the whole run's loss and time."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3)}
        record.update({k: _plain(v) for k, v in logs.items()})
        from ..output import append_rows

        append_rows(self.path, [record])


def rewind_metrics(path: Path, history: list[dict]) -> None:
    """Make DIR/metrics.jsonl what the checkpoint a run resumes from had logged (HISTORY, its trainer state's
    log_history; none when a run starts afresh): the lines after it are trained and logged again, so each step keeps
    one line. The file holds those logs in order, so they are its first lines; a line cut short by a crash goes too."""
    if not path.exists():
        return
    keep = len([e for e in history if "train_runtime" not in e])
    kept: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if len(kept) == keep:
            break
        try:
            json.loads(line)
        except ValueError:
            break
        kept.append(line + "\n")
    from ..output import write_file

    write_file(path, "".join(kept))


class ContinuedSchedule(TrainerCallback):
    """A resumed run takes its next learning rate from the schedule of this run's length.

    transformers restores the optimizer's learning rate as the checkpoint left it. After a finished run that is the
    end of its schedule (0 for trl's linear decay), so a larger --max-steps trained its first new step at 0, and a run
    one step longer learned nothing. The scheduler itself is rebuilt for the new length and only its step count is
    restored, so reading the rate from it continues the old schedule extended to the new length. After a crash (the
    same length) it gives exactly the rate the checkpoint held.
    """

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        import torch

        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
        if state.global_step == 0 or optimizer is None or not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            return
        rates = [base * rate(scheduler.last_epoch) for base, rate in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, lr in zip(optimizer.param_groups, rates):
            group["lr"] = lr
        scheduler._last_lr = rates


class KillPoints(TrainerCallback):
    """Tests only (crash_points.py): die mid-step before the optimizer step, or right after a checkpoint is written."""

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        from .crash_points import kill_point

        kill_point(f"step:{state.global_step + 1}")

    def on_save(self, args, state, control, **kwargs):
        from .crash_points import kill_point

        kill_point(f"save:{state.global_step}")


class StderrProgress(TrainerCallback):
    """Steps done of the total on stderr (progress.py): a bar on a terminal, else a line at the start and every
    LINE_SECONDS, with the latest loss and where each step's metrics go."""

    def __init__(self, command: str, mode, metrics: Path):
        self.command, self.mode, self.metrics = command, mode, metrics
        self.progress = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from ..progress import Progress

        self.progress = Progress(self.command, self.mode, state.max_steps, unit="steps", earlier=state.global_step,
                                 note=f"each step's metrics go to {self.metrics}")
        self.progress.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.reached(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs and "train_runtime" not in logs:  # not trl's end-of-training summary
            self.progress.info(_summary(logs))

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Stop the progress line's timer: at the end of training, and when training raised (trl calls no
        on_train_end then, and the timer would go on printing in a process that goes on: a library user's)."""
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None


def _summary(logs: dict) -> str:
    keys = ("loss", "eval_loss", "accuracy", "rewards/accuracies", "reward", "kl", "learning_rate")
    parts = []
    for key in keys:
        if key in logs and isinstance(logs[key], (int, float)):
            parts.append(f"{key.split('/')[-1]} {logs[key]:.4g}")
    return " ".join(parts)
