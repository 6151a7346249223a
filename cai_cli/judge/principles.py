"""Which comparison principles a comparison asks: --principles K drawn per comparison, seeded, the same way in
every command (one salt), or all of them."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CaiError

# Principle draws: one salt for every command, so `--principles` draws the same way everywhere.
SALT = "judge"
DEFAULT_PRINCIPLES = 4


def draw_principles(pool: Sequence, k: int, seed: int, key: str) -> list:
    """K distinct principles for one comparison (KEY names it: row id and pair), seeded by --seed."""
    from ..constitution import sample_principles

    return [pool[i] for i in sample_principles(len(pool), min(k, len(pool)), seed, key, SALT)]


def parse_principles(value: str | int, available: int | None = None) -> int:
    """--principles K or 'all' -> how many comparison principles each comparison averages (0: all of them).

    With AVAILABLE (the constitution's count), 'all' becomes that count and a K above it is an error.
    """
    text = str(value).strip().lower()
    if text == "all":
        return available if available is not None else 0
    try:
        k = int(text)
    except ValueError:
        raise CaiError(f"--principles: expected a number >= 1 or 'all', got {value!r}") from None
    if k < 1:
        raise CaiError(f"--principles: expected a number >= 1 or 'all', got {value!r}")
    if available is not None and k > available:
        raise CaiError(f"--principles {k}: the constitution has only {available} comparison questions (use --principles all)")
    return k
