"""An append-only JSONL log (the side file a run appends its finished rows to): flushed per batch, never rewritten,
and watched: a log that another process cut short while this run wrote it stops the run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ..errors import CaiError
from .encode import dumps


class AppendLog:
    """An append-only JSONL file, flushed after every batch, so a killed process loses at most that batch.

    It is fsynced at most once a second (and when closed): a cheap stage writing thousands of batches a
    second would otherwise wait on the disk, and only a machine crash, not a killed process, can lose
    flushed lines. With `header`, a new (or empty) file starts with that record (called lazily: it may
    need a started model). Before each write and in `verify`, the file must still hold everything this log
    wrote: one that shrank (truncated by another process) stops the run rather than finish from what is left.
    """

    SYNC_EVERY = 1.0  # seconds

    def __init__(self, path: Path, header=None):
        self.path = path
        self.header = header
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = None
        self._synced = 0.0
        self._held: list[dict] = []
        self._end = 0  # bytes the file held after this log's last write

    def _open(self) -> IO[str]:
        if self._fh is None:
            cut_torn_line(self.path)  # left by a crash: new rows start on a fresh line
            self._fh = self.path.open("a", encoding="utf-8")
            self._end = self._fh.tell()
            if self.header is not None and self._end == 0:
                self._fh.write(dumps(self.header() if callable(self.header) else self.header) + "\n")
        return self._fh

    def hold(self, row: dict) -> None:
        """Write ROW with the next batch (the header may need a started model; ROW does not wait for one)."""
        self._held.append(row)

    def write_held(self) -> None:
        """Write what `hold` kept, now (no batch came to take it)."""
        if self._held:
            self.write([])

    def write(self, rows: Iterable[dict]) -> None:
        fh = self._open()
        self.verify()
        for row in [*self._held, *rows]:
            fh.write(dumps(row) + "\n")
        self._held = []
        fh.flush()
        self._end = fh.tell()
        now = time.monotonic()
        if now - self._synced >= self.SYNC_EVERY:
            os.fsync(fh.fileno())
            self._synced = now

    def verify(self) -> None:
        """Stop when the file no longer holds what this log wrote (another process truncated it)."""
        if self._fh is None:
            return
        size = os.fstat(self._fh.fileno()).st_size
        if size < self._end:
            raise CaiError(
                f"{self.path}: cut from {self._end} to {size} bytes by another process while this run wrote it; "
                "the rows it held are lost to this run: rerun the same command to redo them"
            )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def cut_torn_line(path: Path) -> None:
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
