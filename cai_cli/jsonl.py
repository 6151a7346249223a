"""THE reader: every row any command reads comes through here. Per-line parsing with precise errors (file, line,
field), streaming inputs (files read twice, pipes once; gzip, bzip2 and xz read, other formats named), benchmark CSV
files parsed strictly, and readers for small files that stop at the first bad line. (Writing is output/'s.)"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import select
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from .errors import CaiError, InputError

MAX_DEPTH = 100  # objects and lists inside one another, the row itself at level 1; deeper is refused
BOM = "\ufeff"  # a UTF-8 byte-order mark (Windows editors write one) at the start of a file or line: ignored


@dataclass
class InputLine:
    """One non-blank input line: its row, or the reason it is not a valid row (then `raw` keeps the text)."""

    line: int
    row: dict | None  # with an error: the row a reader's `convert` refused (None where the line is no row at all)
    error: InputError | None
    raw: str | None = None  # only for bad lines: a good line does not keep its text
    part: int = 0  # which input of an InputChain it comes from


class BadField(ValueError):
    """A row that a reader's `convert` refuses: FIELD (None: the row as a whole) and what is wrong with it."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(message)


Convert = Callable[[dict, str, int], dict]  # (row, file name, line) -> the row as the reader gives it, or BadField


class JsonProblem(ValueError):
    """Text that is not JSON cai can carry: MESSAGE, at FIELD (a path such as `rounds[0].critique`; None: the whole
    value) or at LINE of a multi-line document."""

    def __init__(self, message: str, field: str | None = None, line: int | None = None):
        self.message, self.field, self.line = message, field, line
        super().__init__(message)


class _Constant:
    """A number JSON cannot carry, as json.loads found it: NaN, Infinity, -Infinity, or a literal such as 1e400 that
    overflows to infinity (kept as its text, for the error message)."""

    def __init__(self, text: str, overflow: bool = False):
        self.text, self.overflow = text, overflow


_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # only a \\uD800-\\uDFFF escape can make one
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(text: str) -> Any:
    """TEXT as JSON that every reader parses and UTF-8 can hold, or JsonProblem naming the field.

    Refused, though Python's json reads them: NaN, Infinity and numbers out of range such as 1e400 (strict JSON
    has none: Node's JSON.parse, pandas and jq reject them), text with a lone surrogate escape such as "\\udc80" (no
    UTF-8 encoding exists for it, so no output could be written), nesting deeper than MAX_DEPTH, an integer of
    more digits than Python reads. A leading byte-order mark is ignored.
    """
    found: list[_Constant] = []

    def constant(name: str) -> _Constant:
        found.append(_Constant(name))
        return found[-1]

    def number(literal: str) -> float | _Constant:
        value = float(literal)
        if math.isfinite(value):
            return value
        found.append(_Constant(literal, overflow=True))
        return found[-1]

    try:
        value = json.loads(text.removeprefix(BOM), parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"not valid JSON ({exc.msg} at column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise JsonProblem(f"nested more than {MAX_DEPTH} levels deep (objects and lists inside one another)") from None
    except ValueError:  # json.loads' own: an integer beyond sys.get_int_max_str_digits()
        raise JsonProblem(f"an integer of more than {sys.get_int_max_str_digits()} digits, more than Python reads; write it as a string") from None
    # The walk costs more than the parse: only where the text may hold a problem (each test is a scan in C).
    surrogates = "\\u" in text and _LONE_SURROGATE_ESCAPE.search(text) is not None
    if found or surrogates or text.count("[") + text.count("{") > MAX_DEPTH:
        _check_value(value, check_text=surrogates)
    return value


def _path(parts: list) -> str | None:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _check_value(value: Any, check_text: bool) -> None:
    """Walk VALUE without recursion (it may be deep): the first problem found raises JsonProblem."""
    stack: list[tuple[Any, list, int]] = [(value, [], 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise JsonProblem(f"nested more than {MAX_DEPTH} levels deep (objects and lists inside one another)", _path(path[:1]))
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, item in items:
                if check_text and isinstance(key, str) and _SURROGATE.search(key):
                    raise JsonProblem(_surrogate_message(key, "a key"), _path(path))
                stack.append((item, [*path, key], depth + 1))
        elif isinstance(node, _Constant) and node.overflow:
            shown = node.text if len(node.text) <= 24 else f"{node.text[:12]}…{node.text[-8:]}"
            raise JsonProblem(f"{shown} is too large for a JSON number (it overflows to infinity); write it as a string", _path(path))
        elif isinstance(node, _Constant):
            raise JsonProblem(f"{node.text} is not a JSON number (strict JSON readers refuse it); write null or a string", _path(path))
        elif check_text and isinstance(node, str) and _SURROGATE.search(node):
            raise JsonProblem(_surrogate_message(node, "the text"), _path(path))


def _surrogate_message(text: str, what: str) -> str:
    found = _SURROGATE.search(text)
    assert found is not None  # called only for text that holds one
    return (
        f"{what} holds \\u{ord(found.group()):04x} (at character {found.start() + 1}), half of a UTF-16 surrogate pair "
        "(an emoji cut in two, or a broken encoder): UTF-8 cannot encode it, so no output could hold it"
    )


def display_name(path: str | None) -> str:
    return "<stdin>" if path in (None, "-") else str(path)


def parse_line(name: str, number: int, raw_bytes: bytes) -> InputLine | None:
    """One line of JSONL -> an InputLine (None for a blank line). A byte-order mark at its start is ignored."""
    raw_bytes = raw_bytes.removeprefix(b"\xef\xbb\xbf")
    if not raw_bytes.strip():
        return None
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        err = InputError(f"not valid UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at column {exc.start + 1})", file=name, line=number)
        return InputLine(number, None, err, raw_bytes.decode("utf-8", "replace").rstrip("\r\n"))
    try:
        row = parse_json(raw)
    except JsonProblem as problem:
        return InputLine(number, None, InputError(problem.message, file=name, line=number, field=problem.field), raw.rstrip("\r\n"))
    if not isinstance(row, dict):
        return InputLine(number, None, InputError(f"expected a JSON object, got {type(row).__name__}", file=name, line=number), raw.rstrip("\r\n"))
    return InputLine(number, row, None)


# The first bytes of files that are not JSONL text: read (a compression the standard library reads, as `datasets`
# does) or named in one line with what to do.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_FOREIGN = {  # first bytes -> (what the file is, what to do)
    b"\x28\xb5\x2f\xfd": ("zstd-compressed", "decompress it first: zstd -d FILE, or zstdcat FILE | cai ..."),
    b"PK\x03\x04": ("a zip archive", "unzip it first"),
    b"PAR1": ("a Parquet file", "convert it first, for example with pandas: read_parquet(FILE).to_json(OUT, orient='records', lines=True)"),
    b"\xff\xfe": ("UTF-16 text (as Windows PowerShell writes)", "cai reads UTF-8: iconv -f UTF-16 -t UTF-8 FILE > rows.jsonl"),
    b"\xfe\xff": ("UTF-16 text", "cai reads UTF-8: iconv -f UTF-16 -t UTF-8 FILE > rows.jsonl"),
}


def _as_file(name: str) -> str:
    """NAME where a command to run names the input ('FILE' for stdin)."""
    return "FILE" if name == "<stdin>" else name


HEAD = 4096  # bytes read first, to tell what an input is before reading it line by line


def _sniff(name: str, head: bytes) -> str | None:
    """The compression of an input starting with HEAD (None: plain); a CaiError for a format cai does not read, and for
    binary data: JSON text never holds a NUL byte, and a file of them (/dev/zero, weights, an image) has no line end
    to stop at, so it is refused before a line of it is read."""
    for magic, (what, todo) in _FOREIGN.items():
        if head.startswith(magic):
            raise CaiError(f"{name}: {what}, not JSONL; {todo.replace('FILE', _as_file(name))}")
    kind = next((kind for magic, kind in _COMPRESSED.items() if head.startswith(magic)), None)
    if kind is None and (at := head.find(b"\x00")) >= 0:
        raise CaiError(f"{name}: binary data (a NUL byte at byte {at + 1}), not JSONL text; give the JSONL file")
    return kind


def _decompressing(kind: str, fh: IO[bytes]) -> IO[bytes]:
    import bz2
    import gzip
    import lzma

    return {"gzip": lambda: gzip.GzipFile(fileobj=fh), "bzip2": lambda: bz2.BZ2File(fh), "xz": lambda: lzma.LZMAFile(fh)}[kind]()  # type: ignore[return-value]


def _damaged() -> tuple[type[Exception], ...]:
    """What the decompressors raise for damaged or cut data (gzip.BadGzipFile and bz2's are OSErrors)."""
    import lzma
    import zlib

    return (EOFError, OSError, zlib.error, lzma.LZMAError)


class _Inflater:
    """Incremental decompression of a pipe, member after member (`cat a.gz b.gz` is one valid gzip stream)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._new()

    def _new(self) -> None:
        import bz2
        import lzma
        import zlib

        self.d: Any = {"gzip": lambda: zlib.decompressobj(wbits=31), "bzip2": bz2.BZ2Decompressor, "xz": lzma.LZMADecompressor}[self.kind]()

    def feed(self, data: bytes) -> bytes:
        out = b""
        while data:
            out += self.d.decompress(data)
            data = self.d.unused_data if self.d.eof else b""
            if data:
                self._new()
        return out

    def finished(self) -> bool:
        return bool(self.d.eof)


class NotJsonl(CaiError):
    """An input that is not JSONL at all (a JSON array, a summary, one JSON document over several lines): the run
    stops whatever --on-error. WHAT says what it is; DOCUMENT holds its content where it parsed as one JSON document."""

    def __init__(self, name: str, what: str, todo: str = "", document: Any = None):
        self.name, self.what, self.todo, self.document = name, what, todo, document
        super().__init__(f"{name}: {what}, not JSONL (one JSON object per line)" + (f"; {todo}" if todo else ""))


class EmptyInput(CaiError):
    """An input without a single row."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"{name}: no rows (the input is empty)")


DOCUMENT_LIMIT = 64 << 20  # bytes of a multi-line JSON document read to name what it is


def _first_line_problem(name: str, item: InputLine, rest: Iterator[bytes | None]) -> NotJsonl | None:
    """The first line tells a JSON document from JSONL: a JSON array, a summary cai wrote, or one object written over
    several lines (then REST, the lines after it, is read to name the document)."""
    from .filekinds import DOCUMENTS, describe_document

    if item.row is not None:
        kind = item.row.get("kind")
        return NotJsonl(name, describe_document(item.row), document=item.row) if isinstance(kind, str) and kind in DOCUMENTS else None
    text = (item.raw or "").strip()
    if text.startswith("["):
        return NotJsonl(name, "a JSON array", f"convert it first: jq -c '.[]' {_as_file(name)} > rows.jsonl")
    if text != "{":
        return None
    chunks, size = [text.encode()], 0
    for raw in rest:
        if raw is not None:
            chunks.append(raw)
            size += len(raw)
            if size > DOCUMENT_LIMIT:
                break
    try:
        document = parse_json(b"\n".join(chunks).decode("utf-8"))
    except (JsonProblem, UnicodeDecodeError):
        document = None
    if document is None or not isinstance(document, dict) or document.get("kind") not in DOCUMENTS:
        return NotJsonl(name, "one JSON document written over several lines", f"put each row on its own line: jq -c . {_as_file(name)} > rows.jsonl", document)
    return NotJsonl(name, describe_document(document), document=document)


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


@dataclass
class InputSpec:
    """One input of a run that reads several as one (InputChain): a path (None: stdin), the name its messages use,
    whether it is a CSV file with a header, and what each of its rows goes through (InputSource's `convert`)."""

    path: str | None
    name: str | None = None
    table: bool = False
    convert: Convert | None = None
    copy_of_stdin: bool = False  # PATH holds what stdin gave (so a run's outputs are checked against stdin)

    @property
    def read_from(self) -> str | None:
        """What the user gave, for the check that no output is an input (None: stdin)."""
        return None if self.copy_of_stdin else self.path

    def open(self) -> InputSource:
        return InputSource(self.path, self.table, self.name, self.convert)


class InputChain:
    """Several inputs read as one (`cai eval -p red.jsonl --benign benign.csv`), in order, for the runner: their lines
    are numbered on from one input to the next, so a run keys its records by one increasing number, while `where`
    gives each line's own file and line for messages. Each item says which input it came from (`part`). An input
    without a row is one line, as for a single input."""

    def __init__(self, specs: list[InputSpec]):
        self.parts: list[InputSource] = []
        try:
            for spec in specs:
                self.parts.append(spec.open())
        except BaseException:
            self.close()
            raise
        self.name = self.parts[0].name
        self.seekable = all(p.seekable for p in self.parts)
        self._bases: list[int] = []  # the number before each input's first line, once it has been reached

    def where(self, line: int) -> tuple[str, int]:
        for part, base in reversed(list(enumerate(self._bases))):
            if line > base:
                return self.parts[part].name, line - base
        return self.name, line

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        base = 0
        for n, part in enumerate(self.parts):
            if n == len(self._bases):
                self._bases.append(base)
            last = 0
            for item in part.lines(idle=idle):
                if item is None:
                    yield None
                    continue
                last = item.line
                item.line, item.part = base + item.line, n
                yield item
            if not last:
                raise EmptyInput(part.name)
            base += last

    def close(self) -> None:
        for part in self.parts:
            part.close()


class RowsInput:
    """Rows a command builds in memory as a run's input (`cai synthesize`: its work units, made from the constitution),
    read as a file is: twice (validated first), line N being the N-th row; each read hands out fresh copies, since a
    stage changes the rows it is given."""

    seekable = True

    def __init__(self, name: str, rows: list[dict]):
        self.name, self.rows = name, rows

    def where(self, line: int) -> tuple[str, int]:
        return self.name, line

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        import copy

        for number, row in enumerate(self.rows, 1):
            yield InputLine(number, copy.deepcopy(row), None)

    def close(self) -> None:
        pass


def open_input(path: str | None, specs: list[InputSpec] | None = None, rows: RowsInput | None = None) -> InputSource | InputChain | RowsInput:
    """The runner's input: PATH (None: stdin), the inputs SPECS read as one, or ROWS built in memory."""
    if rows is not None:
        return rows
    return InputChain(specs) if specs else InputSource(path)


def stdin_chunks(size: int = 1 << 16) -> Iterator[bytes]:
    """The bytes of stdin, a chunk at a time, for a command that keeps a copy of them (eval reads its prompts several
    times): the first bytes are checked as an input's are (a format cai does not read, binary data) before more is
    read."""
    stream = sys.stdin.buffer
    head = stream.read(HEAD)
    _sniff("<stdin>", head)
    if head:
        yield head
    while chunk := stream.read(size):
        yield chunk


def read_lines(path: str | None) -> list[InputLine]:
    """Every line of a JSONL file (or stdin) in memory, bad lines kept as errors (for a reader that shows or sets them
    aside, such as `cai show --on-error skip`)."""
    source = InputSource(path)
    try:
        return [item for item in source.lines() if item is not None]
    finally:
        source.close()


def iter_rows(path: str | None, hint: str = "") -> Iterator[dict]:
    """The rows of a JSONL file (or stdin), streamed, for commands that read rows outside the runner (coverage, plan,
    report, show): the first bad line stops the read with one line naming file, line and field (HINT, if any, says
    what to do), never skipped; an input without a row is one line too."""
    source = InputSource(path)
    found = False
    try:
        for item in source.lines():
            if item is None:
                continue
            if item.error is not None:
                raise CaiError(f"{item.error}" + (f"; {hint}" if hint else "")) from None
            assert item.row is not None  # a line without an error has its row
            found = True
            yield item.row
    finally:
        source.close()
    if not found:
        raise EmptyInput(source.name)


def read_rows(path: str | None, hint: str = "") -> list[dict]:
    """`iter_rows` in memory, for a small file."""
    return list(iter_rows(path, hint))


