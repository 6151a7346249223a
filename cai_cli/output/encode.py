"""Strict JSON text, the only kind cai writes: a number JSON cannot carry (NaN, Infinity) stops the run with one line."""

from __future__ import annotations

import json
import re

from ..errors import CaiError


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
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    inner = re.compile(r"([\[{])\n\s*((?:[^\[\]{}]|\[[^\[\]{}\n]*\])*?)\n\s*([\]}])")

    def one_line(m):
        body = " ".join(part.strip() for part in m.group(2).splitlines())
        return f"{m.group(1)}{body}{m.group(3)}" if len(body) < 120 else m.group(0)

    for _ in range(2):  # twice: a metric {"value", "ci": [..], "n"} once its interval is on one line
        text = inner.sub(one_line, text)
    return text
