"""Eval prompt sets: which rows are red-team and which benign, and the prompt files as the inputs of eval's runs."""

from __future__ import annotations

from pathlib import Path

from ..jsonl import BadField, InputSpec, display_name
from ..rows import FieldProblem, check_conversation, check_string
from .suites import Suite
from .summary import BENIGN, RED_TEAM, gold_side

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


class PromptRows:
    """What each row of an eval's prompt files becomes before any run reads it (InputSource's `convert`): a
    benchmark's CSV record mapped to a prompt row (SUITE), checked as a prompt row (or, with ANSWERS, one that holds
    the answers), with its `eval_set` from the row, the file's KIND or the benign marker. Ids are the stages' own
    (RowIds, after this), and each must name one prompt: a row whose id an earlier row of another line already has is
    refused (the answers are joined back to the prompts by id; the same line read again is itself). IDS is shared by
    every file of one eval."""

    def __init__(self, kind: str | None, benign_field: str | None, ids: dict, answers: bool = False,
                 baseline_field: str | None = None, gold: str | None = None, suite: Suite | None = None):
        from .suites import SuiteRows

        self.kind, self.benign_field, self.ids = kind, benign_field, ids
        self.answers, self.baseline_field, self.gold = answers, baseline_field, gold
        self.suite = SuiteRows(suite, kind) if suite is not None else None

    def __call__(self, row: dict, name: str, line: int) -> dict:
        if self.suite is not None:
            row = self.suite(row, name, line)
        try:
            if self.answers:
                eval_set = check_answer_row(row, self.kind, self.benign_field, self.baseline_field, self.gold)
            else:
                eval_set = check_prompt_row(row, self.kind, self.benign_field)
        except FieldProblem as problem:
            raise BadField(problem.field, problem.message) from None
        if row.get("id") is not None:
            first = self.ids.setdefault(str(row["id"]), (name, line))
            if first != (name, line):
                raise BadField("id", f"{row['id']!r} is the id of {first[0]}:{first[1]} too; each prompt needs its own id "
                               "(eval joins the answers to the prompts by id)")
        return {**row, "eval_set": eval_set}


def prompt_inputs(
    sources: list[tuple[str | None, str | None]],
    benign_field: str | None = None,
    answers: bool = False,
    baseline_field: str | None = None,
    gold: str | None = None,
    suite: Suite | None = None,
    stdin_copy: Path | None = None,
) -> list[InputSpec]:
    """The eval's prompt files as the inputs of its runs, each (path, kind) one InputSpec: read by every phase and by
    the stage that writes the rows, so they are read as one input, --limit taking N rows from each file. STDIN_COPY:
    where what stdin gave was kept (a pipe is read once, and every run reads the prompts again)."""
    ids: dict = {}
    specs = []
    for path, kind in sources:
        convert = PromptRows(kind, benign_field, ids, answers, baseline_field, gold, suite)
        if path in (None, "-"):
            assert stdin_copy is not None, "stdin is kept in the work folder first"
            specs.append(InputSpec(str(stdin_copy), "<stdin>", convert=convert, copy_of_stdin=True))
        else:
            specs.append(InputSpec(path, display_name(path), table=suite is not None, convert=convert))
    return specs
