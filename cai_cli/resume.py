"""Resume, in one place: the side file (OUT.partial) a run appends its finished rows to, the fingerprint it
records, and the lock that makes a run its only writer, so a rerun picks up where a crash stopped and never
mixes rows made with other settings or from other input.

The fingerprint holds everything that changes rows: the stage, the model and its files' identity, the
engine, the sampling, the constitution and the stage's own options (`settings()`). It leaves out what does
not change rows (--limit, --shard, --batch-size, --on-error). The input is compared row by row instead:
each record keeps a digest of the input row it was made from (on a pipe as on a file).
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import CaiError
from .jsonl import dumps
from .rows import stable_hash

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


def mismatch_message(side_path: Path, found: list[str], finished: int) -> str:
    shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
    return (
        f"{side_path}: its {finished} finished rows were made with other settings ({shown}); "
        "rerun with those settings to resume, or add --restart to discard them and start over"
    )


# --------------------------------------------------------------------------- the stage's fingerprint


def stage_fingerprint(stage) -> dict:
    """Everything about this run that changes rows; --limit, --shard and --batch-size do not (nor the input,
    which is compared row by row: see `row_digest`)."""
    fp: dict = {"stage": stage.name}
    own = getattr(stage, "fingerprint", None)
    if own is not None:
        fp.update(own())
    else:
        settings = getattr(stage, "settings", None)
        fp["settings"] = settings() if settings is not None else {}
    return normalised(fp)


def row_digest(row: dict) -> str:
    """What a record keeps of the input row it was made from: a resume compares content, not ids."""
    return stable_hash(row)


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
# OUT.partial holds a header {"cai_side_file": 3, "fingerprint": {...}}, then one record per finished input row,
# {"line": L, "id": ID, "sha": DIGEST, "rows": [...], "dropped": [...], "tally": [...]} (0..N output rows each; `sha`
# the digest of the input row, `tally` what the row adds to the stage's summary), appended a batch at a time in
# input order, and notes {"cai_note": {...}} (where the run began appending to a file the user named, so that a
# rerun takes back what its own earlier attempt wrote there, and nothing else). A rerun appends the rows it
# finishes, again in input order, so the file is a few increasing runs of line numbers; merging them streams
# every record in input order.

SIDE_FILE_VERSION = 3


@dataclass
class SideFile:
    path: Path
    header: dict | None  # None: an empty file, or one written before side files had a header
    segments: list[tuple[int, int]]  # byte ranges, each holding records in increasing line order
    records: int
    notes: list[dict] = field(default_factory=list)

    @property
    def fingerprint(self) -> dict | None:
        return self.header.get("fingerprint") if self.header else None


def scan_side_file(path: Path) -> SideFile | None:
    """The side file's header, notes and increasing runs of records; None when there is none (or nothing in it)."""
    if not path.exists():
        return None
    header, count = None, 0
    notes: list[dict] = []
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
            if isinstance(rec, dict) and isinstance(rec.get("cai_note"), dict):
                notes.append(rec["cai_note"])
                continue
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
    return SideFile(path, header, segments, count, notes)


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


class SideFileLock:
    """One writer per output: from its start to its end a run holds an exclusive lock (flock) on its side file,
    created empty if need be. A second run on the same output stops at once with one line naming the holder.
    The kernel drops a killed run's lock, so it never blocks the resume; and where a process the killed run
    forked (an engine's worker) still holds it, the side file is carried over to a new file that is not locked.
    """

    def __init__(self, path: Path, output: str):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _flock_holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if holder is not None and (holder == os.getpid() or not _alive(holder)):
                    _carry_over(path)  # the run that took it is gone: a child of it holds the old file
                    continue
                who = f"pid {holder}" if holder else "another process"
                raise CaiError(f"{output}: another cai run ({who}) is writing this output and holds {path}; wait for it to end, or write elsewhere") from None
            if _same_file(path, fd):
                self.fd: int | None = fd
                return
            os.close(fd)  # the holder finished and removed it between our open and our lock: take the new one
        raise CaiError(f"{path}: could not take the lock on this side file")

    def still_held(self) -> bool:
        """Whether the lock is still on the file at PATH (no other run carried it over)."""
        return self.fd is not None and _same_file(self.path, self.fd)

    def discard_contents(self) -> None:
        """--restart: empty the side file (kept, and locked, rather than removed)."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)

    def release(self, remove: bool) -> None:
        """Let go of the lock; REMOVE: delete the side file first (the output is finished, or nothing was done)."""
        if self.fd is None:
            return
        try:
            if remove and self.still_held():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flock_holder(fd: int) -> int | None:
    """The pid that took the flock on FD's file, from /proc/locks (Linux; None where it cannot be told)."""
    st = os.fstat(fd)
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                if "FLOCK" in parts and "->" not in parts and want in parts:
                    pid = int(parts[parts.index(want) - 1])
                    return pid or None
    except (OSError, ValueError):
        pass
    return None


def _carry_over(path: Path) -> None:
    """Copy the side file onto a new file at the same path (atomic rename); the old one, still locked, is left to
    the process that holds it."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, path)


def open_side_file(path: Path, output: str, restart: bool, fingerprint: Callable[[], dict | None]) -> tuple[SideFileLock, SideFile | None, list[dict], AppendLog]:
    """(the lock that makes this run the output's only writer; what an earlier run finished, checked against the
    run's FINGERPRINT(); the notes of where it appended to files the user named; the log this run appends to, whose
    header records FINGERPRINT() as it stands when the first batch is written). --restart discards the earlier
    run's records; a side file without a header or of another version (an older cai) cannot be trusted and stops
    the run."""
    lock = SideFileLock(path, output)
    try:
        side = scan_side_file(path)
        notes = side.notes if side is not None else []
        if side is not None and restart:
            lock.discard_contents()
            side = None
        if side is not None:
            if side.header is None or side.header.get("cai_side_file") != SIDE_FILE_VERSION:
                raise CaiError(f"{path}: written by an older cai, without what a resume checks; add --restart to discard it and start over")
            check_fingerprint(side, fingerprint())
    except BaseException:
        lock.release(remove=False)
        raise
    return lock, side, notes, AppendLog(path, header=lambda: {"cai_side_file": SIDE_FILE_VERSION, "fingerprint": fingerprint()})


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
        self._held: list[dict] = []

    def _open(self) -> IO[str]:
        if self._fh is None:
            _cut_torn_line(self.path)  # left by a crash: new rows start on a fresh line
            self._fh = self.path.open("a", encoding="utf-8")
            if self.header is not None and self._fh.tell() == 0:
                self._fh.write(dumps(self.header() if callable(self.header) else self.header) + "\n")
        return self._fh

    def hold(self, row: dict) -> None:
        """Write ROW with the next batch (the header may need a started model; ROW does not wait for one)."""
        self._held.append(row)

    def write(self, rows: Iterable[dict]) -> None:
        fh = self._open()
        for row in [*self._held, *rows]:
            fh.write(dumps(row) + "\n")
        self._held = []
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


def _cut_torn_line(path: Path) -> None:
    """Truncate PATH after its last newline (reading back from the end, not the whole file)."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(pos, 1 << 16)
            fh.seek(pos - step)
            chunk = fh.read(step)
            if pos == end and chunk.endswith(b"\n"):
                return
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                fh.truncate(pos - step + cut + 1)
                return
            pos -= step
        if end:
            fh.truncate(0)
