"""JSONL input and output: per-line parsing with precise errors, side files, atomic finish."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

from .errors import CaiError, InputError


@dataclass
class InputLine:
    """One non-blank input line: its row, or the reason it is not a valid row."""

    line: int
    row: dict | None
    error: InputError | None
    raw: str


def display_name(path: str | None) -> str:
    return "<stdin>" if path in (None, "-") else str(path)


def read_lines(path: str | None) -> list[InputLine]:
    """Read every line of a JSONL file (or stdin), keeping bad lines as errors rather than stopping."""
    name = display_name(path)
    if path in (None, "-"):
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise CaiError(f"{name}: no such file") from None
        except OSError as exc:
            raise CaiError(f"{name}: cannot read ({exc.strerror})") from None
    out: list[InputLine] = []
    for number, raw_bytes in enumerate(data.split(b"\n"), start=1):
        if not raw_bytes.strip():
            continue
        try:
            raw = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            err = InputError(f"not valid UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at column {exc.start + 1})", file=name, line=number)
            out.append(InputLine(number, None, err, raw_bytes.decode("utf-8", "replace")))
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            err = InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", file=name, line=number)
            out.append(InputLine(number, None, err, raw))
            continue
        if not isinstance(row, dict):
            err = InputError(f"expected a JSON object, got {type(row).__name__}", file=name, line=number)
            out.append(InputLine(number, None, err, raw))
            continue
        out.append(InputLine(number, row, None, raw))
    return out


def dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def read_done_rows(path: Path) -> list[dict]:
    """Rows already finished in a side file. A torn last line (crash mid-write) is ignored."""
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


class AppendLog:
    """An append-only JSONL file that is flushed and fsynced after every batch, so a crash loses at most one batch."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._fh is None:
            # Truncate a torn trailing line left by a crash, so new rows start on a fresh line.
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb+") as fh:
                    content = fh.read()
                    if not content.endswith(b"\n"):
                        fh.truncate(content.rfind(b"\n") + 1)
            self._fh = self.path.open("a", encoding="utf-8")
        return self._fh

    def write(self, rows: Iterable[dict]) -> None:
        fh = self._open()
        for row in rows:
            fh.write(dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def write_atomic(path: Path, rows: Iterable[dict]) -> None:
    """Write all rows to a temporary file beside PATH, then rename: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class StdoutWriter:
    """Rows to stdout, flushed per batch so a downstream stage in a pipe starts early."""

    def write(self, rows: Iterable[dict]) -> None:
        out = sys.stdout
        for row in rows:
            out.write(dumps(row) + "\n")
        out.flush()
