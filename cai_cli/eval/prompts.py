"""Eval prompt sets: which rows are red-team and which benign, and loading them from files."""

from __future__ import annotations

from ..errors import CaiError, InputError
from ..jsonl import display_name, read_lines
from ..rows import FieldProblem, check_conversation, in_shard, row_id
from ..runner import RunOptions, error_record
from .stats import BENIGN, RED_TEAM

_SET_NAMES = {"red_team": RED_TEAM, "red-team": RED_TEAM, "harmful": RED_TEAM, "benign": BENIGN, "helpful": BENIGN}


def eval_set_of(row: dict, default: str | None) -> str:
    """red_team or benign: the row's `eval_set`, else the file's kind, else benign when it has `risky_looking`."""
    if "eval_set" in row:
        value = row["eval_set"]
        if not isinstance(value, str) or value.lower() not in _SET_NAMES:
            raise FieldProblem("eval_set", f"expected red_team or benign, got {value!r}")
        return _SET_NAMES[value.lower()]
    if default is not None:
        return default
    return BENIGN if "risky_looking" in row else RED_TEAM


def check_prompt_row(row: dict, default: str | None) -> str:
    check_conversation(row)
    if "risky_looking" in row and not isinstance(row["risky_looking"], bool):
        raise FieldProblem("risky_looking", f"expected true or false, got {row['risky_looking']!r}")
    if "category" in row and not isinstance(row["category"], (str, type(None))):
        raise FieldProblem("category", f"expected a string, got {type(row['category']).__name__}")
    return eval_set_of(row, default)


def load_prompts(sources: list[tuple[str | None, str | None]], run: RunOptions) -> tuple[list[dict], list[dict]]:
    """(rows, error records) from every (path, kind) source; `--limit` applies to each file, `--shard` to all."""
    rows: list[dict] = []
    bad: list[tuple[InputError, dict]] = []
    for path, kind in sources:
        name = display_name(path)
        lines = read_lines(path)
        if not lines:
            raise CaiError(f"{name}: no rows (the input is empty)")
        taken = 0
        for item in lines:
            if item.error is not None:
                bad.append((item.error, error_record(name, item.line, None, item.error.reason, None, item.raw)))
                continue
            try:
                eval_set = check_prompt_row(item.row, kind)
            except FieldProblem as problem:
                err = InputError(problem.message, file=name, line=item.line, field=problem.field)
                bad.append((err, error_record(name, item.line, problem.field, problem.message, item.row)))
                continue
            row = dict(item.row)
            row.setdefault("id", row_id(row))
            row["eval_set"] = eval_set
            if not in_shard(str(row["id"]), run.shard):
                continue
            if run.limit is not None and taken >= run.limit:
                continue
            taken += 1
            rows.append(row)
    if bad and run.on_error == "fail":
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise CaiError(f"{bad[0][0]}{more}; nothing was written. Fix the input, or use --on-error skip to evaluate the valid rows")
    _dedupe_ids(rows)
    if not rows:
        raise CaiError("no prompts to evaluate (every row was skipped, or --shard left none)")
    return rows, [rec for _, rec in bad]


def _dedupe_ids(rows: list[dict]) -> None:
    # Answers are joined back to prompts by id, so two files reusing an id must not collide.
    seen: dict[str, int] = {}
    for row in rows:
        rid = str(row["id"])
        k = seen.get(rid, 0)
        seen[rid] = k + 1
        if k:
            row["id"] = f"{rid}#{k}"

