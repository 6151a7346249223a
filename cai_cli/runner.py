"""The stage I/O contract: rows stream through a batch at a time, each input row gives 0..N output rows,
a fingerprinted, locked side file makes a rerun resume (never mixing settings or inputs), and the output
appears atomically. Where rows go and what a run never destroys: output.py."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from .destination import Destination
from .errors import CaiError, InputError, RowFailure, choice
from .executor import BatchExecutor, LocalExecutor
from .jsonl import InputChain, InputLine, InputSource, InputSpec, RowsInput, open_input
from .output import Outputs, SetAside, os_error_message
from .progress import Progress, ProgressMode
from .resume import check_fingerprint, row_digest, side_records, stage_fingerprint
from .rows import FieldProblem, RowIds, in_shard


class OnError(str, Enum):
    """--on-error: what a bad or failed row does."""

    fail = "fail"  # stop before any work on a bad row (or at the first failed one)
    skip = "skip"  # write it to OUT.errors.jsonl and go on


@dataclass
class RunOptions:
    input: str | None = None
    output: str | None = None
    on_error: str = OnError.fail.value
    errors_file: str | None = None  # --errors: a file of the user's, appended to (default: OUT.errors.jsonl, the run's own)
    dropped_file: str | None = None  # --dropped: likewise (default: OUT.dropped.jsonl; writing to stdout: stderr lines)
    limit: int | None = None
    shard: tuple[int, int] | None = None
    batch_size: int = 16
    progress: ProgressMode | str | bool | None = ProgressMode.auto  # a bar on a terminal, else lines (progress.py)
    restart: bool = False  # discard the side file of an earlier run instead of resuming from it
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
    name: str
    stats: StageStats

    def check(self, row: dict) -> None:
        """Raise FieldProblem for a row this stage cannot use. Runs before any model is loaded."""

    def start(self) -> None:
        """Load models. A file input: once there is work to do. A pipe: at once, while upstream works."""

    def check_loaded(self, row: dict) -> None:
        """Checks that need the model (prompt longer than the context): raise RowFailure."""

    def process(self, rows: list[dict]) -> Sequence[Outcome]:
        """Per input row, in order: a dict (one output row), a list of dicts and Dropped (0..N rows), or a RowFailure."""

    def summary(self) -> str:
        """Stage-specific words for the summary line ('' for none)."""

    # Optional: settings() -> dict, the stage's own options that shape its rows; fingerprint() -> dict,
    # everything else that does (EngineStage: model identity, engine, sampling, constitution, settings());
    # input_files() -> {what: path}, the files it reads besides its input (no output may be one of them);
    # recount(rows, dropped, tallies), called once per finished input row, in input order, as its rows leave
    # (for stdout) or as OUT is written from the side file: a summary counted there, not in process(),
    # counts every row exactly once whichever run finished it; summary_dict() -> dict, written to
    # OUT.summary.json at the end; screen(record) -> record, called once per finished input row, in input order,
    # just before recount (as its rows leave, or as OUT is written from the side file), which may move rows into
    # the record's `dropped` with a reason: a decision that depends on the rows before (a near-duplicate of an
    # earlier row) is then the same whatever the batches, --ray, or a crash and resume saw.


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


class _Run:
    """One run of a stage over one input; see run_stage."""

    def __init__(self, stage: Stage, opts: RunOptions, outputs: Outputs, source: InputSource | InputChain | RowsInput):
        self.stage, self.opts, self.source, self.name = stage, opts, source, source.name
        self.fail = choice(OnError, opts.on_error, "--on-error") is OnError.fail
        self.dest = Destination(outputs, source.where, _recounter(stage), getattr(stage, "screen", None))
        self.partial = outputs.partial
        self.errors = SetAside(outputs.errors, outputs.errors_named, self.dest.note)
        self.rows_in = self.skipped = self.failed = self.resumed = 0
        self.failed_again = 0  # failed a check that needs the model (check_loaded): a rerun fails them again
        self.selected = 0  # valid rows this run took (after --shard and --limit)
        self.taken: dict[int, int] = {}  # per input (limit_each_input) or in all (key 0): rows --limit has taken
        self.selected_lines: set[int] | None = set() if opts.limit_each_input else None  # which, where that is not a prefix
        self.started = False
        self.digests: dict[int, str] = {}  # line -> digest of the input row, until its record is written
        self.executor: BatchExecutor = opts.executor or LocalExecutor()
        self.progress: Progress | None = None  # while stream_rows() runs

    # ---------------------------------------------------------------- input

    def bad(self, item: InputLine, error: InputError) -> None:
        self.skipped += 1
        file, line = (error.file, error.line) if error.line is not None else self.source.where(item.line)
        self.set_error(error_record(file, line, error.field, error.reason, item.row, item.raw), "skipped")

    def set_error(self, rec: dict, verb: str) -> None:
        line = f"cai: {verb} {rec['file']}:{rec['line']}: {rec['field'] or 'row'}: {rec['error']}"
        self.errors.add({"stage": self.stage.name, **rec}, line)

    def validate(self, item: InputLine) -> InputError | None:
        if item.error is not None:
            return item.error
        assert item.row is not None  # a line without an error has its row
        try:
            self.stage.check(item.row)
        except FieldProblem as problem:
            file, line = self.source.where(item.line)
            return InputError(problem.message, file=file, line=line, field=problem.field)
        return None

    def take(self, item: InputLine) -> bool | None:
        """Whether --limit leaves room for ITEM's row (None: no more rows at all, as `head`)."""
        limit = self.opts.limit
        if limit is None:
            return True
        key = item.part if self.opts.limit_each_input else 0
        if self.taken.get(key, 0) >= limit:
            return False if self.opts.limit_each_input else None
        self.taken[key] = self.taken.get(key, 0) + 1
        return True

    def first_pass(self, source: InputSource | InputChain | RowsInput) -> int:
        """Validate every line of a file before any model loads; returns how many rows this run selects."""
        first: InputError | None = None
        selected: dict[int, int] = {}
        ids = RowIds()
        for item in source.lines():
            assert item is not None  # only a pipe yields None (while it waits); this pass reads a file
            self.rows_in += 1
            rid = ids(item.row) if item.row is not None else None  # a bad row keeps its place in the count of repeats
            error = self.validate(item)
            if error is not None:
                if self.fail:
                    self.skipped += 1
                    first = first or error
                else:
                    self.bad(item, error)
                continue
            assert rid is not None  # validated: the line has its row
            if in_shard(rid, self.opts.shard):
                key = item.part if self.opts.limit_each_input else 0
                selected[key] = selected.get(key, 0) + 1
        if self.rows_in == 0:
            raise CaiError(f"{self.name}: no rows (the input is empty)")
        if first is not None:
            more = f" (and {self.skipped - 1} more bad rows)" if self.skipped > 1 else ""
            raise CaiError(f"{first}{more}; nothing was written. Fix the input, or use --on-error skip to process the valid rows")
        limit = self.opts.limit
        return sum(min(n, limit) if limit is not None else n for n in selected.values())

    def start(self) -> None:
        if self.started:
            return
        self.started = True  # before start(): close() then releases whatever start() took before it failed
        self.executor.start(self.stage, self.fail)
        self.dest.ready = True
        if self.partial is not None:
            # What only a started engine knows (the model an OpenAI-compatible server serves) joins the fingerprint.
            check_fingerprint(self.dest.side, stage_fingerprint(self.stage))

    # ---------------------------------------------------------------- the work

    def failure_message(self, line: int, failure: RowFailure) -> str:
        what = f"field '{failure.field}': " if failure.field else ""
        file, at = self.source.where(line)
        msg = f"{file}:{at}: {what}{failure.reason}"
        if self.partial is not None and (self.dest.finished_here or self.dest.side is not None):
            return msg + f"; finished rows are kept in {self.partial}, rerun to resume"
        if self.partial is None and self.dest.rows_out:
            return msg + f"; the {self.dest.rows_out} rows before it were written"
        return msg + "; nothing was written"

    def run_batch(self, batch: list[tuple[int, dict]]) -> None:
        """Hand BATCH to the executor and settle the batches it has finished (a local run: this one, at once)."""
        self.start()
        for done, outcomes in self.executor.submit(batch):
            self.settle(done, outcomes)

    def finish_batches(self) -> None:
        """Wait for the batches still running (on a cluster) and settle them."""
        if self.started:
            for done, outcomes in self.executor.finish():
                self.settle(done, outcomes)

    def settle(self, done: list[tuple[int, dict]], outcomes: Sequence[Outcome]) -> None:
        """A finished batch's outcomes into the side file (or stdout) and the errors file, in input order."""
        if len(outcomes) != len(done):
            raise RuntimeError(f"{self.stage.name}: {len(outcomes)} outcomes for {len(done)} rows")
        finished: list[dict] = []
        for (line, row), outcome in zip(done, outcomes):
            if isinstance(outcome, RowFailure):
                if self.fail:
                    self.emit(finished)
                    raise CaiError(self.failure_message(line, outcome))
                self.failed += 1
                self.failed_again += outcome.needs_model
                self.set_error(error_record(*self.source.where(line), outcome.field, outcome.reason, row), "failed")
                continue
            finished.append(outcome_record(line, str(row["id"]), self.digests.pop(line), outcome))
        self.emit(finished)
        if self.progress is not None:
            self.progress.done(len(done))

    def emit(self, records: list[dict]) -> None:
        self.dest.emit(records)

    def stream_rows(self, source: InputSource | InputChain | RowsInput, validated: bool, progress: Progress) -> int | None:
        """Second pass over a file, or the only pass over a pipe. Returns the last selected line (None: none)."""
        opts = self.opts
        done = side_records(self.dest.side)
        next_done = next(done, None)
        batch: list[tuple[int, dict]] = []
        selected, last_line = 0, None
        ids = RowIds()
        self.progress = progress
        for item in source.lines(idle=not validated):
            if item is None:  # upstream is quiet: send what we hold instead of waiting for a full batch
                if batch:
                    self.run_batch(batch)
                    batch = []
                continue
            if not validated:
                self.rows_in += 1
            rid = ids(item.row) if item.row is not None else None  # as in the first pass: every row counts
            error = self.validate(item)
            if error is not None:
                if validated:
                    continue  # reported by the first pass
                if self.fail:
                    if batch:  # the rows before it are good: finish them first
                        self.run_batch(batch)
                        batch = []
                    self.finish_batches()
                    kept = f"the rows before it are finished and kept in {self.partial}" if self.partial is not None else "the rows before it were processed"
                    raise CaiError(f"{error}; {kept}. Fix the input, or use --on-error skip to process the valid rows")
                self.bad(item, error)
                continue
            row = item.row
            assert row is not None  # validated: the line has its row
            digest = row_digest(row)  # the row as read, before the runner gives it an id
            if row.get("id") is None:
                row["id"] = rid
            if not in_shard(str(row["id"]), opts.shard):
                continue
            room = self.take(item)
            if room is None:
                break  # like `head`: a pipe is not read further
            if not room:
                continue
            selected += 1
            if self.selected_lines is not None:
                self.selected_lines.add(item.line)
            self.selected = selected
            last_line = item.line
            while next_done is not None and next_done["line"] < item.line:
                next_done = next(done, None)
            if next_done is not None and next_done["line"] == item.line:
                if next_done.get("sha") != digest:
                    file, line = self.source.where(item.line)
                    raise CaiError(
                        f"{file}:{line}: this row is not the one {self.partial} finished at this line: the input differs "
                        "from the one the side file was made from; rerun with that input to resume, or add --restart to start over"
                    )
                self.resumed += 1
                progress.resumed(1)
                continue
            self.digests[item.line] = digest
            batch.append((item.line, row))
            if len(batch) >= max(1, opts.batch_size):
                self.run_batch(batch)
                batch = []
        if batch:
            self.run_batch(batch)
        self.finish_batches()
        if self.rows_in == 0:
            raise CaiError(f"{self.name}: no rows (the input is empty)")
        return last_line


def _recounter(stage: Stage) -> Callable[[dict], None]:
    hook = getattr(stage, "recount", None)
    if hook is None:
        return lambda rec: None
    return lambda rec: hook(rec["rows"], rec.get("dropped", []), rec.get("tally", []))


def stage_inputs(stage: Stage, path: str | None, specs: list[InputSpec] | None = None, in_memory: bool = False) -> list[tuple[str, str | None]]:
    """(what, path) of every file the run reads: its input (None: stdin; nothing for rows built IN_MEMORY), or each of
    SPECS, and the stage's own (a constitution...)."""
    own = getattr(stage, "input_files", None)
    extra = own() if own is not None else {}
    if in_memory:
        return list(extra.items())
    read = [("an input", spec.read_from) for spec in specs] if specs else [("the input", None if path in (None, "-") else path)]
    return [*read, *extra.items()]


def run_stage(stage: Stage, opts: RunOptions) -> RunResult:
    """Run STAGE over OPTS.input, a batch at a time; see docs/design.md, "Stage I/O contract"."""
    started = time.monotonic()
    outputs = Outputs.plan(opts.output, opts.errors_file, opts.dropped_file, summary=hasattr(stage, "summary_dict"), summary_file=opts.summary_file)
    source = open_input(opts.input, opts.inputs, opts.rows)
    run = _Run(stage, opts, outputs, source)
    dest = run.dest
    finished = False
    try:
        outputs.check(stage_inputs(stage, opts.input, opts.inputs, opts.rows is not None))
        dest.open(opts.restart, lambda: stage_fingerprint(stage), lambda rec: rec.get("stage") == stage.name)
        total = run.first_pass(source) if source.seekable else None
        if not source.seekable:
            run.start()  # a pipe: load the model while the stage upstream works
        with Progress(stage.name, opts.progress, total, note=_where_rows_go(outputs)) as progress:
            last_line = run.stream_rows(source, source.seekable, progress)
        run.errors.finish()
        shard, chosen = opts.shard, run.selected_lines
        if last_line is None:
            keep = None
        elif chosen is not None:  # --limit per input: the rows taken are not one prefix of the input
            keep = lambda rec: rec["line"] in chosen  # noqa: E731
        else:
            keep = lambda rec: rec["line"] <= last_line and in_shard(str(rec.get("id")), shard)  # noqa: E731
        dest.finish(keep, getattr(stage, "summary_dict", None))
        finished = True
    except OSError as exc:
        message = os_error_message(exc, dest.writing, _kept(run))
        if message is None:
            raise
        raise CaiError(message) from exc
    except UnicodeEncodeError as exc:
        raise CaiError(f"{run.name}: a row holds text that cannot be written as UTF-8 ({exc.reason}); {_kept(run)}") from exc
    finally:
        if not finished:
            run.errors.discard()
        source.close()
        if run.started:
            run.executor.close()
        # The side file stays while a rerun could finish a row (a run-time failure) or a later phase reads it back.
        dest.close(finished, failed=run.failed > run.failed_again or opts.keep_side_file)
    result = RunResult(
        rows_in=run.rows_in,
        rows_out=dest.rows_out,
        skipped=run.skipped,
        failed=run.failed,
        resumed=run.resumed,
        seconds=time.monotonic() - started,
        dropped=dest.dropped,
        selected=run.selected if opts.limit is not None or opts.shard is not None else None,
        summary=outputs.summary,
        failed_again=run.failed_again,
    )
    _print_summary(stage, result, run.errors.kept_in, run.partial if run.failed > run.failed_again else None, dest.dropped_in)
    return result


def _kept(run: _Run) -> str:
    """Where the finished rows are, for a message about a run that stopped."""
    if run.partial is not None and (run.dest.finished_here or run.dest.side is not None):
        return f"the finished rows are kept in {run.partial}: rerun the same command to resume"
    if run.partial is None and run.dest.rows_out:
        return f"the {run.dest.rows_out} rows before it were written"
    return "nothing was written"


def _where_rows_go(outputs: Outputs) -> str:
    """For a progress line: where the rows finished so far already are."""
    if outputs.partial is not None:
        return f"finished rows are in {outputs.partial}, flushed after each batch"
    return f"finished rows are written to {outputs.stream or 'stdout'} after each batch"


def _print_summary(stage, result: RunResult, errors_path, partial_path, dropped_path) -> None:
    stats = stage.stats
    tps = stats.tokens_out / result.seconds if result.seconds > 0 else 0.0
    parts = [
        f"{result.rows_in} in",
        f"{result.rows_out} out",
        f"{result.skipped} skipped",
        f"{result.failed} failed",
    ]
    if result.selected is not None:
        parts.append(f"{result.selected} taken by --limit/--shard")
    if result.dropped:
        parts.append(f"{result.dropped} dropped")
    if result.resumed:
        parts.append(f"{result.resumed} resumed")
    line = f"cai {stage.name}: rows {', '.join(parts)}"
    if stats.tokens_out:
        line += f" | tokens {stats.tokens_in} in, {stats.tokens_out} out | {result.seconds:.1f}s, {tps:.1f} tok/s"
    elif stats.tokens_in:  # a stage that only reads (score): "0 out, 0.0 tok/s" would read as a fault
        line += f" | tokens {stats.tokens_in} in | {result.seconds:.1f}s"
    else:  # a stage that only scores options (label-prefs' judge) counts no tokens
        line += f" | {result.seconds:.1f}s"
    if stats.truncated:
        line += f" | {stats.truncated} truncated at --max-tokens"
    if stats.cached_tokens:
        line += f" | {stats.cached_tokens} prompt tokens from cache"
    extra = stage.summary()
    if extra:
        line += f" | {extra}"
    print(line, file=sys.stderr)
    if dropped_path is not None:
        print(f"cai: {result.dropped} dropped rows were written to {dropped_path}", file=sys.stderr)
    elif result.dropped:
        print(f"cai: {result.dropped} dropped rows were named above; add --dropped PATH to keep them", file=sys.stderr)
    if result.summary is not None:
        print(f"cai {stage.name}: summary -> {result.summary}", file=sys.stderr)
    if errors_path is not None:
        print(f"cai: bad or failed rows were written to {errors_path}", file=sys.stderr)
    if result.failed_again:
        print(
            f"cai: {result.failed_again} rows failed a check that needs the model (such as a prompt longer than its context): "
            "they will fail again on a rerun with this model; shorten them or use a model that takes them",
            file=sys.stderr,
        )
    if partial_path is not None:
        retry = result.failed - result.failed_again
        print(f"cai: {retry} rows failed at run time; rerun the same command to retry them (finished rows stay in {partial_path})", file=sys.stderr)
