"""THE reader: every row any command reads comes through here. Per-line parsing with precise errors (file, line,
field), streaming inputs (files read twice, pipes once; gzip, bzip2 and xz read, other formats named), benchmark CSV
files parsed strictly (source.py, chain.py), and readers for small files that stop at the first bad line. (Writing is output/'s.)"""


from __future__ import annotations

import sys
from collections.abc import Iterator

from ..errors import CaiError
from .chain import InputChain, InputSpec, RowsInput
from .formats import HEAD, EmptyInput, NotJsonl, _sniff
from .parse import BOM, MAX_DEPTH, BadField, Convert, InputLine, JsonProblem, display_name, parse_json, parse_line
from .source import InputSource

__all__ = [
    "BOM", "MAX_DEPTH", "BadField", "Convert", "EmptyInput", "InputChain", "InputLine", "InputSource", "InputSpec", "JsonProblem",
    "NotJsonl", "RowsInput", "display_name", "iter_rows", "numbered_rows", "open_input", "parse_json", "parse_line", "read_lines", "read_rows", "stdin_chunks",
]


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
    return (row for _, row in numbered_rows(path, hint))


def numbered_rows(path: str | None, hint: str = "") -> Iterator[tuple[int, dict]]:
    """`iter_rows` with each row's line number, for a reader whose own checks name the line (gold pairs, worked
    judgments)."""
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
            yield item.line, item.row
    finally:
        source.close()
    if not found:
        raise EmptyInput(source.name)


def read_rows(path: str | None, hint: str = "") -> list[dict]:
    """`iter_rows` in memory, for a small file."""
    return list(iter_rows(path, hint))
