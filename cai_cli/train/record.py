"""DIR/cai-train.json, the training record: what shaped the model, how far training got, which files cai wrote there.

    {"cai_train": 1, "state": "training" | "done", "command": "train-sft", "fingerprint": {...},
     "length": {"max_steps": 8}, "planned_steps": 8, "files": ["config.json", ...], ...the results, once done}

- A folder is cai's only when it holds this record. Anything else that is not empty is refused, and in its own folder
  cai deletes or replaces only what it wrote: checkpoints/, metrics.jsonl, samples.jsonl, its temporary folders and the
  files the record names. A user's notes beside the model stay.
- The fingerprint holds what shapes the model, the same idea as a stage's side file (cai_cli/resume/fingerprint.py): the
  command, the base model's identity, the data (path and a digest of its content), the stage's own settings, LoRA or
  full fine-tuning and the LoRA fields, and every trl setting passed (the learning rate and its schedule always).
  Once anything is trained, a rerun with another fingerprint stops with one line naming what changed.
- The length (--max-steps or --epochs, trl's max_steps / num_train_epochs) stands apart: the same length resumes a
  crashed run or finds the work done; a longer one trains on from the last checkpoint with the schedule extended to
  the new length (see run_training); a shorter one stops.
- The record says "done" only after the final model files are in place, so a crash at any point leaves a run that a
  rerun resumes, never a folder that claims to be finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CaiError
from ..judge.checks import GATE_FILE
from ..model_specs import TRAIN_RECORD

VERSION = 1
RECORD = TRAIN_RECORD  # models.py reads base_model from it, to give trained models their base's sampling defaults
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"  # train-policy --reward judge: every sampled completion and the rewards it got
TEMPORARY = (".final.tmp", ".merged.tmp")
TRAINING, DONE = "training", "done"
# trl fields that decide only what is logged, saved or shown, never what is learned: a rerun may change them.
NOT_SHAPING = frozenset({
    "output_dir", "report_to", "disable_tqdm", "logging_steps", "logging_first_step", "logging_strategy", "logging_dir",
    "logging_nan_inf_filter", "save_steps", "save_strategy", "save_total_limit", "save_only_model", "run_name",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "log_completions", "num_completions_to_print",
})
LENGTH_FIELDS = ("max_steps", "num_train_epochs")
# Recorded even where cai passes trl's default: the learning rate, its schedule and what makes a step.
ALWAYS = ("learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "weight_decay",
          "per_device_train_batch_size", "gradient_accumulation_steps", "seed")


def read_record(out: Path) -> dict | None:
    """DIR's record as written by cai (an older cai's too), or None when DIR has none it can read."""
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    older = str(record.get("command", "")).startswith("train-") and "base_model" in record
    return record if "cai_train" in record or older else None


def check_folder(path: str) -> Path:
    """-o DIR: new, empty, or a folder whose record says cai made it. Read only; the record is written by begin()."""
    from ..output import check_written

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CaiError(f"-o {path}: exists and is not a folder")
    check_written([("-o", out / RECORD)], [])  # a path through a file, a folder that takes no writes or has no room
    if os.environ.get("RANK", "0") != "0":
        return out  # under torchrun the main process decides (it may be writing the record at this very moment)
    # The judge's gold measurement (judge-gate.json) is the one file a run keeps there before it claims the folder.
    if out.is_dir() and any(p.name != GATE_FILE for p in out.iterdir()) and read_record(out) is None:
        raise CaiError(f"-o {path}: the folder is not empty and holds no {RECORD} of cai's, so `cai train-*` did not make "
                       "it; choose a new or empty folder")
    return out


def digest(examples: list) -> str:
    """sha256 of the examples' content, as the trainer will see it (first 16 hex digits)."""
    text = json.dumps(examples, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def data_identity(path: str | None, examples: list | None) -> dict:
    from ..jsonl import display_name

    if path is None:
        return {"path": None, "content": None}
    return {"path": display_name(path), "content": digest(examples or [])}


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return value


def trl_settings(config, passed: dict) -> dict:
    """The trl fields that shape the model: every one passed (cai's defaults, --config, the options) and ALWAYS, with
    the values the config holds, less the length and the fields in NOT_SHAPING."""
    keys = [k for k in dict.fromkeys([*ALWAYS, *sorted(passed)]) if k not in NOT_SHAPING and k not in LENGTH_FIELDS]
    return {k: _plain(getattr(config, k, passed.get(k))) for k in keys}


def length_of(config) -> dict:
    """How long the run is asked to train: max_steps wins over epochs, as in trl."""
    if config.max_steps and config.max_steps > 0:
        return {"max_steps": int(config.max_steps)}
    return {"epochs": float(config.num_train_epochs)}


def describe_length(length: dict) -> str:
    if "max_steps" in length:
        return f"--max-steps {length['max_steps']}"
    return f"--epochs {length['epochs']:g}"


def _defaults(cls) -> dict:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _align(old: dict, new: dict, section: str, current) -> None:
    """Compare a section field by field whichever run passed it: a field only the new run passes was trl's (or
    peft's) default in the old one; a field only the old run passed takes the value it has now."""
    a, b = old.get(section), new.get(section)
    if not isinstance(a, dict) or not isinstance(b, dict) or current is None:
        return
    defaults = _defaults(type(current))
    for key in a.keys() - b.keys():
        b[key] = _plain(getattr(current, key, None))
    for key in b.keys() - a.keys():
        a[key] = defaults.get(key)


def forget(out: Path, record: dict | None) -> list[str]:
    """--restart: delete what cai wrote in DIR (the record last), nothing else. Returns what was deleted."""
    gone = []
    names = [CHECKPOINTS, METRICS, SAMPLES, *TEMPORARY, *((record or {}).get("files") or [])]
    if record is not None and "cai_train" not in record:
        names += _older_model_files(out)
    from ..output import remove

    for name in dict.fromkeys(names):
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            continue
        if remove(out / name):
            gone.append(name)
    remove(out / RECORD)
    return gone


def _older_model_files(out: Path) -> list[str]:
    """An older cai's record names no files, but it replaced every model file in DIR: those names are its."""
    from ..resume import SHAPING_FILES, WEIGHT_SUFFIXES

    extra = ("special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model", ".index.json")
    return [p.name for p in out.iterdir() if p.is_file()
            and (p.name in SHAPING_FILES or p.name.endswith(WEIGHT_SUFFIXES) or p.name.endswith(extra))]


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step a complete checkpoint reached (trl writes trainer_state.json last), or None."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        return int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint in DIR/checkpoints (one cut short by a crash has no trainer_state.json yet)."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        name = p.name.removeprefix("checkpoint-")
        if p.is_dir() and name.isdigit() and checkpoint_step(p) == int(name):
            found.append((int(name), p))
    return max(found)[1] if found else None


@dataclass
class TrainingRun:
    """A run into DIR as its record describes it; only the main process writes."""

    out: Path
    command: str
    record: dict
    main: bool = True
    nothing_to_do: bool = False  # finished with these settings and this length
    fresh: bool = False  # begin() wrote a new record: nothing had been trained here
    created: bool = False  # DIR did not exist before this run
    started: bool = False  # training (or the final save) has begun: from here on a crash leaves a run to resume

    @contextlib.contextmanager
    def undo_unless_started(self):
        """An error before training starts (a bad option trl refuses, data that do not fit) leaves DIR as it was."""
        try:
            yield
        except BaseException:
            if self.main and self.fresh and not self.started:
                from ..output import remove_empty_folder

                forget(self.out, self.record)
                if self.created:
                    remove_empty_folder(self.out)
            raise

    @property
    def finished(self) -> bool:
        return self.record.get("state") == DONE

    def write(self, **fields) -> None:
        self.record.update(fields)
        if not self.main:
            return
        from ..output import write_file

        write_file(self.out / RECORD, json.dumps(self.record, indent=2, default=str) + "\n")

    def shorter(self, planned: int, new_length: dict, new_planned: int | None = None) -> CaiError:
        old = describe_length(self.record.get("length") or {})
        asked = describe_length(new_length) + (f" ({new_planned} steps)" if new_planned is not None else "")
        what = "holds a model trained" if self.finished else "holds a run planned"
        return CaiError(f"-o {self.out}: {what} for {planned} steps ({old}), more than {asked}; a run is never cut "
                        f"short: rerun with {old} or more, or add --restart to delete what cai wrote there and start over")

    def check_planned(self, new_planned: int, new_length: dict) -> None:
        """Stop when the effective length (known once the trainer exists) is below the one recorded."""
        planned = self.record.get("planned_steps")
        if isinstance(planned, int) and new_planned < planned:
            raise self.shorter(planned, new_length, new_planned)


def begin(out: Path, command: str, fingerprint: dict, length: dict, restart: bool, config=None, lora=None,
          say=None) -> TrainingRun:
    """Claim DIR for this run (main process only; the others read the record after a barrier), before any model loads.

    Same fingerprint: resume, train on, or nothing to do. Another fingerprint: stop with one line, unless nothing was
    trained yet (no checkpoint, not done), when the new settings simply start. --restart deletes what cai wrote first.
    """
    from ..resume import changes, normalised, shown

    main = os.environ.get("RANK", "0") == "0"
    created = not out.exists()
    fingerprint = normalised(fingerprint)
    record = read_record(out)
    if main and record is not None and record.get("cai_train") is None:
        if not restart:
            raise CaiError(f"-o {out}: {RECORD} was written by an older cai, without the settings it trained with; add "
                           "--restart to delete its checkpoints, metrics and record and train anew")
    if main and restart and record is not None:
        gone = forget(out, record)
        if say is not None:
            say(f"{command}: --restart: deleted {', '.join(gone) or 'nothing'} and {RECORD} from {out}; starting over")
        record = None
    if not main:
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # the main process has claimed DIR
        run = TrainingRun(out, command, read_record(out) or {}, main=False)
        run.nothing_to_do = run.finished and run.record.get("length") == length
        return run

    run = TrainingRun(out, command, dict(record or {}))
    trained = run.finished or last_checkpoint(out) is not None
    if record is not None and trained:
        old = normalised(record.get("fingerprint") or {})
        made = old.get("command") or record.get("command")
        if made != command:
            what = "a model" if run.finished else "a run"
            by = f"made by `cai {made}`" if made else "whose record names no command (not written by `cai train-*`)"
            raise CaiError(f"-o {out}: holds {what} {by}, not `cai {command}`; choose another "
                           "folder, or add --restart to delete what cai wrote there and start over")
        _align(old, fingerprint, "trl", config)
        _align(old, fingerprint, "lora", lora)
        found = changes(old, fingerprint)
        if found:
            at = "a model trained" if run.finished else f"a run stopped at step {checkpoint_step(last_checkpoint(out) or out) or 0}"
            resume = "to train on" if run.finished else "to resume"
            raise CaiError(f"-o {out}: holds {at} with other settings ({shown(found)}); rerun with those settings {resume}, "
                           "or add --restart to delete what cai wrote there and start over")
        old_length = record.get("length") or {}
        if old_length.keys() == length.keys():
            key = next(iter(length), None)
            if key is not None and length[key] < old_length[key]:
                planned = record.get("planned_steps")
                raise run.shorter(planned if isinstance(planned, int) else 0, length)
    else:
        # Nothing trained here yet: whatever an earlier attempt recorded, this run's settings are the ones that count.
        run = TrainingRun(out, command, {"cai_train": VERSION, "state": TRAINING, "command": command,
                                         "fingerprint": fingerprint, "length": length,
                                         "files": (record or {}).get("files", [])}, fresh=True, created=created)
        run.write()
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    run.nothing_to_do = run.finished and run.record.get("length") == length
    return run
