"""The output side of a run: where its rows go, and what it never destroys.

Every file a run writes is named and checked before any work (`Outputs`): none may be an input of the run or
another of its outputs, `-o` is not a folder, its folder takes writes and has room. A regular file is written
atomically (through a symbolic link: onto its target, in the target's folder); a device, a FIFO or stdout is
written directly (`RowStream`). While a run lasts, whatever an engine or its libraries print goes to stderr,
never among the rows. Files cai names beside OUT (OUT.errors.jsonl, OUT.dropped.jsonl, OUT.summary.json) are
the run's own; a file the user names (--errors, --dropped) is only ever appended to (`AppendedFile`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CaiError
from .jsonl import AtomicWriter, dumps, dumps_compact
from .resume import SideFile, side_records

MIN_FREE = 1 << 20  # bytes a run's output folder must have free when it starts


def beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def summary_path(out: Path) -> Path:
    """OUT.summary.json, for out.jsonl: out.summary.json."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")


def _written_to(path: Path, flag: str) -> tuple[Path, bool]:
    """(where writing PATH lands, whether that is a regular file): a link's target, or PATH itself."""
    try:
        st = os.stat(path)  # follows links
    except FileNotFoundError:
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    except NotADirectoryError:
        raise CaiError(f"{flag} {path}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise CaiError(f"{flag} {path}: cannot use it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaiError(f"{flag} {path}: is a folder; name a file (for example {path / 'out.jsonl'})")
    if stat.S_ISREG(st.st_mode):
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    return path, False


@dataclass
class Outputs:
    """Every file one run writes, resolved: `out` (a regular -o, or None: rows go to `stream`, a device or FIFO
    -o, or to stdout when that is None too), the side file, the errors and dropped files (`*_named`: the user
    named it, so it is appended to), and OUT.summary.json for a stage that writes a summary."""

    out: Path | None
    stream: Path | None
    partial: Path | None
    errors: Path | None
    errors_named: bool
    dropped: Path | None
    dropped_named: bool
    summary: Path | None

    @classmethod
    def plan(cls, output: str | None, errors: str | None, dropped: str | None, summary: bool) -> Outputs:
        out = stream = None
        if output not in (None, "-"):
            target, regular = _written_to(Path(output), "-o")
            out, stream = (target, None) if regular else (None, target)
        err_path = _written_to(Path(errors), "--errors")[0] if errors else (beside(out, ".errors.jsonl") if out else None)
        drop_path = _written_to(Path(dropped), "--dropped")[0] if dropped else (beside(out, ".dropped.jsonl") if out else None)
        return cls(
            out=out, stream=stream, partial=beside(out, ".partial") if out else None,
            errors=err_path, errors_named=bool(errors), dropped=drop_path, dropped_named=bool(dropped),
            summary=summary_path(out) if out and summary else None,
        )

    def written(self) -> list[tuple[str, Path]]:
        """(what it is, path) for every file the run may write, temporary files included."""
        files: list[tuple[str, Path]] = []
        if self.out is not None:
            files += [("-o", self.out), ("its temporary file", beside(self.out, ".tmp"))]
        if self.stream is not None:
            files.append(("-o", self.stream))
        if self.partial is not None:
            files += [("the side file", self.partial), ("the side file's copy", beside(self.partial, ".tmp"))]
        for path, named, flag in ((self.errors, self.errors_named, "--errors"), (self.dropped, self.dropped_named, "--dropped")):
            if path is not None:
                files.append((flag if named else f"{flag} (default)", path))
                if not named:
                    files.append((f"{flag}'s temporary file", beside(path, ".tmp")))
        if self.summary is not None:
            files += [("the summary", self.summary), ("the summary's temporary file", beside(self.summary, ".tmp"))]
        return files

    def check(self, inputs: list[tuple[str, str | None]]) -> None:
        """Refuse, before any work, an output that is an input (INPUTS: (what, path), None for stdin) or another
        output, and an output folder that cannot be written or is full."""
        read = [(what, _identity(path), path) for what, path in inputs]
        outputs = self.written()
        if self.out is None and self.stream is None:
            outputs.append(("stdout", Path("/dev/stdout")))
        seen: list[tuple[str, Path, tuple[int, int] | None]] = []
        for what, path in outputs:
            ident = _identity(str(path)) if what != "stdout" else _identity(None, fd=1)
            for in_what, in_ident, in_path in read:
                same = (ident is not None and ident == in_ident) or (in_path is not None and _same_name(path, Path(in_path)))
                if same:
                    shown = in_path if in_path is not None else "stdin"
                    raise CaiError(f"{what} {path}: is {in_what} of this run ({shown}); writing there would destroy it. Write to another file")
            if what == "stdout" or not _regular_or_absent(path):
                continue  # a device (/dev/null, /dev/stderr) may take several outputs
            for other_what, other_path, other_ident in seen:
                if _same_name(path, other_path) or (ident is not None and ident == other_ident):
                    raise CaiError(f"{other_what} and {what} are the same file ({path}); give each output its own file")
            seen.append((what, path, ident))
        for folder in dict.fromkeys(p.parent for _, p, _ in seen):
            _check_folder(folder)


def _identity(path: str | None, fd: int = 0) -> tuple[int, int] | None:
    """(device, inode) of PATH (None: of file descriptor FD), for what can be one file under two names; None for
    what does not exist and for character devices (a terminal or /dev/null may well be read and written)."""
    try:
        st = os.stat(path) if path is not None else os.fstat(fd)
    except (OSError, ValueError):
        return None
    if stat.S_ISCHR(st.st_mode):
        return None
    return st.st_dev, st.st_ino


def _same_name(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _regular_or_absent(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _check_folder(folder: Path) -> None:
    """FOLDER (or, if it does not exist yet, its nearest existing parent) takes new files and has room."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CaiError(f"{folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".cai-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CaiError(f"{existing}: cannot write there ({exc.strerror}); choose another output folder") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE:
        raise CaiError(f"{existing}: only {free // 1024} KiB free on its disk; free some space or write elsewhere")


def check_room(folder: Path, needed: int, kept: Path) -> None:
    """Before OUT is assembled from the side file: room for a copy of it."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CaiError(
            f"{folder}: {free // 1024} KiB free, and writing the output needs about {needed // 1024} KiB; "
            f"the finished rows are kept in {kept}: free some space and rerun the same command to finish"
        )


# --------------------------------------------------------------------------- rows out to a stream


class RowStream:
    """Rows to stdout (or a device or FIFO named by -o), and nothing else.

    While a run lasts, file descriptor 1 and sys.stdout point at stderr, so whatever an engine and its
    libraries print (vLLM's logging, a C library's printf during model load) lands there; rows go through a
    private duplicate of the real stdout. `close` puts stdout back (a library caller, a test). A stage command
    also calls `seal_stdout` once its rows are out, so what runs at exit (an engine's shutdown logging) cannot
    reach them either.
    """

    def __init__(self, device: Path | None):
        sys.stdout.flush()
        self._real = sys.stdout
        self._own = True
        if device is not None:
            try:
                self.rows: IO[str] | None = os.fdopen(os.open(device, os.O_WRONLY | os.O_APPEND), "w", encoding="utf-8")
            except OSError as exc:
                raise CaiError(f"-o {device}: cannot write to it ({exc.strerror})") from None
        elif (fd := _fileno(sys.stdout)) is not None:
            self.rows = os.fdopen(os.dup(fd), "w", encoding="utf-8")
        else:
            self.rows, self._own = sys.stdout, False  # no descriptor (a test's captured stdout): rows go to that object
        self._saved: int | None = None
        with contextlib.suppress(OSError):  # no descriptor 1 or 2 at all: nothing there to protect
            self._saved = os.dup(1)
            os.dup2(2, 1)
        sys.stdout = sys.stderr

    def write(self, rows: list[dict]) -> None:
        """One batch of rows, flushed at once so a stage downstream in a pipe gets them."""
        assert self.rows is not None
        for row in rows:
            self.rows.write(dumps(row) + "\n")
        self.rows.flush()

    def close(self, failed: bool = False) -> None:
        if self.rows is None:
            return
        rows, self.rows = self.rows, None
        with contextlib.ExitStack() as finish:
            finish.callback(setattr, sys, "stdout", self._real)
            if self._saved is not None:
                finish.callback(os.close, self._saved)
                finish.callback(os.dup2, self._saved, 1)
            _flush_everything(self._real)  # what libraries left in stdout's buffers goes to stderr, not to the rows
            if self._own:
                try:
                    rows.close()
                except OSError:
                    if not failed:
                        raise


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _flush_everything(stream) -> None:
    with contextlib.suppress(Exception):
        stream.flush()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)  # C stdio buffers (printf from a native library)


def seal_stdout() -> None:
    """The rows are out: for the rest of the process, file descriptor 1 points at stderr."""
    _flush_everything(sys.stdout)
    with contextlib.suppress(OSError):
        os.dup2(2, 1)


# --------------------------------------------------------------------------- rows set aside


class AppendedFile:
    """A file the user named (--errors, --dropped): rows are appended, one write per line (stages sharing it
    interleave whole lines), and nothing in it is ever truncated or deleted; except that a rerun takes back what
    this output's own earlier attempt appended, which its side file records (`note`, before the first line)."""

    def __init__(self, path: Path, note: Callable[[dict], None] | None):
        self.path, self.note = path, note
        self._fd: int | None = None

    def write(self, row: dict) -> None:
        if self._fd is None:
            existed = self.path.exists()
            if not existed:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            st = os.fstat(self._fd)
            if self.note is not None and stat.S_ISREG(st.st_mode):
                self.note({"appended": os.path.realpath(self.path), "from": st.st_size, "existed": existed})
        data = (dumps(row) + "\n").encode("utf-8")
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def take_back(path: Path, notes: list[dict], mine: Callable[[dict], bool]) -> None:
    """Remove from PATH what an earlier attempt of this run appended (NOTES, from its side file): only when every
    line from where it began is one MINE recognises, so a line another stage appended since is never lost."""
    import json

    starts = [n for n in notes if n.get("appended") == os.path.realpath(path) and isinstance(n.get("from"), int)]
    if not starts or not path.is_file():
        return
    first = min(starts, key=lambda n: n["from"])
    start = first["from"]
    if path.stat().st_size < start:
        return
    with path.open("rb") as fh:
        fh.seek(start)
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # torn by a crash: ours
            try:
                rec = json.loads(raw)
            except ValueError:
                return
            if not (isinstance(rec, dict) and mine(rec)):
                return
    if start == 0 and not first.get("existed", True):
        path.unlink()
    else:
        os.truncate(path, start)


class SetAside:
    """Rows a run sets aside (bad or failed rows; rows a stage dropped on purpose): into a file cai names beside
    OUT (streamed to a temporary file, renamed onto it at the end, and a stale one removed when there are none),
    a file the user named (appended), or, with neither, one line each on stderr."""

    def __init__(self, path: Path | None, named: bool, note: Callable[[dict], None] | None = None):
        self.path = path
        self.count = 0
        self.appended = AppendedFile(path, note) if path is not None and named else None
        self.owned = AtomicWriter(path) if path is not None and not named else None

    def add(self, row: dict, line: str) -> None:
        """Keep ROW; LINE says it on stderr where there is no file."""
        self.count += 1
        if self.appended is not None:
            self.appended.write(row)
        elif self.owned is not None:
            self.owned.write(row)
        else:
            print(line, file=sys.stderr)

    def finish(self) -> None:
        if self.appended is not None:
            self.appended.close()
        elif self.owned is not None:
            if self.count:
                self.owned.commit()
            else:
                self.owned.discard()
                if self.owned.path.is_file() and not self.owned.path.is_symlink():
                    self.owned.path.unlink()  # stale, from an earlier run of this output

    def discard(self) -> None:
        if self.appended is not None:
            self.appended.close()
        elif self.owned is not None:
            self.owned.discard()

    @property
    def kept_in(self) -> Path | None:
        """The file the rows went to (None: stderr)."""
        return self.path if self.count and (self.appended is not None or self.owned is not None) else None


def write_summary(path: Path, summary: dict) -> None:
    """OUT.summary.json, atomically."""
    tmp = beside(path, ".tmp")
    try:
        tmp.write_text(dumps_compact(summary) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- OS errors


DISK_ERRORS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def os_error_message(exc: OSError, writing: str, kept: str) -> str | None:
    """One line for an OS error met while WRITING a file (None: not one of those; let it show as it is)."""
    what = DISK_ERRORS.get(exc.errno or 0)
    if what is None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
        what = exc.strerror
    if what is None:
        return None
    return f"{exc.filename or writing}: {what} while writing; {kept}"


# --------------------------------------------------------------------------- OUT, from the side file


def assemble(out: Path, side: SideFile | None, dropped: SetAside, keep: Callable[[dict], bool], recount: Callable[[dict], None]) -> int:
    """Write OUT from the side file, streamed in input order: each record KEEP takes (this run's --limit and
    --shard) gives its rows to OUT, its dropped rows to DROPPED and the whole record to RECOUNT (the stage's
    summary, rebuilt from every finished row, whichever run finished it). Returns how many rows OUT holds."""
    writer = AtomicWriter(out)
    try:
        for rec in side_records(side):
            if not keep(rec):
                continue
            for row in rec["rows"]:
                writer.write(row)
            for row in rec.get("dropped", ()):
                dropped.add(row, "")
            recount(rec)
        writer.commit()
        dropped.finish()
    except BaseException:
        writer.discard()
        dropped.discard()
        raise
    return writer.count
