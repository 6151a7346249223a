"""JSONL input and output: per-line parsing with precise errors, streaming inputs, atomic writes, stdout.
(The side file a run resumes from lives in resume.py.)"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import select
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import CaiError, InputError

MAX_DEPTH = 100  # objects and lists inside one another, the row itself at level 1; deeper is refused
BOM = "\ufeff"  # a UTF-8 byte-order mark (Windows editors write one) at the start of a file or line: ignored


@dataclass
class InputLine:
    """One non-blank input line: its row, or the reason it is not a valid row (then `raw` keeps the text)."""

    line: int
    row: dict | None
    error: InputError | None
    raw: str | None = None  # only for bad lines: a good line does not keep its text


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


def _sniff(name: str, head: bytes) -> str | None:
    """The compression of an input starting with HEAD (None: plain); a CaiError for a format cai does not read."""
    for magic, (what, todo) in _FOREIGN.items():
        if head.startswith(magic):
            raise CaiError(f"{name}: {what}, not JSONL; {todo.replace('FILE', _as_file(name))}")
    return next((kind for magic, kind in _COMPRESSED.items() if head.startswith(magic)), None)


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

    def __init__(self, path: str | None):
        self.name = display_name(path)
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
            self.seekable = True
        if self._fh is not None:
            try:
                head = self._fh.read(8)
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

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
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
                self.compression = _sniff(self.name, bytes(head[:8]))
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
