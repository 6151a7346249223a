"""Rows to stdout (or a device), and nothing else: while a run lasts, whatever an engine prints goes to stderr. And a
closed pipe (`cai show ... | head -1`) ends a command quietly."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

from ..errors import CaiError
from .encode import dumps


class RowStream:
    """Rows to stdout (or a device or FIFO named by -o), and nothing else.

    While a run lasts, file descriptor 1 and sys.stdout point at stderr, so whatever an engine and its
    libraries print (vLLM's logging, a C library's printf during model load) lands there; rows go through a
    private duplicate of the real stdout. `close` puts stdout back (a library caller, a test); cai's entry point
    calls `seal_stdout` once a command is done, so what runs at exit (an engine's shutdown logging) cannot reach
    the rows either.
    """

    rows: IO[str] | None
    _saved: int | None

    def __init__(self, device: Path | None):
        outer = _open_streams[-1] if _open_streams and device is None else None
        if outer is not None:
            # stdout is guarded already, by a command that guards it from its start (eval: its phases load models
            # before its rows are written): rows go where the outer stream's rows go.
            self.rows, self._own, self._saved, self._real, self._inner = outer.rows, False, None, sys.stdout, True
            _open_streams.append(self)
            return
        sys.stdout.flush()
        self._real = sys.stdout
        self._own, self._inner = True, False
        if device is not None:
            try:
                self.rows = os.fdopen(os.open(device, os.O_WRONLY | os.O_APPEND), "w", encoding="utf-8")
            except OSError as exc:
                raise CaiError(f"-o {device}: cannot write to it ({exc.strerror})") from None
        elif (fd := _fileno(sys.stdout)) is not None:
            self.rows = os.fdopen(os.dup(fd), "w", encoding="utf-8")
        else:
            self.rows, self._own = sys.stdout, False  # no descriptor (a test's captured stdout): rows go to that object
        self._saved = None
        with contextlib.suppress(OSError):  # no descriptor 1 or 2 at all: nothing there to protect
            self._saved = os.dup(1)
            os.dup2(2, 1)
        sys.stdout = sys.stderr
        _open_streams.append(self)

    def write(self, rows: list[dict]) -> None:
        """One batch of rows, flushed at once so a stage downstream in a pipe gets them."""
        assert self.rows is not None
        for row in rows:
            self.rows.write(dumps(row) + "\n")
        self.rows.flush()

    def close(self, failed: bool = False) -> None:
        if self.rows is None:
            return
        if self in _open_streams:
            _open_streams.remove(self)
        rows, self.rows = self.rows, None
        if self._inner:  # inside an outer stream, which puts stdout back
            with contextlib.suppress(Exception):
                rows.flush()
            return
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


_open_streams: list[RowStream] = []  # the streams guarding stdout now, outermost first


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


def stdout_fd() -> int:
    """The descriptor rows to stdout go to: the real stdout, even while a stream guards it (fd 1 then points at
    stderr), for the check that stdout is not redirected onto an input."""
    for stream in _open_streams:
        if stream._own and stream.rows is not None and (fd := _fileno(stream.rows)) is not None:
            return fd
    return 1


def quiet_broken_pipe() -> None:
    """The reader of stdout has gone (`| head -1`): point stdout at /dev/null, so Python's flush at exit raises
    nothing more and the command ends quietly, as a stage does."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
