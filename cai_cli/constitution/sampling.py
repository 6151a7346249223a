"""Principle draws: deterministic and process-independent (sha256, never ``hash()``), so a rerun or
another shard draws the same principle for the same row."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import ConstitutionError


def _key(*parts: Any) -> int:
    blob = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big")


def _permutation(n: int, seed: int, row_id: str, salt: str, cycle: int) -> list[int]:
    return sorted(range(n), key=lambda i: (_key(salt, int(seed), str(row_id), cycle, i), i))


def sample_principle_index(n: int, seed: int, row_id: str, round_index: int, salt: str = "critique") -> int:
    """The principle (0..n-1) for one row and one round; deterministic across processes.

    Each row gets its own seeded shuffle of the n principles and round r takes
    its r-th entry, so rounds 0..n-1 of a row never repeat a principle (the
    original method drew a new principle each round); later rounds use a fresh
    shuffle. Over many rows each round is spread evenly over the principles.
    """
    if n < 1:
        raise ConstitutionError(f"cannot draw a {salt} principle: the constitution has none")
    if round_index < 0:
        raise ValueError(f"round_index must be >= 0, got {round_index}")
    cycle, pos = divmod(round_index, n)
    return _permutation(n, seed, row_id, salt, cycle)[pos]


def sample_principles(n: int, k: int, seed: int, row_id: str, salt: str) -> list[int]:
    """k distinct principle indices for one row (k <= n); deterministic the same way.

    Equals ``[sample_principle_index(n, seed, row_id, r, salt) for r in range(k)]``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k > n:
        raise ConstitutionError(f"cannot draw {k} distinct {salt} principles: the constitution has only {n}")
    if k == 0:
        return []
    return _permutation(n, seed, row_id, salt, 0)[:k]


