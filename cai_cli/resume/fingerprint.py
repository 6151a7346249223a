"""The fingerprint a side file records: everything that changes rows (the stage, the model and its files' identity,
the engine, the sampling, the constitution, the stage's own options), and what a rerun says when it differs. It
leaves out what does not change rows (--limit, --shard, --batch-size, --on-error); the input is compared row by
row instead (rows.row_digest)."""

from __future__ import annotations

import json
from pathlib import Path

from ..engines import EngineName

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
SHAPING_FILES = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json", "chat_template.jinja")


def file_identity(path: Path) -> str:
    """Size and modification time: cheap, and changed by any rewrite of the file."""
    st = path.stat()
    return f"{st.st_size} bytes, mtime {st.st_mtime_ns}"


def folder_identity(folder: Path) -> dict:
    """A model folder: its resolved path and the identity of its config, tokenizer and weight files."""
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.name in SHAPING_FILES or p.name.endswith(WEIGHT_SUFFIXES)):
            files[p.name] = file_identity(p)
    return {"path": str(folder.resolve()), "files": files}


def model_identity(engine: str, spec: str | None, base_urls: list[str]) -> dict:
    """The model a stage will load, identified without loading it."""
    if engine == EngineName.openai:
        # The served model's name is added once the engine has asked the server (EngineStage.fingerprint).
        return {"name": spec, "base_urls": sorted(set(base_urls))}
    from ..model_specs import EMBEDDED_ALIASES, EMBEDDED_NAME, embedded_gguf

    if spec in EMBEDDED_ALIASES:
        try:
            gguf = embedded_gguf()
        except Exception:  # noqa: BLE001 - not installed: loading will say so; the name is identity enough here
            return {"name": f"embedded:{EMBEDDED_NAME}"}
        return {"name": f"embedded:{EMBEDDED_NAME}", "files": {gguf.name: file_identity(gguf)}}
    assert spec is not None  # None is one of EMBEDDED_ALIASES
    path = Path(spec).expanduser()
    if path.is_dir():
        return {"name": spec, **folder_identity(path)}
    try:  # a hub id already in the local cache
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id at all: the name stands for it
        found = None
    if isinstance(found, str):
        return {"name": spec, **folder_identity(Path(found).parent)}
    return {"name": spec}


def normalised(fingerprint: dict) -> dict:
    """As it reads back from the side file (tuples become lists, keys strings)."""
    return json.loads(json.dumps(fingerprint, ensure_ascii=False, default=str))


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def changes(recorded: dict, current: dict) -> list[str]:
    """What differs, one 'path: old -> new' each. Only what the current run knows is compared: before its
    engine starts, a run cannot know the model an OpenAI-compatible server serves (`model.served`)."""
    old, new = _flatten(recorded), _flatten(current)
    out = []
    for key in new:
        if old.get(key, "(not recorded)") != new[key]:
            out.append(f"{key}: {_short(old.get(key, '(not recorded)'))} -> {_short(new[key])}")
    return out


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def shown(found: list[str]) -> str:
    """The first three changes, and how many more: the middle of a one-line error."""
    return "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")


def mismatch_message(side_path: Path, found: list[str], finished: int) -> str:
    return (
        f"{side_path}: its {finished} finished rows were made with other settings ({shown(found)}); "
        "rerun with those settings to resume, or add --restart to discard them and start over"
    )


# --------------------------------------------------------------------------- the stage's fingerprint


def stage_fingerprint(stage) -> dict:
    """Everything about this run that changes rows (the stage's name and its fingerprint(): stages/base.py); --limit,
    --shard and --batch-size do not (nor the input, which is compared row by row: rows.row_digest)."""
    return normalised({"stage": stage.name, **stage.fingerprint()})
