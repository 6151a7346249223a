"""`cai constitution diff OLD NEW`: which sections, principles and hard constraints changed, came or went.

Units are matched by id and compared by content hash (a section's heading and text, a principle's requests,
a constraint's text) and by the attributes that route them (tier, `when`, whether it is routed). Each critique
round records the constitution hash, the principle (section) id and the principle's hash, so a later run can
tell which rows a change touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import Constitution, short_hash


@dataclass(frozen=True)
class Change:
    kind: str  # "added" | "removed" | "changed"
    unit: str  # "section" | "critique" | "comparison" | "hard constraint" | "behaviour" | "priorities"
    id: str
    detail: str = ""


def _units(c: Constitution) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(unit kind, id) -> (content hash, routing attributes) for everything a constitution holds."""
    out: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    if c.is_document:
        for s in c.sections:
            out[("section", s.id)] = (s.hash, {"tier": s.tier, "when": s.when, "routed": s.routed})
    else:
        for p in c.critiques:
            out[("critique", p.id)] = (p.hash, {"tier": p.tier})
    for q in c.comparisons:
        out[("comparison", q.id)] = (short_hash(q.question), {"tier": q.tier})
    for h in c.hard_constraints:
        out[("hard constraint", h.id)] = (h.hash, {})
    for b in c.behaviours:
        out[("behaviour", b.id)] = (short_hash({"description": b.description}), {"default": b.default, "changed_by": list(b.changed_by), "section": b.section})
    return out


def diff_constitutions(old: Constitution, new: Constitution) -> list[Change]:
    """Every added, removed and changed unit, in the new constitution's order (removed ones last)."""
    a, b = _units(old), _units(new)
    changes: list[Change] = []
    if old.priorities != new.priorities:
        changes.append(Change("changed", "priorities", "-", f"{', '.join(old.priorities) or 'none'} -> {', '.join(new.priorities) or 'none'}"))
    for key, (digest, attrs) in b.items():
        if key not in a:
            changes.append(Change("added", key[0], key[1]))
            continue
        old_digest, old_attrs = a[key]
        what = []
        if digest != old_digest:
            what.append({"comparison": "question", "behaviour": "description"}.get(key[0], "text"))
        what += [f"{k} {old_attrs.get(k)} -> {v}" for k, v in attrs.items() if old_attrs.get(k) != v]
        if what:
            changes.append(Change("changed", key[0], key[1], "; ".join(what)))
    changes += [Change("removed", key[0], key[1]) for key in a if key not in b]
    return changes


def format_changes(old: Constitution, new: Constitution, changes: list[Change]) -> str:
    head = f"{old.source} ({old.hash}) -> {new.source} ({new.hash}): "
    if not changes:
        return head + "no changes"
    counts = {k: sum(c.kind == k for c in changes) for k in ("changed", "added", "removed")}
    lines = [head + ", ".join(f"{n} {k}" for k, n in counts.items())]
    width = max(len(c.unit) for c in changes)
    for c in changes:
        lines.append(f"{c.kind:<8} {c.unit:<{width}}  {c.id}" + (f"  ({c.detail})" if c.detail else ""))
    return "\n".join(lines)
