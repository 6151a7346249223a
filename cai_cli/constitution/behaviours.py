"""Instructable behaviours in force for a row: the constitution's defaults, switched by the principals allowed to.

A constitution declares behaviours (`behaviours:` in its header or list: id, description, default on/off, who may
change it: operator, user). A row switches them:

* the operator: a line of the system message `behaviour <id>: on` (or `off`; "behavior" too), or the row's own
  field `behaviours: {"<id>": true|false|"on"|"off"}` (the dataset's author deploys the assistant: an operator);
* the user: the same line in a user turn.

A principal the behaviour does not name in `changed_by` cannot switch it: the switch is ignored and recorded as
refused. The states (`in_force`) are what routing ranks with (the descriptions of the behaviours switched from their
default join the conversation's words), what the critic, the judge and the gate are told (`note`), and what each
round and label records (`behaviours`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .model import Constitution

FIELD = "behaviours"
_SWITCH = re.compile(r"\bbehaviou?r\s+([A-Za-z0-9][A-Za-z0-9_.-]*)\s*[:=]\s*(on|off)\b", re.IGNORECASE)
NOTE_HEAD = "Instructable behaviours in force in this conversation (defaults an operator or user may switch):"


def _state(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        return value.strip().lower() == "on"
    return None


def check_field(row: dict) -> None:
    """The row's `behaviours` field, where it has one: an object of id -> true/false/"on"/"off"."""
    from ..rows import FieldProblem

    value = row.get(FIELD)
    if value is None:
        return
    if not isinstance(value, dict):
        raise FieldProblem(FIELD, f"expected an object of behaviour id -> on/off, got {type(value).__name__}")
    for key, state in value.items():
        if _state(state) is None:
            raise FieldProblem(f"{FIELD}.{key}", f"expected true, false, \"on\" or \"off\", got {state!r}")


def in_force(constitution: Constitution, conversation: Sequence[dict], field: dict | None = None) -> dict[str, dict]:
    """id -> {"on": bool, "by": "default" | "operator" | "user"} (and "refused": who tried to switch it without leave)
    for every declared behaviour; {} where the constitution declares none. Unknown ids are ignored."""
    if not constitution.behaviours:
        return {}
    out = {b.id: {"on": b.default, "by": "default"} for b in constitution.behaviours}
    allowed = {b.id: set(b.changed_by) for b in constitution.behaviours}

    def switch(bid: str, on: bool, who: str) -> None:
        if bid not in out:
            return
        if who in allowed[bid]:
            out[bid] = {"on": on, "by": who}
        else:
            out[bid]["refused"] = who

    for m in conversation:
        if m.get("role") == "system":
            for bid, state in _SWITCH.findall(str(m.get("content", ""))):
                switch(bid, state.lower() == "on", "operator")
    for bid, state in (field or {}).items():
        on = _state(state)
        if on is not None:
            switch(str(bid), on, "operator")
    for m in conversation:
        if m.get("role") == "user":
            for bid, state in _SWITCH.findall(str(m.get("content", ""))):
                switch(bid, state.lower() == "on", "user")
    return out


def of_row(constitution: Constitution, row: dict) -> dict[str, dict]:
    """The behaviours in force for ROW (its conversation and its `behaviours` field)."""
    from ..rows import conversation

    field = row.get(FIELD) if isinstance(row.get(FIELD), dict) else None
    return in_force(constitution, conversation(row), field)


def switched_text(constitution: Constitution, states: dict[str, dict]) -> str:
    """The descriptions of the behaviours switched from their default: what routing adds to a row's words."""
    return "\n".join(b.description for b in constitution.behaviours if b.id in states and states[b.id]["by"] != "default")


def note(constitution: Constitution, states: dict[str, dict]) -> str:
    """What the critic, the judge and the gate are told of the behaviours in force ("" where none is declared)."""
    if not states or not constitution.behaviours:
        return ""
    lines = [NOTE_HEAD]
    for b in constitution.behaviours:
        s = states.get(b.id) or {"on": b.default, "by": "default"}
        who = "by default" if s["by"] == "default" else f"switched by the {s['by']}"
        lines.append(f"- {b.id}: {'on' if s['on'] else 'off'} ({who}): {b.description}")
    return "\n".join(lines)


def note_hash(constitution: Constitution, states: dict[str, dict]) -> str:
    """The hash of what `note` tells a model (recorded per round, so --amend sees a changed description)."""
    from .model import short_hash

    return short_hash({"behaviours": note(constitution, states)})
