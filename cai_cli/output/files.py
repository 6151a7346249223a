"""Files written whole or appended to: rows into a temporary file renamed onto OUT (AtomicWriter), any other whole
file the same way (write_file: a summary, an HTML page, a figure, a header, a record), rows a run sets aside (bad or
failed rows, rows dropped on purpose: a file cai names beside OUT is the run's own, replaced at the end; a file the
user names is only ever appended to). And the one line for an OS error met while writing."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .encode import dumps, dumps_compact
from .plan import beside


class AtomicWriter:
    """Rows streamed into a temporary file beside PATH, renamed onto PATH by commit(): readers never see half a file.

    PATH a symbolic link: written through it (the temporary file beside the target, renamed onto the target), so
    the link stays. An existing file keeps its permissions."""

    def __init__(self, path: Path):
        self.path = _through_link(path)
        self.tmp = beside(self.path, ".tmp")
        self.count = 0
        self._fh: IO[str] | None = None
        self._opened = False  # the temporary file is this writer's (on a read-only disk even unlinking a missing file fails)

    def write(self, row: dict) -> None:
        if self._fh is None:
            self.write_nothing()
        assert self._fh is not None  # write_nothing opened it
        self._fh.write(dumps(row) + "\n")
        self.count += 1

    def commit(self) -> None:
        if self._fh is None:
            self.write_nothing()
        fh = self._fh
        assert fh is not None  # write_nothing opened it
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        self._fh = None
        _replace_keeping_mode(self.tmp, self.path)

    def write_nothing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._opened = True
        self._fh = self.tmp.open("w", encoding="utf-8")

    def discard(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):  # a full disk: closing flushes, and fails again
                self._fh.close()
            self._fh = None
        if self._opened:
            self.tmp.unlink(missing_ok=True)


def write_rows(path: Path, rows) -> int:
    """All ROWS into PATH at once, atomically (AtomicWriter); returns how many."""
    writer = AtomicWriter(path)
    try:
        for row in rows:
            writer.write(row)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return writer.count


def _through_link(path: Path) -> Path:
    """Where writing PATH lands: a symbolic link's target (the link stays), or PATH itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _replace_keeping_mode(tmp: Path, path: Path) -> None:
    if path.exists():
        shutil.copymode(path, tmp)
    os.replace(tmp, path)


def write_file(path: Path, data: str | bytes, exclusive: bool = False) -> Path:
    """The one way to write a whole file that is not rows (a summary, an HTML page, a figure, a drafted header, a
    record): a regular file (or a link's target) atomically, through a temporary file beside it that is renamed onto
    it, keeping its permissions; a device or a FIFO (/dev/null, /dev/stdout, a named pipe) written to directly, never
    replaced. EXCLUSIVE: never replace a file that exists (the rename is a link, which fails if it does). Returns
    where the data went. Check the path first (plan.check_targets): this writes what it is given."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            while raw:
                raw = raw[os.write(fd, raw):]
        finally:
            os.close(fd)
        return path
    target = _through_link(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = beside(target, ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, target)  # FileExistsError where a file appeared since the check
            tmp.unlink()
        else:
            _replace_keeping_mode(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


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


def append_rows(path: Path, rows: list[dict]) -> None:
    """ROWS appended to PATH, a log cai keeps across resumed runs (DIR/metrics.jsonl, DIR/samples.jsonl), one write
    per line; `write_file` with the lines to keep rewinds it."""
    log = AppendedFile(path, None)
    try:
        for row in rows:
            log.write(row)
    finally:
        log.close()


def take_back(path: Path, notes: list[dict], mine: Callable[[dict], bool]) -> None:
    """Remove from PATH what an earlier attempt of this run appended (NOTES, from its side file): only when every
    line from where it began is one MINE recognises, so a line another stage appended since is never lost."""
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


def figure_bytes(fig, fmt: str) -> bytes:
    """A matplotlib figure rendered as FMT (png, svg, pdf) in memory: the one place cai calls savefig, so that a figure
    reaches a file only through write_file."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def write_stream(path: Path, chunks) -> Path:
    """The byte CHUNKS (a copy of stdin) into a new file at PATH, atomically."""
    tmp = beside(path, ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_npz(path: Path, **arrays) -> Path:
    """numpy ARRAYS as one compressed .npz file, atomically (a small model's weights)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return write_file(path, buf.getvalue())


def write_summary(path: Path, summary: dict) -> Path:
    """A summary JSON (OUT.summary.json, --summary), atomically."""
    return write_file(path, dumps_compact(summary) + "\n")


DISK_ERRORS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def os_error_message(exc: OSError, writing: str, kept: str) -> str | None:
    """One line for an OS error met while WRITING a file (None: not one of those; let it show as it is)."""
    what = DISK_ERRORS.get(exc.errno or 0)
    if what is None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
        what = exc.strerror
    if what is None:
        return None
    return f"{exc.filename or writing}: {what} while writing; {kept}"
