"""Resume, in one place: the side file (OUT.partial) a run appends its finished rows to, and the fingerprint it
records, so a rerun picks up where a crash stopped and never mixes rows made with other settings.

The fingerprint holds everything that changes rows: the stage, the model and its files' identity, the
engine, the sampling, the constitution, the stage's own options (`settings()`) and the input. It leaves
out what does not change rows (--limit, --shard, --batch-size, --on-error).
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CaiError
from .jsonl import dumps

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
    if engine == "openai":
        # The served model's name is added once the engine has asked the server (EngineStage.fingerprint).
        return {"name": spec, "base_urls": sorted(set(base_urls))}
    from .models import EMBEDDED_ALIASES, EMBEDDED_NAME, embedded_gguf

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


def stage_fingerprint(stage, input_identity: str) -> dict:
    """Everything about this run that changes rows; --limit, --shard and --batch-size do not."""
    fp: dict = {"stage": stage.name}
    own = getattr(stage, "fingerprint", None)
    if own is not None:
        fp.update(own())
    else:
        settings = getattr(stage, "settings", None)
        fp["settings"] = settings() if settings is not None else {}
    fp["input"] = input_identity
    return normalised(fp)


def engine_stage_fingerprint(engine_name: str, opts, engine, sampling_meta: dict, constitution, settings: dict) -> dict:
    """A model-driven stage's part: the model's identity (and, once its engine has asked an OpenAI-compatible
    server, the model it serves), the engine, the sampling, the constitution and the stage's own settings."""
    model = model_identity(engine_name, opts.model, opts.base_urls)
    if engine_name == "openai" and engine is not None:
        model["served"] = engine.model  # known once the engine has asked the server
    fp = {
        "model": model,
        "engine": {"name": engine_name, "dtype": opts.dtype},
        "sampling": sampling_meta,
    }
    if constitution is not None:
        fp["constitution"] = {"name": constitution.name, "hash": constitution.hash}
    fp["settings"] = settings
    return fp


def check_fingerprint(side: SideFile | None, current: dict | None) -> None:
    """A resume never mixes rows made under other settings: stop, saying what changed, if the side file's differ."""
    if side is not None and current is not None:
        found = changes(side.fingerprint or {}, current)
        if found:
            raise CaiError(mismatch_message(side.path, found, side.records))


# --------------------------------------------------------------------------- the side file
#
# OUT.partial holds a header {"cai_side_file": 2, "fingerprint": {...}} and then one record per finished
# input row, {"line": L, "id": ID, "rows": [...], "dropped": [...]} (0..N output rows each), appended a
# batch at a time in input order. A rerun appends the rows it finishes, again in input order, so the file
# is a few increasing runs of line numbers; merging them streams every record in input order.

SIDE_FILE_VERSION = 2


@dataclass
class SideFile:
    path: Path
    header: dict | None  # None: an empty file, or one written before side files had a header
    segments: list[tuple[int, int]]  # byte ranges, each holding records in increasing line order
    records: int

    @property
    def fingerprint(self) -> dict | None:
        return self.header.get("fingerprint") if self.header else None


def scan_side_file(path: Path) -> SideFile | None:
    """The side file's header and its increasing runs of records; None when there is none (or nothing in it)."""
    if not path.exists():
        return None
    header, count = None, 0
    segments: list[tuple[int, int]] = []
    seg_start: int | None = None
    last_line, offset = None, 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh):
            begin, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                break  # torn by a crash: not finished
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if number == 0:
                if isinstance(rec, dict) and "cai_side_file" in rec:
                    header = rec
                    continue
                return SideFile(path, None, [], 1)  # rows of an older cai: no header, no line numbers
            if not (isinstance(rec, dict) and isinstance(rec.get("line"), int) and isinstance(rec.get("rows"), list)):
                continue
            if last_line is not None and rec["line"] <= last_line:
                assert seg_start is not None  # a segment is open once a record was seen
                segments.append((seg_start, begin))
                seg_start = None
            if seg_start is None:
                seg_start = begin
            last_line = rec["line"]
            count += 1
        if seg_start is not None:
            segments.append((seg_start, offset))
    if header is None and count == 0:
        return None
    return SideFile(path, header, segments, count)


def _segment_records(path: Path, start: int, end: int) -> Iterator[dict]:
    with path.open("rb") as fh:
        fh.seek(start)
        while fh.tell() < end:
            raw = fh.readline()
            if not raw.endswith(b"\n"):
                return
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("line"), int) and isinstance(rec.get("rows"), list):
                yield rec


def side_records(side: SideFile | None) -> Iterator[dict]:
    """Every finished record of a side file, in input (line) order, streamed: memory holds one record per run."""
    if side is None:
        return iter(())
    runs = [_segment_records(side.path, s, e) for s, e in side.segments]
    return heapq.merge(*runs, key=lambda rec: rec["line"])


def open_side_file(path: Path, restart: bool, fingerprint: Callable[[], dict | None]) -> tuple[SideFile | None, AppendLog]:
    """(what an earlier run finished, checked against the run's FINGERPRINT(); the log this run appends to, whose
    header records FINGERPRINT() as it stands when the first batch is written). --restart discards the earlier
    run's side file; one without a header (an older cai) cannot be trusted and stops the run."""
    if restart and path.exists():
        path.unlink()
    side = scan_side_file(path)
    if side is not None:
        if side.header is None:
            raise CaiError(f"{path}: written by an older cai, without the settings its rows were made with; add --restart to discard it and start over")
        check_fingerprint(side, fingerprint())
    return side, AppendLog(path, header=lambda: {"cai_side_file": SIDE_FILE_VERSION, "fingerprint": fingerprint()})


class AppendLog:
    """An append-only JSONL file, flushed after every batch, so a killed process loses at most that batch.

    It is fsynced at most once a second (and when closed): a cheap stage writing thousands of batches a
    second would otherwise wait on the disk, and only a machine crash, not a killed process, can lose
    flushed lines. With `header`, a new (or empty) file starts with that record (called lazily: it may
    need a started model).
    """

    SYNC_EVERY = 1.0  # seconds

    def __init__(self, path: Path, header=None):
        self.path = path
        self.header = header
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = None
        self._synced = 0.0

    def _open(self) -> IO[str]:
        if self._fh is None:
            # Truncate a torn trailing line left by a crash, so new rows start on a fresh line.
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb+") as fh:
                    content = fh.read()
                    if not content.endswith(b"\n"):
                        fh.truncate(content.rfind(b"\n") + 1)
            self._fh = self.path.open("a", encoding="utf-8")
            if self.header is not None and self._fh.tell() == 0:
                self._fh.write(dumps(self.header() if callable(self.header) else self.header) + "\n")
        return self._fh

    def write(self, rows: Iterable[dict]) -> None:
        fh = self._open()
        for row in rows:
            fh.write(dumps(row) + "\n")
        fh.flush()
        now = time.monotonic()
        if now - self._synced >= self.SYNC_EVERY:
            os.fsync(fh.fileno())
            self._synced = now

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
