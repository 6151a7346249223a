"""One input line to one row, strictly: JSON that is an object, within a nesting depth, with finite numbers and text
that is valid Unicode; every problem named by file, line and field."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

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
