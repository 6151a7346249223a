"""A stage's tallies (the counts behind its summary line) carried from the processes that ran its batches to the
one that prints the summary: each batch's increase, taken where it ran, added where the summary is.

A stage names them in `tallies` (stages/base.py's default: ("stats",)): attributes holding numbers, or dicts, lists and
dataclasses of numbers, that only ever add up (tokens, truncated texts, pairs kept, the judge's votes).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


def tally_names(stage: Any) -> tuple[str, ...]:
    return tuple(stage.tallies)


def snapshot(stage: Any) -> dict[str, Any]:
    """A copy of the stage's tallies, to subtract from after a batch."""
    return {name: copy.deepcopy(getattr(stage, name)) for name in tally_names(stage)}


def increase(stage: Any, before: dict[str, Any]) -> dict[str, Any]:
    """What the stage's tallies gained since BEFORE (a snapshot)."""
    return {name: _difference(getattr(stage, name), before[name], name) for name in before}


def add_tallies(stage: Any, gained: dict[str, Any]) -> None:
    """Add GAINED (from `increase`, in another process) to the stage's own tallies, in place."""
    for name, value in gained.items():
        setattr(stage, name, _add(getattr(stage, name), value))


def _difference(after: Any, before: Any, where: str) -> Any:
    if isinstance(after, (int, float)) and not isinstance(after, bool):
        return after - (before or 0)
    if isinstance(after, dict):
        return {k: _difference(v, (before or {}).get(k), f"{where}.{k}") for k, v in after.items()}
    if isinstance(after, list):
        old = list(before or [])
        return [_difference(v, old[i] if i < len(old) else None, f"{where}[{i}]") for i, v in enumerate(after)]
    if dataclasses.is_dataclass(after) and not isinstance(after, type):
        gained = copy.copy(after)
        for f in dataclasses.fields(after):
            setattr(gained, f.name, _difference(getattr(after, f.name), getattr(before, f.name, None), f"{where}.{f.name}"))
        return gained
    raise TypeError(f"tally {where}: {type(after).__name__} is not a count (a number, or a dict, list or dataclass of them)")


def _add(total: Any, gained: Any) -> Any:
    if isinstance(gained, dict):
        total = total if isinstance(total, dict) else {}
        for k, v in gained.items():
            total[k] = _add(total.get(k), v)
        return total
    if isinstance(gained, list):
        total = total if isinstance(total, list) else []
        for i, v in enumerate(gained):
            if i < len(total):
                total[i] = _add(total[i], v)
            else:
                total.append(v)
        return total
    if dataclasses.is_dataclass(gained) and not isinstance(gained, type):
        for f in dataclasses.fields(gained):
            setattr(total, f.name, _add(getattr(total, f.name), getattr(gained, f.name)))
        return total
    return (total or 0) + gained
