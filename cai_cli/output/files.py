"""Rows a run sets aside (bad or failed rows, rows dropped on purpose) and its summary file: a file cai names beside
OUT is the run's own (replaced at the end); a file the user names is only ever appended to. And the one line for an
OS error met while writing."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from ..jsonl import AtomicWriter, dumps, dumps_compact
from .plan import beside


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


DISK_ERRORS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def os_error_message(exc: OSError, writing: str, kept: str) -> str | None:
    """One line for an OS error met while WRITING a file (None: not one of those; let it show as it is)."""
    what = DISK_ERRORS.get(exc.errno or 0)
    if what is None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
        what = exc.strerror
    if what is None:
        return None
    return f"{exc.filename or writing}: {what} while writing; {kept}"
