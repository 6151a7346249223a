"""The stage I/O contract: rows stream through a batch at a time, each input row gives 0..N output rows,
a fingerprinted side file makes a rerun resume (never mixing settings), and the output appears atomically."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from .errors import CaiError, InputError, RowFailure, choice
from .jsonl import AtomicWriter, InputLine, InputSource, StdoutWriter
from .progress import progress_bar
from .resume import AppendLog, SideFile, check_fingerprint, open_side_file, scan_side_file, side_records, stage_fingerprint
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
    errors_file: str | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    batch_size: int = 16
    progress: bool | None = None  # None: only when stderr is a terminal
    restart: bool = False  # discard the side file of an earlier run instead of resuming from it


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


# What `process` gives for one input row: one row, several (0..N, some maybe Dropped), or a failure.
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
    # everything else that does (EngineStage: model identity, engine, sampling, constitution, settings()).


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


def split_outcome(outcome: Outcome) -> tuple[list[dict], list[dict]]:
    """(output rows, dropped rows with their `dropped` reason) of one input row's outcome."""
    items = outcome if isinstance(outcome, list) else [outcome]
    kept, dropped = [], []
    for item in items:
        if isinstance(item, Dropped):
            dropped.append(item.as_row())
        elif isinstance(item, dict):
            kept.append(item)
        else:
            raise TypeError(f"a stage's process() gave {type(item).__name__} for a row; expected a dict, a list of dicts, Dropped or RowFailure")
    return kept, dropped


def error_record(file: str, line: int | None, field: str | None, reason: str, row: dict | None, raw: str | None = None) -> dict:
    rec: dict[str, Any] = {"file": file, "line": line, "field": field, "error": reason}
    if row is not None:
        rec["row"] = row
    elif raw is not None:
        rec["raw"] = raw
    return rec


class _Errors:
    """Bad and failed rows, streamed to the errors file (or, with no file, one stderr line each)."""

    def __init__(self, path: Path | None, clear_stale: bool):
        self.path = path
        self.writer = AtomicWriter(path) if path is not None else None
        self.clear_stale = clear_stale
        self.count = 0

    def add(self, rec: dict, verb: str) -> None:
        self.count += 1
        if self.writer is not None:
            self.writer.write(rec)
        else:
            print(f"cai: {verb} {rec['file']}:{rec['line']}: {rec['field'] or 'row'}: {rec['error']}", file=sys.stderr)

    def finish(self) -> None:
        if self.writer is None:
            return
        if self.count:
            self.writer.commit()
        elif self.clear_stale and self.path is not None and self.path.exists():
            self.path.unlink()  # stale errors from an earlier run that have since been fixed

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()


class _Run:
    """One run of a stage over one input; see run_stage."""

    def __init__(self, stage: Stage, opts: RunOptions):
        self.stage, self.opts = stage, opts
        self.fail = choice(OnError, opts.on_error, "--on-error") is OnError.fail
        self.out_path = Path(opts.output) if opts.output not in (None, "-") else None
        out = self.out_path
        self.partial = out.with_name(out.name + ".partial") if out else None
        self.dropped_path = out.with_name(out.name + ".dropped.jsonl") if out else None
        errors_path = Path(opts.errors_file) if opts.errors_file else (out.with_name(out.name + ".errors.jsonl") if out else None)
        self.errors = _Errors(errors_path, clear_stale=out is not None)
        self.rows_in = self.skipped = self.failed = self.resumed = self.rows_out = self.dropped = 0
        self.selected = 0  # valid rows this run took (after --shard and --limit)
        self.finished_here = 0  # input rows finished by this run
        self.started = False
        self.side: SideFile | None = None  # the side file found at the start, when resuming
        self.sink: AppendLog | None = None
        self.fingerprint: dict | None = None

    # ---------------------------------------------------------------- input

    def bad(self, name: str, item: InputLine, error: InputError) -> None:
        self.skipped += 1
        self.errors.add(error_record(name, item.line, error.field, error.reason, item.row, item.raw), "skipped")

    def validate(self, item: InputLine, name: str) -> InputError | None:
        if item.error is not None:
            return item.error
        assert item.row is not None  # a line without an error has its row
        try:
            self.stage.check(item.row)
        except FieldProblem as problem:
            return InputError(problem.message, file=name, line=item.line, field=problem.field)
        return None

    def first_pass(self, source: InputSource) -> int:
        """Validate every line of a file before any model loads; returns how many rows this run selects."""
        first: InputError | None = None
        selected = 0
        ids = RowIds()
        for item in source.lines(digest=True):
            assert item is not None  # only a pipe yields None (while it waits); this pass reads a file
            self.rows_in += 1
            rid = ids(item.row) if item.row is not None else None  # a bad row keeps its place in the count of repeats
            error = self.validate(item, source.name)
            if error is not None:
                if self.fail:
                    self.skipped += 1
                    first = first or error
                else:
                    self.bad(source.name, item, error)
                continue
            assert rid is not None  # validated: the line has its row
            if in_shard(rid, self.opts.shard):
                selected += 1
        if self.rows_in == 0:
            raise CaiError(f"{source.name}: no rows (the input is empty)")
        if first is not None:
            more = f" (and {self.skipped - 1} more bad rows)" if self.skipped > 1 else ""
            raise CaiError(f"{first}{more}; nothing was written. Fix the input, or use --on-error skip to process the valid rows")
        return min(selected, self.opts.limit) if self.opts.limit is not None else selected

    # ---------------------------------------------------------------- side file

    def open_side_file(self, input_identity: str) -> None:
        assert self.partial is not None  # run_stage opens a side file only with -o OUT
        self.fingerprint = stage_fingerprint(self.stage, input_identity)
        self.side, self.sink = open_side_file(self.partial, self.opts.restart, lambda: self.fingerprint)

    def start(self, input_identity: str) -> None:
        if self.started:
            return
        self.stage.start()
        self.started = True
        if self.partial is not None:
            # What only a started engine knows (the model an OpenAI-compatible server serves) joins the fingerprint.
            self.fingerprint = stage_fingerprint(self.stage, input_identity)
            check_fingerprint(self.side, self.fingerprint)

    # ---------------------------------------------------------------- the work

    def failure_message(self, name: str, line: int, failure: RowFailure) -> str:
        what = f"field '{failure.field}': " if failure.field else ""
        msg = f"{name}:{line}: {what}{failure.reason}"
        if self.partial is not None and (self.finished_here or self.side is not None):
            return msg + f"; finished rows are kept in {self.partial}, rerun to resume"
        if self.partial is None and self.rows_out:
            return msg + f"; the {self.rows_out} rows before it were written"
        return msg + "; nothing was written"

    def run_batch(self, name: str, batch: list[tuple[int, dict]], input_identity: str) -> None:
        self.start(input_identity)
        stage = self.stage
        ready = []
        for line, row in batch:
            try:
                stage.check_loaded(row)
            except RowFailure as failure:
                if self.fail:
                    raise CaiError(self.failure_message(name, line, failure)) from None
                self.failed += 1
                self.errors.add(error_record(name, line, failure.field, failure.reason, row), "failed")
                continue
            ready.append((line, row))
        if not ready:
            return
        outcomes = stage.process([copy.deepcopy(row) for _, row in ready])
        if len(outcomes) != len(ready):
            raise RuntimeError(f"{stage.name}: process() gave {len(outcomes)} outcomes for {len(ready)} rows")
        finished: list[dict] = []
        for (line, row), outcome in zip(ready, outcomes):
            if isinstance(outcome, RowFailure):
                if self.fail:
                    self.emit(finished)
                    raise CaiError(self.failure_message(name, line, outcome))
                self.failed += 1
                self.errors.add(error_record(name, line, outcome.field, outcome.reason, row), "failed")
                continue
            kept, dropped = split_outcome(outcome)
            finished.append({"line": line, "id": str(row["id"]), "rows": kept, **({"dropped": dropped} if dropped else {})})
        self.emit(finished)

    def emit(self, records: list[dict]) -> None:
        if not records:
            return
        self.finished_here += len(records)
        if self.sink is not None:
            self.sink.write(records)
            return
        rows = [r for rec in records for r in rec["rows"]]
        self.rows_out += len(rows)
        self.dropped += sum(len(rec.get("dropped", ())) for rec in records)
        StdoutWriter().write(rows)

    def stream(self, source: InputSource, validated: bool, total: int | None, progress) -> int | None:
        """Second pass over a file, or the only pass over a pipe. Returns the last selected line (None: none)."""
        name, opts = source.name, self.opts
        done = side_records(self.side)
        next_done = next(done, None)
        batch: list[tuple[int, dict]] = []
        selected, last_line = 0, None
        ids = RowIds()
        task = progress.add_task(self.stage.name, total=total)
        identity = source.identity
        for item in source.lines(idle=not validated):
            if item is None:  # upstream is quiet: send what we hold instead of waiting for a full batch
                if batch:
                    self.run_batch(name, batch, identity)
                    progress.advance(task, len(batch))
                    batch = []
                continue
            if not validated:
                self.rows_in += 1
            rid = ids(item.row) if item.row is not None else None  # as in the first pass: every row counts
            error = self.validate(item, name)
            if error is not None:
                if validated:
                    continue  # reported by the first pass
                if self.fail:
                    if batch:  # the rows before it are good: finish them first
                        self.run_batch(name, batch, identity)
                        batch = []
                    kept = f"the rows before it are finished and kept in {self.partial}" if self.partial is not None else "the rows before it were processed"
                    raise CaiError(f"{error}; {kept}. Fix the input, or use --on-error skip to process the valid rows")
                self.bad(name, item, error)
                continue
            row = item.row
            assert row is not None  # validated: the line has its row
            if row.get("id") is None:
                row["id"] = rid
            if not in_shard(str(row["id"]), opts.shard):
                continue
            if opts.limit is not None and selected >= opts.limit:
                break  # like `head`: a pipe is not read further
            selected += 1
            self.selected = selected
            last_line = item.line
            while next_done is not None and next_done["line"] < item.line:
                next_done = next(done, None)
            if next_done is not None and next_done["line"] == item.line:
                if str(next_done.get("id")) != str(row["id"]):
                    raise CaiError(
                        f"{name}:{item.line}: this row's id is {row['id']!r}, but {self.partial} finished {next_done.get('id')!r} "
                        "at this line: the input is not the one the side file was made from; rerun with it, or add --restart"
                    )
                self.resumed += 1
                progress.advance(task, 1)
                continue
            batch.append((item.line, row))
            if len(batch) >= max(1, opts.batch_size):
                self.run_batch(name, batch, identity)
                progress.advance(task, len(batch))
                batch = []
        if batch:
            self.run_batch(name, batch, identity)
            progress.advance(task, len(batch))
        if self.rows_in == 0:
            raise CaiError(f"{name}: no rows (the input is empty)")
        return last_line

    def finish_output(self, last_line: int | None) -> None:
        """Stream the side file, in input order, into OUT (and OUT.dropped.jsonl); then drop the side file."""
        # run_stage calls this only with -o OUT, which sets all three paths
        assert self.out_path is not None and self.partial is not None and self.dropped_path is not None
        out, dropped = AtomicWriter(self.out_path), AtomicWriter(self.dropped_path)
        try:
            if self.sink is not None:
                self.sink.close()
            if last_line is not None:
                for rec in side_records(scan_side_file(self.partial)):
                    if rec["line"] > last_line or not in_shard(str(rec.get("id")), self.opts.shard):
                        continue  # finished by an earlier run with another --limit or --shard
                    for row in rec["rows"]:
                        out.write(row)
                    for row in rec.get("dropped", ()):
                        dropped.write(row)
            out.commit()
            if dropped.count:
                dropped.commit()
            elif self.dropped_path.exists():
                self.dropped_path.unlink()  # stale, from an earlier run with other settings
        except BaseException:
            out.discard()
            dropped.discard()
            raise
        self.rows_out, self.dropped = out.count, dropped.count
        if not self.failed and self.partial.exists():
            self.partial.unlink()


def run_stage(stage: Stage, opts: RunOptions) -> RunResult:
    """Run STAGE over OPTS.input, a batch at a time; see docs/design.md, "Stage I/O contract"."""
    started = time.monotonic()
    run = _Run(stage, opts)
    source = InputSource(opts.input)
    try:
        total = run.first_pass(source) if source.seekable else None
        if run.partial is not None:
            run.open_side_file(source.identity)
        if not source.seekable:
            run.start(source.identity)  # a pipe: load the model while the stage upstream works
        with _progress(stage, opts) as progress:
            last_line = run.stream(source, source.seekable, total, progress)
        if run.out_path is not None:
            run.finish_output(last_line)
        run.errors.finish()
    except BaseException:
        run.errors.discard()
        raise
    finally:
        source.close()
        if run.sink is not None:
            run.sink.close()
    result = RunResult(
        rows_in=run.rows_in,
        rows_out=run.rows_out,
        skipped=run.skipped,
        failed=run.failed,
        resumed=run.resumed,
        seconds=time.monotonic() - started,
        dropped=run.dropped,
        selected=run.selected if opts.limit is not None or opts.shard is not None else None,
    )
    _print_summary(
        stage, result,
        run.errors.path if run.errors.count and run.errors.writer is not None else None,
        run.partial if run.failed else None,
        run.dropped_path if run.dropped and run.out_path is not None else None,
    )
    return result


def _progress(stage, opts):
    show = opts.progress if opts.progress is not None else sys.stderr.isatty()
    return progress_bar(stage.name, show=show)


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
    if stats.tokens_in or stats.tokens_out:
        line += f" | tokens {stats.tokens_in} in, {stats.tokens_out} out | {result.seconds:.1f}s, {tps:.1f} tok/s"
    else:  # a stage that only scores (label-prefs' judge) writes no tokens: "0 out, 0.0 tok/s" would read as a fault
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
    if errors_path is not None:
        print(f"cai: bad or failed rows were written to {errors_path}", file=sys.stderr)
    if partial_path is not None:
        print(f"cai: {result.failed} rows failed; rerun the same command to retry them (finished rows stay in {partial_path})", file=sys.stderr)
