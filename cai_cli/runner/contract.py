"""The runner's contract with a stage and its caller: how a run is asked for (RunOptions), what a stage is (Stage: every
hook the runner calls; stages/base.py implements them), what it gives per input row (Outcome: rows, Dropped, Tally,
RowFailure), and what a run reports (StageStats, RunResult)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Protocol

from ..errors import RowFailure, choice
from ..flags import BATCH_SIZE, IO_PANEL, OUTPUT, RESTART, Flag
from ..jsonl import InputSpec, RowsInput
from ..progress import PROGRESS, ProgressMode
from ..rows import parse_shard
from .executor import BatchExecutor


class OnError(str, Enum):
    """--on-error: what a bad or failed row does."""

    fail = "fail"  # stop before any work on a bad row (or at the first failed one)
    skip = "skip"  # write it to OUT.errors.jsonl and go on


@dataclass
class RunOptions:
    """How a stage runs over its input: the options every stage command takes (fields named like their flags), and
    what callers running a stage as part of a longer job set (eval's phases)."""

    input: str | None = None  # INPUT, the command's argument (None or '-': stdin)
    output: Annotated[str | None, OUTPUT] = None
    on_error: Annotated[OnError, Flag(
        panel=IO_PANEL,
        help="fail: a bad row stops the run with one line naming it (a stage: before any work). skip: go on without it (a stage writes "
        "it to OUTPUT.errors.jsonl; show names it on stderr).",
    )] = OnError.fail
    errors: Annotated[str | None, Flag(
        panel=IO_PANEL,
        help="Where bad and failed rows go (default OUTPUT.errors.jsonl; writing to stdout: one stderr line each). A file you name is "
        "appended to, never replaced.",
    )] = None
    dropped: Annotated[str | None, Flag(
        panel=IO_PANEL,
        help="Where rows a stage leaves out on purpose go (default OUTPUT.dropped.jsonl; writing to stdout: one stderr line each). A "
        "file you name is appended to, never replaced.",
    )] = None
    limit: Annotated[int | None, Flag(help="At most N rows (after sharding; eval: from each prompt file; judge check: the first N pairs).", min=1, panel=IO_PANEL)] = None
    shard: Annotated[tuple[int, int] | None, Flag(
        cli_type=str, metavar="I/N", help="I/N: only the rows whose id falls in shard I of N (deterministic).", panel=IO_PANEL,
    )] = None
    batch_size: Annotated[int, BATCH_SIZE] = 16
    progress: Annotated[ProgressMode, PROGRESS] = ProgressMode.auto  # a bar on a terminal, else lines (progress.py); a bool: on/off
    restart: Annotated[bool, RESTART] = False  # discard the side file of an earlier run instead of resuming from it
    # Several inputs read as one (`cai eval`'s prompt files), instead of INPUT; LIMIT_EACH_INPUT: --limit takes up to
    # N rows from each of them rather than N in all.
    inputs: list[InputSpec] | None = None
    limit_each_input: bool = False
    rows: RowsInput | None = None  # rows built in memory (`cai synthesize`'s work units), instead of INPUT
    summary_file: str | None = None  # where the stage's summary JSON goes (default: OUT.summary.json with -o OUT)
    # Keep OUT.partial once OUT is written: a caller running the stage as one phase of a longer job (`cai eval`) reruns
    # it to resume, and a finished phase then resumes every row from it without loading a model.
    keep_side_file: bool = False
    executor: BatchExecutor | None = None  # where batches run; None: here, in this process (LocalExecutor)

    def __post_init__(self):
        self.on_error = choice(OnError, self.on_error, "--on-error")
        self.shard = parse_shard(self.shard)


@dataclass
class StageStats:
    tokens_in: int = 0
    tokens_out: int = 0
    truncated: int = 0  # generated texts cut at --max-tokens (finish_reason "length")
    cached_tokens: int = 0  # prompt tokens served from a prefix cache, where the engine reports it
    extra: dict = field(default_factory=dict)  # stage-specific counts for the summary line


@dataclass
class Dropped:
    """An output row a stage removes on purpose (a near-tie under --min-confidence, identical responses).

    It is never lost silently: with -o OUT it goes to OUT.dropped.jsonl with its `dropped` reason, and the
    summary line counts it.
    """

    row: dict
    reason: str

    def as_row(self) -> dict:
        return {**self.row, "dropped": self.reason}


@dataclass
class Tally:
    """What one input row adds to its stage's summary beyond its rows (label-prefs: every pair the judge compared),
    given beside the rows in `process`. It is kept in the side file, never written to OUT, and handed back to the
    stage's `recount` with the row's rows, so a summary after a resume counts every row once."""

    data: dict


# What `process` gives for one input row: one row, several (0..N, some maybe Dropped, maybe a Tally), or a failure.
Outcome = dict | list | Dropped | RowFailure


class Stage(Protocol):
    """The contract between the runner and a stage; stages/base.py's Stage implements every hook (a no-op where the
    stage has nothing to do) and declares the capabilities."""

    name: str
    stats: StageStats
    tallies: tuple[str, ...]  # the counts that add up over batches (cai_cli/scale/tallies.py)
    writes_summary: bool  # summary_dict() goes to OUT.summary.json (or --summary)

    def check(self, row: dict) -> None:
        """Raise FieldProblem for a row this stage cannot use. Runs before any model is loaded."""

    def start(self) -> None:
        """Load models. A file input: once there is work to do. A pipe: at once, while upstream works."""

    def check_loaded(self, row: dict) -> None:
        """Checks that need the model (prompt longer than the context): raise RowFailure."""

    def process(self, rows: list[dict]) -> Sequence[Outcome]:
        """Per input row, in order: a dict (one output row), a list of dicts and Dropped (0..N rows), or a RowFailure."""

    def fingerprint(self) -> dict:
        """Everything of the stage that changes its rows (model identity, engine, sampling, constitution, settings)."""

    def input_files(self) -> dict[str, str]:
        """The files it reads besides its input (what -> path): no output may be one of them."""

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """One finished input row, in input order, as its rows leave (stdout) or as OUT is written from the side file:
        a summary counted here, not in process(), counts every row exactly once whichever run finished it."""

    def summary(self) -> str:
        """Stage-specific words for the summary line ('' for none)."""

    def summary_dict(self) -> dict:
        """What OUT.summary.json holds, where writes_summary."""

    def screen(self, record: dict) -> dict:
        """One finished input row's record, in input order, just before recount: may move rows into its `dropped` with a
        reason (a near-duplicate of an earlier row), so the decision is the same whatever the batches, --ray or a resume."""


@dataclass
class RunResult:
    rows_in: int
    rows_out: int
    skipped: int
    failed: int
    resumed: int
    seconds: float
    dropped: int = 0
    selected: int | None = None  # rows taken under --limit or --shard (None: every valid row)
    summary: Path | None = None  # OUT.summary.json, when the stage writes one
    failed_again: int = 0  # of `failed`: rows that failed a check needing the model (too long), which a rerun fails again


def outcome_record(line: int, row_id: str, digest: str, outcome: Outcome) -> dict:
    """One finished input row, as the side file keeps it: its line, id and digest, its output rows, its dropped rows
    (with their `dropped` reason) and its tallies."""
    items = outcome if isinstance(outcome, list) else [outcome]
    kept, dropped, tallies = [], [], []
    for item in items:
        if isinstance(item, Dropped):
            dropped.append(item.as_row())
        elif isinstance(item, Tally):
            tallies.append(item.data)
        elif isinstance(item, dict):
            kept.append(item)
        else:
            raise TypeError(f"a stage's process() gave {type(item).__name__} for a row; expected a dict, a list of dicts, Dropped, Tally or RowFailure")
    return {"line": line, "id": row_id, "sha": digest, "rows": kept, **({"dropped": dropped} if dropped else {}), **({"tally": tallies} if tallies else {})}


def error_record(file: str, line: int | None, field: str | None, reason: str, row: dict | None, raw: str | None = None) -> dict:
    rec: dict[str, Any] = {"file": file, "line": line, "field": field, "error": reason}
    if row is not None:
        rec["row"] = row
    elif raw is not None:
        rec["raw"] = raw
    return rec
