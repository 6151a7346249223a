"""One input opened for streaming: a file read twice (checked whole before any model loads), a pipe once as rows
arrive; JSONL, or a benchmark's CSV file parsed strictly."""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import stat
import sys
from collections.abc import Iterator
from typing import IO

from ..errors import CaiError, InputError
from .formats import HEAD, _damaged, _decompressing, _first_line_problem, _Inflater, _sniff
from .parse import BadField, Convert, InputLine, display_name, parse_line


class InputSource:
    """A JSONL input opened for streaming.

    A file (or stdin redirected from a file) is `seekable`: the runner reads it twice, validating every
    line before any model loads, and its identity is the sha256 of its bytes. A pipe is read once, as
    rows arrive; `lines(idle=True)` yields None whenever the next read would wait for the writer, so a
    stage can finish a partial batch while its upstream is still working.

    gzip, bzip2 and xz inputs (a file or a pipe) are read as the JSONL they hold; other formats that are not JSONL
    (zstd, zip, Parquet, UTF-16 text, a JSON array, one JSON document over several lines) stop the run with one
    line saying what the file is, whatever --on-error.
    """

    QUIET = 0.2  # seconds without new bytes on a pipe before a partial batch goes ahead

    def __init__(self, path: str | None, table: bool = False, name: str | None = None, convert: Convert | None = None):
        self.name = name or display_name(path)
        self.table = table  # a CSV file with a header row (a benchmark's prompt file): each record a row of strings
        self.convert = convert  # each row through this (a benchmark's columns to a prompt row, checks); BadField: a bad row
        self.digest: str | None = None  # set by a full first pass over a seekable input
        self._fh: IO[bytes] | None = None
        self._fd: int | None = None
        self._start = 0
        self.compression: str | None = None  # gzip, bzip2 or xz: read through a decompressor
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
            self.seekable = stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)
            if not self.seekable:  # a FIFO or a device named as a path (/dev/stdin, a named pipe): read as a pipe
                self._fd = self._fh.fileno()
        if self._fh is not None and self.seekable:
            try:
                head = self._fh.read(HEAD)
                self._fh.seek(self._start)
            except OSError as exc:
                self.close()
                raise CaiError(f"{self.name}: cannot read ({exc.strerror})") from None
            try:
                self.compression = _sniff(self.name, head)
            except CaiError:
                self.close()
                raise

    @property
    def identity(self) -> str:
        """What the side file's fingerprint records about the input."""
        return f"sha256:{self.digest[:16]}" if self.digest else "<stdin>"

    def where(self, line: int) -> tuple[str, int]:
        """(file, line) of input line LINE, for a message."""
        return self.name, line

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        items = self._table_lines() if self.table else self._jsonl_lines(idle, digest)
        if self.convert is None:
            yield from items
            return
        for item in items:
            if item is not None and item.row is not None and item.error is None:
                try:
                    item.row = self.convert(item.row, self.name, item.line)
                except BadField as bad:
                    item.error = InputError(bad.message, file=self.name, line=item.line, field=bad.field)
            yield item

    def _jsonl_lines(self, idle: bool, digest: bool) -> Iterator[InputLine | None]:
        if self.seekable:
            raw_lines: Iterator[bytes | None] = self._file_lines(digest)
        elif self._fd is not None:
            raw_lines = self._pipe_lines(idle)
        else:
            raw_lines = iter(sys.stdin.buffer)
        first = True
        number = 0
        for raw in raw_lines:
            if raw is None:  # a pipe gone quiet
                yield None
                continue
            number += 1
            item = parse_line(self.name, number, raw)
            if item is None:
                continue
            if first:
                first = False
                problem = _first_line_problem(self.name, item, raw_lines)
                if problem is not None:
                    raise problem
            yield item

    def _file_lines(self, digest: bool) -> Iterator[bytes]:
        fh = self._fh
        assert fh is not None  # a seekable input is open from __init__
        fh.seek(self._start)
        h = hashlib.sha256() if digest else None
        reader = _decompressing(self.compression, fh) if self.compression else fh
        try:
            for raw in reader:
                if h is not None:
                    h.update(raw)
                yield raw
        except _damaged() as exc:
            if not self.compression:
                raise
            raise CaiError(f"{self.name}: the {self.compression} data is damaged or cut short ({exc})") from None
        if h is not None:
            self.digest = h.hexdigest()

    def _pipe_lines(self, idle: bool) -> Iterator[bytes | None]:
        fd, buf, head = self._fd, bytearray(), bytearray()
        assert fd is not None  # lines() reads a pipe only through its descriptor
        inflater: _Inflater | None = None
        sniffed = False  # the first bytes tell a compressed stream from text
        while True:
            start = 0
            while (end := buf.find(b"\n", start)) >= 0:
                yield bytes(buf[start:end])
                start = end + 1
            del buf[:start]
            # Quiet for a moment (not merely between two writes of one burst): the caller may finish
            # the rows it holds rather than wait for a full batch.
            if idle and not select.select([fd], [], [], self.QUIET)[0]:
                yield None
            chunk = os.read(fd, 1 << 16)
            if not sniffed:
                head += chunk
                if chunk and len(head) < 8:
                    continue
                self.compression = _sniff(self.name, bytes(head[:HEAD]))
                inflater = _Inflater(self.compression) if self.compression else None
                sniffed, chunk = True, bytes(head)
            if not chunk:
                break
            try:
                buf += inflater.feed(chunk) if inflater is not None else chunk
            except _damaged() as exc:
                raise CaiError(f"{self.name}: the {self.compression} data is damaged ({exc})") from None
        if inflater is not None and not inflater.finished():
            raise CaiError(f"{self.name}: the {self.compression} data is cut short")
        if buf:
            yield bytes(buf)

    def _table_lines(self) -> Iterator[InputLine]:
        """The records of a CSV file with a header, parsed strictly: each one a row {column: text} at the line where it
        starts, or, where its number of fields is not the header's (an unquoted comma splits a prompt in two), an error
        naming that line. A quote never closed, or a field the csv module cannot read, stops the read in one line."""
        import csv
        import io

        if self._fh is not None:
            self._fh.seek(self._start)
            raw: IO[bytes] = _decompressing(self.compression, self._fh) if self.compression else self._fh
        else:
            assert self._fd is not None
            raw = os.fdopen(os.dup(self._fd), "rb")
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        header: list[str] | None = None
        start = 1
        try:
            for fields in reader:
                if not fields:  # a blank line
                    start = reader.line_num + 1
                    continue
                if header is None:
                    header = fields
                elif len(fields) != len(header):
                    problem = (f"{len(fields)} fields where the header has {len(header)} ({', '.join(header)}): a field that holds a "
                               "comma must be quoted (\"...\"), and none may be missing")
                    yield InputLine(start, None, InputError(problem, file=self.name, line=start), ",".join(fields))
                else:
                    yield InputLine(start, dict(zip(header, fields)), None)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise CaiError(f"{self.name}:{start}: not valid CSV ({exc}; a quote opened at or after this line is never closed?)") from None
        except UnicodeDecodeError as exc:
            raise CaiError(f"{self.name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}, in the record from line {start})") from None
        finally:
            with contextlib.suppress(ValueError):  # the input was closed first
                text.detach()
        if header is None:
            raise CaiError(f"{self.name}: empty (no CSV header, no rows)")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
