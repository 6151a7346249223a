"""What an input is, from its first bytes: JSONL, or gzip, bzip2 or xz around it (read through a decompressor), or a
format cai does not read (named in one line, with what to do); and the first line that shows the whole input is not
JSONL (a JSON array, one document over several lines, a summary cai wrote)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from ..errors import CaiError
from .parse import InputLine, JsonProblem, parse_json

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
    from ..filekinds import DOCUMENTS, describe_document

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
