"""One run of a stage over its input: a first pass that checks every row of a file before any model loads, batches to
the executor, each finished input row to the side file (or stdout) in input order, the errors file, resume against
the side file's records, and the summary line at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..errors import CaiError, InputError, RowFailure
from ..jsonl import InputChain, InputLine, InputSource, InputSpec, RowsInput, open_input
from ..output import Outputs, SetAside, os_error_message
from ..progress import Progress
from ..resume import check_fingerprint, side_records, stage_fingerprint
from ..rows import FieldProblem, RowIds, in_shard, row_digest
from .contract import OnError, Outcome, RunOptions, RunResult, Stage, error_record, outcome_record
from .destination import Destination
from .executor import BatchExecutor, LocalExecutor
from .summary import kept_where, print_summary, where_rows_go


class _Run:
    """One run of a stage over one input; see run_stage."""

    def __init__(self, stage: Stage, opts: RunOptions, outputs: Outputs, source: InputSource | InputChain | RowsInput):
        self.stage, self.opts, self.source, self.name = stage, opts, source, source.name
        self.fail = opts.on_error is OnError.fail
        self.dest = Destination(outputs, source.where, _recounter(stage), stage.screen)
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
    return lambda rec: stage.recount(rec["rows"], rec.get("dropped", []), rec.get("tally", []))


def stage_inputs(stage: Stage, path: str | None, specs: list[InputSpec] | None = None, in_memory: bool = False) -> list[tuple[str, str | None]]:
    """(what, path) of every file the run reads: its input (None: stdin; nothing for rows built IN_MEMORY), or each of
    SPECS, and the stage's own (a constitution...)."""
    extra = stage.input_files()
    if in_memory:
        return list(extra.items())
    read = [("an input", spec.read_from) for spec in specs] if specs else [("the input", None if path in (None, "-") else path)]
    return [*read, *extra.items()]


def run_stage(stage: Stage, opts: RunOptions) -> RunResult:
    """Run STAGE over OPTS.input, a batch at a time; see docs/design.md, "Stage I/O contract"."""
    started = time.monotonic()
    outputs = Outputs.plan(opts.output, opts.errors, opts.dropped, summary=stage.writes_summary, summary_file=opts.summary_file)
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
        with Progress(stage.name, opts.progress, total, note=where_rows_go(outputs)) as progress:
            last_line = run.stream_rows(source, source.seekable, progress)
        run.errors.finish()
        shard, chosen = opts.shard, run.selected_lines
        if last_line is None:
            keep = None
        elif chosen is not None:  # --limit per input: the rows taken are not one prefix of the input
            keep = lambda rec: rec["line"] in chosen  # noqa: E731
        else:
            keep = lambda rec: rec["line"] <= last_line and in_shard(str(rec.get("id")), shard)  # noqa: E731
        dest.finish(keep, stage.summary_dict if stage.writes_summary else None)
        finished = True
    except OSError as exc:
        message = os_error_message(exc, dest.writing, kept_where(run.partial, run.dest))
        if message is None:
            raise
        raise CaiError(message) from exc
    except UnicodeEncodeError as exc:
        raise CaiError(f"{run.name}: a row holds text that cannot be written as UTF-8 ({exc.reason}); {kept_where(run.partial, run.dest)}") from exc
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
    print_summary(stage, result, run.errors.kept_in, run.partial if run.failed > run.failed_again else None, dest.dropped_in)
    return result
