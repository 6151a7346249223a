"""What the three trainers share before training: options → trl config, hardware defaults, LoRA, the reward model.

A run into DIR (resume, train on, merge, install) is run.py's; DIR's record (what shaped the model, how far training
got, which files cai wrote) is record.py's."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from ..errors import CaiError
from ..flags import BATCH_SIZE, MODEL, OUTPUT, RESTART, SEED, TRAIN_PANEL, Flag
from ..progress import PROGRESS, ProgressMode
from .record import CHECKPOINTS, check_folder

# LoRA learns a low-rank update from zero, so it wants a larger step than trl's full fine-tuning defaults.
LORA_LR = {"sft": 2e-4, "rm": 1e-4, "dpo": 1e-5, "grpo": 1e-4, "rloo": 1e-4}
LORA_DEFAULTS = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


class ReportTo(str, Enum):
    """--report-to: a tracker trl also sends the logged metrics to (metrics.jsonl is written whatever is chosen)."""

    tensorboard = "tensorboard"  # event files in DIR/checkpoints/runs/ (or $TENSORBOARD_LOGGING_DIR)
    trackio = "trackio"
    wandb = "wandb"


# The package each tracker needs (any one of them), and what to install.
TRACKER_PACKAGES = {ReportTo.tensorboard: (("tensorboard", "tensorboardX"), "tensorboard"), ReportTo.trackio: (("trackio",), "trackio"),
                    ReportTo.wandb: (("wandb",), "wandb")}


def check_trackers(trackers: list[ReportTo] | list[str] | None) -> list[str]:
    """The trackers asked for, each checked installed before anything loads (one line naming what to install)."""
    import importlib.util

    chosen = [ReportTo(t) for t in trackers or []]
    for tracker in chosen:
        modules, package = TRACKER_PACKAGES[tracker]
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            raise CaiError(f"--report-to {tracker.value}: the {package} package is not installed (pip install {package}); "
                           "metrics.jsonl in DIR is written anyway, and `cai report DIR` draws it")
    return [t.value for t in dict.fromkeys(chosen)]


@dataclass
class TrainOptions:
    """The options every trainer shares; None means "not given" (the YAML file or cai's default decides)."""

    output: Annotated[str, OUTPUT]
    model: Annotated[str | None, MODEL] = None
    lora: Annotated[bool | None, Flag(
        name="--lora/--full", show_default=False, panel=TRAIN_PANEL,
        help="LoRA adapters (merged on save) or every weight. Default: LoRA unless a GPU holds full fine-tuning.",
    )] = None
    epochs: Annotated[float | None, Flag(min=0, help="Passes over the data (trl default 3).", panel=TRAIN_PANEL)] = None
    max_steps: Annotated[int | None, Flag(min=1, help="Stop after N optimizer steps (overrides --epochs).", panel=TRAIN_PANEL)] = None
    lr: Annotated[float | None, Flag(min=0, help="Learning rate. Default: trl's under --full; under LoRA " + ", ".join(
        f"{kind} {lr:.0e}".replace("e-0", "e-") for kind, lr in LORA_LR.items()) + " (grpo's changed 10 of 16 held-out greedy answers of `make demo`'s model in 16 steps).", panel=TRAIN_PANEL)] = None
    batch_size: Annotated[int | None, BATCH_SIZE] = None
    grad_accum: Annotated[int | None, Flag(min=1, help="Gradient accumulation steps.", panel=TRAIN_PANEL)] = None
    max_length: Annotated[int | None, Flag(min=8, help="Longest tokenized example (trl default 1024).", panel=TRAIN_PANEL)] = None
    seed: Annotated[int | None, SEED] = None
    config: Annotated[str | None, Flag(help="YAML of trl config fields (and `lora:` peft fields); command-line options win.", panel=TRAIN_PANEL)] = None
    progress: Annotated[ProgressMode, PROGRESS] = ProgressMode.auto
    restart: Annotated[bool, RESTART] = False
    report_to: Annotated[list[ReportTo] | None, Flag(
        panel=TRAIN_PANEL, help="Also send the logged metrics to this tracker through trl (repeatable; its package must be installed). "
        "Off by default: DIR/metrics.jsonl is always written, and `cai report DIR` draws it.",
    )] = None
    extra: dict[str, Any] = field(default_factory=dict)  # trainer-specific flags, already mapped to trl field names


def say(msg: str) -> None:
    if _is_main_process():
        print(f"cai: {msg}", file=sys.stderr, flush=True)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def prepare_output(path: str) -> Path:
    """-o DIR must be new, empty, or a folder whose cai-train.json says `cai train-*` made it (checked before any work)."""
    return check_folder(path)


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


def config_values(config_cls, kind: str, opts: TrainOptions, yaml_fields: dict, lora: bool, defaults: dict | None = None) -> dict:
    """The trl fields cai passes: cai's defaults < the YAML file < options given on the command line; unknown or
    mistyped YAML keys fail."""
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    _check_keys(yaml_fields, allowed, opts.config or "", f"trl {config_cls.__name__}")
    if "output_dir" in yaml_fields:
        raise CaiError(f"--config {opts.config}: 'output_dir' is set by -o (checkpoints go to DIR/{CHECKPOINTS})")
    _check_types(yaml_fields, config_cls, opts.config or "")
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
    if opts.report_to:
        values["report_to"] = check_trackers(opts.report_to)
        values.setdefault("run_name", Path(opts.output).name)  # the tracker's name for the run, unless the YAML names it
    if opts.batch_size is not None and "per_device_eval_batch_size" in allowed and "per_device_eval_batch_size" not in yaml_fields:
        values["per_device_eval_batch_size"] = opts.batch_size
    values["output_dir"] = str(Path(opts.output) / CHECKPOINTS)
    return values


def build_config(config_cls, kind: str, opts: TrainOptions, yaml_fields: dict, lora: bool, defaults: dict | None = None):
    values = config_values(config_cls, kind, opts, yaml_fields, lora, defaults)
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise CaiError(f"training options: {str(exc).strip().splitlines()[0]}") from None


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _check_types(fields: dict, config_cls, path: str) -> None:
    """A YAML value of the wrong type (`num_train_epochs: two`) stops here, not as a traceback deep in training.
    Only fields typed as plain scalars are checked; trl checks the rest when it builds its config."""
    import types
    import typing

    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # noqa: BLE001 - a config class whose annotations do not resolve: trl will check
        return
    for key, value in fields.items():
        hint = hints.get(key)
        kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        scalars = [k for k in kinds if k is not type(None)]
        if value is None or not scalars or not all(k in _TYPE_NAMES for k in scalars):
            continue
        fits = any(
            isinstance(value, k) and (k is bool or not isinstance(value, bool)) or (k is float and type(value) is int)
            for k in scalars
        )
        if not fits:
            want = " or ".join(_TYPE_NAMES[k] for k in scalars)
            raise CaiError(f"--config {path}: '{key}' expects {want}, got {value!r}")



def resolve_base(model: str | None, generator: bool = True) -> str:
    from ..model_specs import resolve_model

    return resolve_model(model, generator=generator)




@contextlib.contextmanager
def trl_errors():
    """trl raises ValueError for option combinations it rejects; show them as one line."""
    try:
        yield
    except ValueError as exc:
        raise CaiError(f"trl refused the options: {str(exc).strip().splitlines()[0]}") from exc


@dataclass
class Setup:
    """What a trainer is built from: the base model folder, trl's config, LoRA's (None under --full), and what cai
    passed to each (for the record's fingerprint)."""

    base: str
    config: Any
    peft: Any
    lora: bool
    passed: dict
    lora_fields: dict


def setup(kind: str, opts: TrainOptions, config_cls, task_type: str, command: str, defaults: dict | None = None) -> Setup:
    """The base model, trl config and LoRA config, with the choice of LoRA said on stderr. No model loads here."""
    check_trackers(opts.report_to)  # a missing package stops here, before any model loads
    yaml_fields, lora_fields = read_yaml_config(opts.config)
    base = resolve_base(opts.model, generator=kind != "rm")
    use_lora, why = choose_lora(opts.lora, base)
    passed = config_values(config_cls, kind, opts, yaml_fields, use_lora, defaults)
    config = build_config(config_cls, kind, opts, yaml_fields, use_lora, defaults)
    peft = lora_config(lora_fields, task_type, opts.config)  # checked even under --full, so a typo never waits
    if not use_lora:
        peft = None
    if peft is not None:
        say(f"{command}: LoRA r={peft.r} alpha={peft.lora_alpha} ({why}; --full trains every weight), merged into the saved model")
    else:
        say(f"{command}: full fine-tuning ({why})")
    return Setup(base, config, peft, use_lora, passed, {**LORA_DEFAULTS, **lora_fields})
