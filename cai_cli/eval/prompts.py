"""Eval prompt sets: which rows are red-team and which benign, and loading them from files."""

from __future__ import annotations

from ..errors import CaiError, InputError
from ..jsonl import display_name, read_lines
from ..rows import FieldProblem, check_conversation, check_string, in_shard, row_id
from ..runner import RunOptions, error_record
from .stats import BENIGN, RED_TEAM, gold_side
from .suites import read_suite

_SET_NAMES = {"red_team": RED_TEAM, "red-team": RED_TEAM, "harmful": RED_TEAM, "benign": BENIGN, "helpful": BENIGN}


def eval_set_of(row: dict, default: str | None, benign_field: str | None = None) -> str:
    """red_team or benign: the row's `eval_set`, else the file's kind, else the benign marker.

    Without BENIGN_FIELD a row with `risky_looking` (true or false) is benign, others red-team. With
    it (`--benign-field safe`), every other row must carry that field: true is benign (a prompt that
    should be answered, counted in over-refusal), false is red-team.
    """
    if "eval_set" in row:
        value = row["eval_set"]
        if not isinstance(value, str) or value.lower() not in _SET_NAMES:
            raise FieldProblem("eval_set", f"expected red_team or benign, got {value!r}")
        return _SET_NAMES[value.lower()]
    if default is not None:
        return default
    if benign_field is not None:
        if benign_field not in row:
            raise FieldProblem(benign_field, f"missing: --benign-field {benign_field} marks each row benign (true) or red-team (false); or give the row an `eval_set`")
        return BENIGN if row[benign_field] else RED_TEAM
    return BENIGN if "risky_looking" in row else RED_TEAM


def check_prompt_row(row: dict, default: str | None, benign_field: str | None = None) -> str:
    check_conversation(row)
    for marker in {"risky_looking", benign_field or "risky_looking"}:
        if marker in row and not isinstance(row[marker], bool):
            raise FieldProblem(marker, f"expected true or false, got {row[marker]!r}")
    if "category" in row and not isinstance(row["category"], (str, type(None))):
        raise FieldProblem("category", f"expected a string, got {type(row['category']).__name__}")
    return eval_set_of(row, default, benign_field)


def check_answer_row(row: dict, default: str | None, benign_field: str | None, baseline_field: str | None, gold: str | None = None) -> str:
    """A row for `cai eval --answers`: a prompt row that also holds the answer (and the baseline's, and which is better)."""
    eval_set = check_prompt_row(row, default, benign_field)
    check_string(row, "response", "the answer to evaluate")
    if baseline_field is not None:
        check_string(row, baseline_field, "the baseline's answer (--baseline-field)")
        if gold is not None:
            gold_side(row, gold, baseline_field)
    return eval_set


def load_prompts(
    sources: list[tuple[str | None, str | None]],
    run: RunOptions,
    benign_field: str | None = None,
    answers: bool = False,
    baseline_field: str | None = None,
    where: dict | None = None,
    suite: str | None = None,
    gold: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """(rows, error records) from every (path, kind) source; `--limit` applies to each file, `--shard` to all.

    With ANSWERS the rows must also hold `response` (and BASELINE_FIELD, and a valid GOLD value when they have
    one). With SUITE every file is that benchmark's published CSV (cai_cli.eval.suites). WHERE, when given,
    receives each row's source (id -> (file, line)), so later failures can name the user's file and line."""
    rows: list[dict] = []
    origins: list[tuple[str, int]] = []
    bad: list[tuple[InputError, dict]] = []
    for path, kind in sources:
        name = display_name(path)
        lines = read_suite(path, suite, kind) if suite is not None else read_lines(path)
        if not lines:
            raise CaiError(f"{name}: no rows (the input is empty)")
        taken = 0
        for item in lines:
            if item.error is not None:
                bad.append((item.error, error_record(name, item.line, None, item.error.reason, None, item.raw)))
                continue
            assert item.row is not None  # a line without an error has its row
            try:
                if answers:
                    eval_set = check_answer_row(item.row, kind, benign_field, baseline_field, gold)
                else:
                    eval_set = check_prompt_row(item.row, kind, benign_field)
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
            origins.append((name, item.line))
    if bad and run.on_error == "fail":
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise CaiError(f"{bad[0][0]}{more}; nothing was written. Fix the input, or use --on-error skip to evaluate the valid rows")
    _dedupe_ids(rows)
    if where is not None:
        where.update({str(r["id"]): origin for r, origin in zip(rows, origins)})
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

