"""One training run into DIR: claim it, train (afresh, resuming, or on to a longer length), then the final model.

The order is what makes a crash harmless: the record says "training" before the first step, the merged model's files
move into DIR with config.json last, and only then does the record say "done" (record.py has the rules a rerun
follows). A crash anywhere before that is resumed by the same command.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CaiError
from ..output import library_writes, move_into, remove, remove_quietly, write_pretrained
from ..progress import ProgressMode
from .common import Setup, TrainOptions, say
from .crash_points import KILL_AT, kill_point
from .record import (
    CHECKPOINTS,
    DONE,
    METRICS,
    TEMPORARY,
    TRAINING,
    TrainingRun,
    begin,
    checkpoint_step,
    describe_length,
    last_checkpoint,
    length_of,
    trl_settings,
)


def start(command: str, opts: TrainOptions, plan: Setup, settings: dict, data: dict) -> TrainingRun:
    """Claim DIR with this run's fingerprint, before any model loads (record.begin says what a rerun may do)."""
    from ..resume import model_identity

    fingerprint: dict[str, Any] = {"command": command, "model": model_identity("transformers", opts.model, []),
                                   "method": "lora" if plan.lora else "full"}
    if plan.lora:
        fingerprint["lora"] = dict(plan.lora_fields)
    fingerprint["trl"] = trl_settings(plan.config, plan.passed)
    fingerprint["settings"] = settings
    fingerprint["data"] = data
    return begin(Path(opts.output), command, fingerprint, length_of(plan.config), opts.restart, plan.config, plan.peft, say)


def already_done(run: TrainingRun) -> dict:
    """The same command again on a finished folder (a Makefile rerun): nothing to do, and it says so."""
    steps = run.record.get("steps")
    say(f"{run.command}: {run.out} already holds this model, trained for {steps} steps; a larger --max-steps or "
        "--epochs trains on, --restart starts over")
    return {"steps": steps, "train_loss": run.record.get("train_loss"), "seconds": 0.0, "skipped": True}


def planned_steps(trainer) -> int:
    """How many optimizer steps this run's schedule spans, as transformers will count them."""
    args = trainer.args
    if args.max_steps > 0:
        return int(args.max_steps)
    return int(trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1])


def run_loss(history: list[dict]) -> float | None:
    """The mean training loss over every step of the run, from trl's log history (each logged loss is the mean since
    the log before it). After a resume the history holds the steps before the checkpoint too."""
    logged = sorted({int(e["step"]): float(e["loss"]) for e in history
                     if isinstance(e.get("loss"), (int, float)) and isinstance(e.get("step"), int)}.items())
    total, weight, previous = 0.0, 0, 0
    for step, loss in logged:
        total += loss * (step - previous)
        weight += step - previous
        previous = step
    return total / weight if weight else None


def _history(checkpoint: Path | None) -> list[dict]:
    """What trl had logged up to CHECKPOINT (its trainer state's log_history)."""
    if checkpoint is None:
        return []
    return json.loads((checkpoint / "trainer_state.json").read_text()).get("log_history", [])


def _continue_counters(trainer, checkpoint: Path | None) -> None:
    """trl counts the tokens it trained on in the trainer, which a new process starts at 0: go on from the checkpoint."""
    if checkpoint is None or not hasattr(trainer, "_total_train_tokens"):
        return
    tokens = [e["num_tokens"] for e in _history(checkpoint) if isinstance(e.get("num_tokens"), (int, float))]
    if tokens:
        trainer._total_train_tokens = int(tokens[-1])


def run_training(trainer, run: TrainingRun, base: str, lora: bool, model_kind: str, record: dict, progress: ProgressMode,
                 evaluate: Callable[[], dict] | None = None) -> dict:
    """Train (resuming from DIR/checkpoints), then write the merged model and tokenizer into DIR, config.json last,
    then EVALUATE's figures (every process calls it), and only then the record's "done".

    A longer run than the checkpoint's continues with the schedule extended: the scheduler is built for the new
    length and every step takes its learning rate from it (callbacks.ContinuedSchedule), never the 0 that ended the
    shorter schedule.
    """
    from transformers import PrinterCallback, ProgressCallback

    from .callbacks import ContinuedSchedule, KillPoints, MetricsCallback, StderrProgress, rewind_metrics

    out, command, main = run.out, run.command, trainer.is_world_process_zero()
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    trainer.add_callback(MetricsCallback(out / METRICS))
    shown = StderrProgress(command, progress, out / METRICS)
    trainer.add_callback(shown)
    trainer.add_callback(ContinuedSchedule())
    if os.environ.get(KILL_AT):
        trainer.add_callback(KillPoints())
    if not len(trainer.train_dataset):
        raise CaiError(f"{command}: trl left no example to train on: every one is longer than max_length "
                       f"{getattr(trainer.args, 'max_length', None)}; raise --max-length")
    length = length_of(trainer.args)
    planned = planned_steps(trainer)
    run.check_planned(planned, length)
    if run.finished and planned == run.record.get("planned_steps"):
        return already_done(run)  # the same length, asked for another way (--epochs 2 after --max-steps 8, say)
    resume = last_checkpoint(out)
    reached = (checkpoint_step(resume) or 0) if resume is not None else 0
    if run.finished and resume is None:
        raise CaiError(f"-o {out}: its checkpoints are gone, so the model cannot train on to {describe_length(length)}; "
                       "add --restart to train it from the start")
    previous = run.record.get("planned_steps")
    trainer.accelerator.wait_for_everyone()  # every process has read DIR as it was
    run.started = True
    if main:
        _tidy(out, reached)
        rewind_metrics(out / METRICS, _history(resume))
        run.write(state=TRAINING, length=length, planned_steps=planned)
    trainer.accelerator.wait_for_everyone()
    if trainer.args.world_size > 1:
        say(f"{command}: {trainer.args.world_size} processes, {trainer.args.per_device_train_batch_size} examples each per step")
    started = time.monotonic()
    if resume is not None and reached >= planned:
        # Trained to the end before a crash during the final save or merge: finish from the last checkpoint.
        say(f"{command}: {resume.name} reached step {reached} of {planned}; writing the final model")
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(resume))
        trainer.state = TrainerState.load_from_json(str(resume / "trainer_state.json"))  # an evaluation logs its step
        history = trainer.state.log_history
        steps = reached
    else:
        if resume is not None and isinstance(previous, int) and planned > previous:
            say(f"{command}: training on from {resume.name} to step {planned} (it was planned for {previous}); "
                "the learning-rate schedule is extended to the new length")
        elif resume is not None:
            say(f"{command}: resuming from {resume.name} (step {reached} of {planned})")
        _continue_counters(trainer, resume)
        # Training writes no data; anything a library prints belongs with the logs on stderr, not in a pipe.
        try:
            with contextlib.redirect_stdout(sys.stderr):
                trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
        finally:
            shown.close()
        history = trainer.state.log_history
        steps = trainer.state.global_step
    if not steps:  # no batch could be formed: nothing was trained, and the record must not say "done"
        raise CaiError(f"{command}: trl ran no training step (the data gave no full batch); nothing was trained in {out}: "
                       "give more examples or a smaller --batch-size")
    seconds = time.monotonic() - started
    final_tmp = out / TEMPORARY[0]
    trainer.accelerator.wait_for_everyone()
    library_writes(final_tmp, trainer.save_model)
    trainer.accelerator.wait_for_everyone()
    train_loss = run_loss(history)
    figures = evaluate() if evaluate is not None else {}
    if main:
        merged = merge_adapter(final_tmp, base, model_kind) if (final_tmp / "adapter_config.json").exists() else final_tmp
        kill_point("merge")
        _install(merged, run)
        remove_quietly(final_tmp)
        if merged != final_tmp:
            remove_quietly(merged)
        run.write(**record, **figures, state=DONE, base_model=base, lora=lora, steps=steps, train_loss=train_loss,
                  seconds=round(seconds, 1), finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    trainer.accelerator.wait_for_everyone()
    return {"steps": steps, "train_loss": train_loss, "seconds": seconds, **figures}


def _tidy(out: Path, reached: int) -> None:
    """Before training: drop what a crash left half-written (a checkpoint without its state, the final-save folders)."""
    for name in TEMPORARY:
        remove_quietly(out / name)
    folder = out / CHECKPOINTS
    if folder.is_dir():
        for p in folder.iterdir():
            number = p.name.removeprefix("checkpoint-")
            if p.is_dir() and number.isdigit() and int(number) > reached:
                remove(p)


def merge_adapter(adapter_dir: Path, base: str, model_kind: str, target: Path | None = None) -> Path:
    """Fold the LoRA update into the base weights, so DIR loads anywhere without peft (vLLM included); into TARGET
    (default: the run's temporary folder beside ADAPTER_DIR). `cai eval --checkpoints` merges a LoRA checkpoint so too."""
    from peft import PeftModel
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    if model_kind == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype="auto")
    else:
        model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    # A sequence-classification head reads the reward at the last non-pad token, so the pad id must travel with it.
    merged.config.pad_token_id = tokenizer.pad_token_id
    target = target or adapter_dir.with_name(TEMPORARY[1])
    remove_quietly(target)
    return write_pretrained(target, merged, tokenizer)


def _install(src: Path, run: TrainingRun) -> None:
    """Replace the model files cai wrote in DIR with SRC's. The record names them before any moves, so a crash midway
    leaves nothing cai would not know to replace; config.json goes first out and last in: DIR is a model only when
    complete. Files cai did not write are never touched."""
    out = run.out
    names = sorted((p.name for p in src.iterdir() if p.name != "training_args.bin"), key=lambda n: n == "config.json")
    ours = [n for n in run.record.get("files") or [] if isinstance(n, str)]
    foreign = [n for n in names if n not in ours and (out / n).exists()]
    if foreign:
        raise CaiError(f"-o {out}: {foreign[0]} is there and cai did not write it; move it away and rerun to install the model")
    run.write(files=sorted(set(ours) | set(names)))
    if "config.json" in ours:
        remove(out / "config.json")
    for old in ours:
        if old not in names and (out / old).is_file():
            remove(out / old)
    for i, name in enumerate(names):
        move_into(src / name, out / name)
        if i == 0:
            kill_point("install")
    run.record["files"] = names
