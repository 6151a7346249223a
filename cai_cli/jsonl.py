"""JSONL input and output: per-line parsing with precise errors, streaming inputs, atomic writes, stdout.
(The side file a run resumes from lives in resume.py.)"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CaiError, InputError


@dataclass
class InputLine:
    """One non-blank input line: its row, or the reason it is not a valid row (then `raw` keeps the text)."""

    line: int
    row: dict | None
    error: InputError | None
    raw: str | None = None  # only for bad lines: a good line does not keep its text


def display_name(path: str | None) -> str:
    return "<stdin>" if path in (None, "-") else str(path)


def parse_line(name: str, number: int, raw_bytes: bytes) -> InputLine | None:
    """One line of JSONL -> an InputLine (None for a blank line)."""
    if not raw_bytes.strip():
        return None
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        err = InputError(f"not valid UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at column {exc.start + 1})", file=name, line=number)
        return InputLine(number, None, err, raw_bytes.decode("utf-8", "replace").rstrip("\r\n"))
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        return InputLine(number, None, InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", file=name, line=number), raw.rstrip("\r\n"))
    if not isinstance(row, dict):
        return InputLine(number, None, InputError(f"expected a JSON object, got {type(row).__name__}", file=name, line=number), raw.rstrip("\r\n"))
    return InputLine(number, row, None)


class InputSource:
    """A JSONL input opened for streaming.

    A file (or stdin redirected from a file) is `seekable`: the runner reads it twice, validating every
    line before any model loads, and its identity is the sha256 of its bytes. A pipe is read once, as
    rows arrive; `lines(idle=True)` yields None whenever the next read would wait for the writer, so a
    stage can finish a partial batch while its upstream is still working.
    """

    QUIET = 0.2  # seconds without new bytes on a pipe before a partial batch goes ahead

    def __init__(self, path: str | None):
        self.name = display_name(path)
        self.digest: str | None = None  # set by a full first pass over a seekable input
        self._fh: IO[bytes] | None = None
        self._fd: int | None = None
        self._start = 0
        if path in (None, "-"):
            try:
                fd = sys.stdin.fileno()
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except (AttributeError, OSError, ValueError):
                fd, regular = None, False  # stdin replaced by an object without a descriptor (tests)
            if regular and fd is not None:  # regular: fstat(fd) answered
                self._fh = os.fdopen(os.dup(fd), "rb")
                self._start = self._fh.tell()
            self._fd = None if regular else fd
            self.seekable = regular
        else:
            try:
                self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
            except FileNotFoundError:
                raise CaiError(f"{self.name}: no such file") from None
            except IsADirectoryError:
                raise CaiError(f"{self.name}: is a folder, not a JSONL file") from None
            except OSError as exc:
                raise CaiError(f"{self.name}: cannot read ({exc.strerror})") from None
            self.seekable = True

    @property
    def identity(self) -> str:
        """What the side file's fingerprint records about the input."""
        return f"sha256:{self.digest[:16]}" if self.digest else "<stdin>"

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        if self.seekable:
            yield from self._file_lines(digest)
        elif self._fd is not None:
            yield from self._pipe_lines(idle)
        else:
            for number, raw in enumerate(sys.stdin.buffer, start=1):
                item = parse_line(self.name, number, raw)
                if item is not None:
                    yield item

    def _file_lines(self, digest: bool) -> Iterator[InputLine]:
        fh = self._fh
        assert fh is not None  # a seekable input is open from __init__
        fh.seek(self._start)
        h = hashlib.sha256() if digest else None
        for number, raw in enumerate(fh, start=1):
            if h is not None:
                h.update(raw)
            item = parse_line(self.name, number, raw)
            if item is not None:
                yield item
        if h is not None:
            self.digest = h.hexdigest()

    def _pipe_lines(self, idle: bool) -> Iterator[InputLine | None]:
        fd, buf, number = self._fd, bytearray(), 0
        assert fd is not None  # lines() reads a pipe only through its descriptor
        while True:
            start = 0
            while (end := buf.find(b"\n", start)) >= 0:
                number += 1
                item = parse_line(self.name, number, bytes(buf[start:end]))
                start = end + 1
                if item is not None:
                    yield item
            del buf[:start]
            # Quiet for a moment (not merely between two writes of one burst): the caller may finish
            # the rows it holds rather than wait for a full batch.
            if idle and not select.select([fd], [], [], self.QUIET)[0]:
                yield None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            buf += chunk
        if buf:
            item = parse_line(self.name, number + 1, bytes(buf))
            if item is not None:
                yield item

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_lines(path: str | None) -> list[InputLine]:
    """Every line of a JSONL file (or stdin) in memory, bad lines kept as errors (for readers of small files)."""
    source = InputSource(path)
    try:
        return [item for item in source.lines() if item is not None]
    finally:
        source.close()


def dumps(row: dict) -> str:
    """A row as one line of strict JSON: a number JSON cannot carry (NaN, Infinity) stops the run with one line."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        rid = row.get("id") if isinstance(row, dict) else None
        where = f"row {rid!r}" if rid is not None else "a row"
        raise CaiError(f"{where}: holds a number JSON cannot carry (NaN or Infinity; {exc}); nothing invalid was written") from None


def dumps_compact(data) -> str:
    """Indented JSON (a summary file), but innermost objects and lists (a metric, an interval) on one line each."""
    import re

    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    inner = re.compile(r"([\[{])\n\s*((?:[^\[\]{}]|\[[^\[\]{}\n]*\])*?)\n\s*([\]}])")

    def one_line(m):
        body = " ".join(part.strip() for part in m.group(2).splitlines())
        return f"{m.group(1)}{body}{m.group(3)}" if len(body) < 120 else m.group(0)

    for _ in range(2):  # twice: a metric {"value", "ci": [..], "n"} once its interval is on one line
        text = inner.sub(one_line, text)
    return text


def read_done_rows(path: Path) -> list[dict]:
    """The rows of a JSONL file written by cai. A torn last line (crash mid-write) is ignored."""
    if not path.exists():
        return []
    rows = []
    with path.open("rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


class AtomicWriter:
    """Rows streamed into a temporary file beside PATH, renamed onto PATH by commit(): readers never see half a file.

    PATH a symbolic link: written through it (the temporary file beside the target, renamed onto the target), so
    the link stays. An existing file keeps its permissions."""

    def __init__(self, path: Path):
        self.path = Path(os.path.realpath(path)) if path.is_symlink() else path
        self.tmp = self.path.with_name(self.path.name + ".tmp")
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
        if self.path.exists():
            shutil.copymode(self.path, self.tmp)
        os.replace(self.tmp, self.path)

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


def write_atomic(path: Path, rows: Iterable[dict]) -> None:
    """Write all rows to a temporary file beside PATH, then rename: readers never see a half-written file."""
    writer = AtomicWriter(path)
    try:
        for row in rows:
            writer.write(row)
        writer.commit()
    except BaseException:
        writer.discard()
        raise


class StdoutWriter:
    """Rows to stdout, flushed per batch so a stage downstream in a pipe gets them at once."""

    def write(self, rows: Iterable[dict]) -> None:
        out = sys.stdout
        for row in rows:
            out.write(dumps(row) + "\n")
        out.flush()
