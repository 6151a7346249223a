"""What the three trainers share: options → trl config, hardware defaults, LoRA, resume, metrics, the final model folder."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CaiError

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
RECORD = "cai-train.json"
# LoRA learns a low-rank update from zero, so it wants a larger step than trl's full fine-tuning defaults.
LORA_LR = {"sft": 2e-4, "rm": 1e-4, "dpo": 1e-5, "grpo": 1e-5, "rloo": 1e-5}
LORA_DEFAULTS = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


@dataclass
class TrainOptions:
    """The options every trainer shares; None means "not given" (the YAML file or cai's default decides)."""

    output: str
    model: str | None = None
    lora: bool | None = None
    epochs: float | None = None
    max_steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    max_length: int | None = None
    seed: int | None = None
    config: str | None = None
    progress: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # trainer-specific flags, already mapped to trl field names


def say(msg: str) -> None:
    if _is_main_process():
        print(f"cai: {msg}", file=sys.stderr, flush=True)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def prepare_output(path: str) -> Path:
    """DIR must be new, empty, or a folder an earlier `cai train-*` run made (we delete and replace files in it)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CaiError(f"-o {path}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / CHECKPOINTS).is_dir() or (out / RECORD).exists() or (out / METRICS).exists()
        if not ours:
            raise CaiError(f"-o {path}: the folder exists and was not made by `cai train-*`; choose a new or empty folder")
    return out


def read_yaml_config(path: str | None) -> tuple[dict, dict]:
    """(trl config fields, LoRA fields) from --config YAML."""
    if path is None:
        return {}, {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaiError(f"--config {path}: no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise CaiError(f"--config {path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise CaiError(f"--config {path}: expected a mapping of trl config fields, got {type(data).__name__}")
    lora = data.pop("lora", None) or {}
    if not isinstance(lora, dict):
        raise CaiError(f"--config {path}: 'lora' must be a mapping of peft LoraConfig fields")
    return data, lora


def _check_keys(keys, allowed: set[str], path: str, what: str) -> None:
    import difflib

    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise CaiError(f"--config {path}: unknown key '{key}' for {what}{hint}")


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def precision_defaults() -> dict:
    """trl defaults to bf16, which on a CPU without native bf16 is many times slower than float32."""
    import torch

    if not torch.cuda.is_available():
        # Memory is rarely what limits a CPU run, and recomputing activations costs a fifth of the time or more.
        values = {"bf16": False, "fp16": False, "gradient_checkpointing": False, "dataloader_pin_memory": False}
        if not torch.backends.mps.is_available():
            values["use_cpu"] = True  # without it, `torchrun --nproc_per_node N` on CPUs trains N unrelated copies
        return values
    if torch.cuda.is_bf16_supported():
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def choose_lora(requested: bool | None, model_dir: str) -> tuple[bool, str]:
    """LoRA unless asked otherwise, or unless a GPU is present that holds full fine-tuning (~16 bytes a weight)."""
    if requested is not None:
        return requested, "--lora" if requested else "--full"
    if not has_gpu():
        return True, "no GPU"
    import torch

    need = 16 * _parameter_count(model_dir)
    have = torch.cuda.get_device_properties(0).total_memory
    if need > 0.8 * have:
        return True, f"full fine-tuning needs ~{need / 2**30:.0f} GiB, the GPU has {have / 2**30:.0f} GiB"
    return False, "the GPU holds full fine-tuning"


def _parameter_count(model_dir: str) -> int:
    files = list(Path(model_dir).glob("*.safetensors")) + list(Path(model_dir).glob("*.bin"))
    size = sum(f.stat().st_size for f in files)
    try:
        dtype = json.loads((Path(model_dir) / "config.json").read_text()).get("dtype") or "bfloat16"
    except (OSError, ValueError):
        dtype = "bfloat16"
    return size // (4 if "32" in str(dtype) else 2)


def lora_config(fields: dict, task_type: str, path: str | None):
    from peft import LoraConfig

    allowed = {f.name for f in dataclasses.fields(LoraConfig)}
    _check_keys(fields, allowed, path or "", "peft LoraConfig")
    values: dict[str, Any] = dict(LORA_DEFAULTS)
    values.update(fields)
    values["task_type"] = task_type
    try:
        return LoraConfig(**values)
    except (TypeError, ValueError) as exc:
        raise CaiError(f"--config {path}: lora: {str(exc).splitlines()[0]}") from None


def build_config(config_cls, kind: str, opts: TrainOptions, yaml_fields: dict, lora: bool, defaults: dict | None = None):
    """cai's defaults < the YAML file < options given on the command line; unknown YAML keys fail."""
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    _check_keys(yaml_fields, allowed, opts.config or "", f"trl {config_cls.__name__}")
    if "output_dir" in yaml_fields:
        raise CaiError(f"--config {opts.config}: 'output_dir' is set by -o (checkpoints go to DIR/{CHECKPOINTS})")
    values: dict[str, Any] = {
        "report_to": [],
        "logging_steps": 1,
        "save_total_limit": 2,
        "disable_tqdm": True,
        "seed": 0,
    }
    values.update(precision_defaults())
    if lora:
        values["learning_rate"] = LORA_LR[kind]
    values.update(defaults or {})
    values.update(yaml_fields)
    given = {
        "num_train_epochs": opts.epochs,
        "max_steps": opts.max_steps,
        "learning_rate": opts.lr,
        "per_device_train_batch_size": opts.batch_size,
        "gradient_accumulation_steps": opts.grad_accum,
        "max_length": opts.max_length,
        "seed": opts.seed,
    }
    given.update(opts.extra)
    values.update({k: v for k, v in given.items() if v is not None})
    if opts.batch_size is not None and "per_device_eval_batch_size" in allowed and "per_device_eval_batch_size" not in yaml_fields:
        values["per_device_eval_batch_size"] = opts.batch_size
    values["output_dir"] = str(Path(opts.output) / CHECKPOINTS)
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise CaiError(f"training options: {str(exc).strip().splitlines()[0]}") from None


def resolve_base(model: str | None) -> str:
    from ..models import resolve_model

    return resolve_model(model)


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def finished_steps(out: Path, checkpoint: str | None, args) -> int | None:
    """The step count when DIR holds a finished run that these settings would not extend, else None.

    Resuming a checkpoint that already reached its end would still run one more step in transformers, so a rerun of a
    finished command (a Makefile target, say) is stopped here instead.
    """
    if checkpoint is None or not (out / RECORD).exists() or not (out / "config.json").exists():
        return None
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    step, planned = state.get("global_step", 0), state.get("max_steps", 0)
    if step < planned:
        return None
    if args.max_steps > 0:
        return step if args.max_steps <= step else None
    return step if args.num_train_epochs <= state.get("num_train_epochs", 0) else None


def run_training(trainer, out: Path, command: str, base: str, lora: bool, model_kind: str, record: dict, progress: bool | None) -> dict:
    """Train (resuming from DIR/checkpoints), then write the merged model and tokenizer into DIR, config.json last."""
    from transformers import PrinterCallback, ProgressCallback

    from .callbacks import MetricsCallback, StderrProgress

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    trainer.add_callback(MetricsCallback(out / METRICS))
    trainer.add_callback(StderrProgress(command, progress))
    if trainer.args.world_size > 1:
        say(f"{command}: {trainer.args.world_size} processes, {trainer.args.per_device_train_batch_size} examples each per step")
    resume = last_checkpoint(out)
    done = finished_steps(out, resume, trainer.args)
    if done is not None:
        say(f"{command}: {out} already holds this model, trained for {done} steps; raise --max-steps or --epochs to train on")
        return {"steps": done, "train_loss": json.loads((out / RECORD).read_text()).get("train_loss"), "seconds": 0.0, "skipped": True}
    if resume:
        say(f"{command}: resuming from {resume}")
    started = time.monotonic()
    # Training writes no data; anything a library prints belongs with the logs on stderr, not in a pipe.
    with contextlib.redirect_stdout(sys.stderr):
        result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.monotonic() - started
    final_tmp = out / ".final.tmp"
    if trainer.is_world_process_zero():  # leftovers of a run that crashed while saving
        shutil.rmtree(final_tmp, ignore_errors=True)
        shutil.rmtree(out / ".merged.tmp", ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(final_tmp))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        merged = _merge(final_tmp, base, model_kind) if (final_tmp / "adapter_config.json").exists() else final_tmp
        _install(merged, out)
        shutil.rmtree(final_tmp, ignore_errors=True)
        if merged != final_tmp:
            shutil.rmtree(merged, ignore_errors=True)
        record = dict(record, command=command, base_model=base, lora=lora, steps=trainer.state.global_step,
                      train_loss=result.training_loss, seconds=round(seconds, 1), finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        (out / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    trainer.accelerator.wait_for_everyone()
    return {"steps": trainer.state.global_step, "train_loss": result.training_loss, "seconds": seconds}


def _merge(adapter_dir: Path, base: str, model_kind: str) -> Path:
    """Fold the LoRA update into the base weights, so DIR loads anywhere without peft (vLLM included)."""
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
    target = adapter_dir.with_name(".merged.tmp")
    shutil.rmtree(target, ignore_errors=True)
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target


def _install(src: Path, out: Path) -> None:
    """Replace DIR's model files with SRC's. config.json goes first out and last in: DIR is a model only when complete."""
    keep = {CHECKPOINTS, METRICS, RECORD, src.name, ".merged.tmp", ".final.tmp"}
    (out / "config.json").unlink(missing_ok=True)
    for old in out.iterdir():
        if old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    names = sorted((p.name for p in src.iterdir() if p.name != "training_args.bin"), key=lambda n: n == "config.json")
    for name in names:
        os.replace(src / name, out / name)


@contextlib.contextmanager
def trl_errors():
    """trl raises ValueError for option combinations it rejects; show them as one line."""
    try:
        yield
    except ValueError as exc:
        raise CaiError(f"trl refused the options: {str(exc).strip().splitlines()[0]}") from exc


def setup(kind: str, opts: TrainOptions, config_cls, task_type: str, command: str, defaults: dict | None = None):
    """(base model folder, trl config, LoRA config or None) with the choice of LoRA said on stderr."""
    yaml_fields, lora_fields = read_yaml_config(opts.config)
    base = resolve_base(opts.model)
    use_lora, why = choose_lora(opts.lora, base)
    config = build_config(config_cls, kind, opts, yaml_fields, use_lora, defaults)
    peft = lora_config(lora_fields, task_type, opts.config)  # checked even under --full, so a typo never waits
    if not use_lora:
        peft = None
    if peft is not None:
        say(f"{command}: LoRA r={peft.r} alpha={peft.lora_alpha} ({why}; --full trains every weight), merged into the saved model")
    else:
        say(f"{command}: full fine-tuning ({why})")
    return base, config, peft, use_lora
