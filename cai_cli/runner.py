"""The stage I/O contract: validate everything first, resume from the side file, batch, finish atomically."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import CaiError, InputError, RowFailure
from .jsonl import AppendLog, InputLine, StdoutWriter, display_name, read_done_rows, read_lines, write_atomic
from .rows import FieldProblem, in_shard, row_id


@dataclass
class RunOptions:
    input: str | None = None
    output: str | None = None
    on_error: str = "fail"  # fail | skip
    errors_file: str | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    batch_size: int = 16
    progress: bool | None = None  # None: only when stderr is a terminal


@dataclass
class StageStats:
    tokens_in: int = 0
    tokens_out: int = 0
    truncated: int = 0  # generated texts cut at --max-tokens (finish_reason "length")
    cached_tokens: int = 0  # prompt tokens served from a prefix cache, where the engine reports it
    extra: dict = field(default_factory=dict)  # stage-specific counts for the summary line


class Stage(Protocol):
    name: str
    stats: StageStats

    def check(self, row: dict) -> None:
        """Raise FieldProblem for a row this stage cannot use. Runs before any model is loaded."""

    def start(self) -> None:
        """Load models; runs only when there is work to do."""

    def check_loaded(self, row: dict) -> None:
        """Checks that need the model (prompt longer than the context): raise RowFailure."""

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        """One output row (or a RowFailure) per input row, in order."""

    def summary(self) -> str:
        """Stage-specific words for the summary line ('' for none)."""


@dataclass
class RunResult:
    rows_in: int
    rows_out: int
    skipped: int
    failed: int
    resumed: int
    seconds: float


def _key_rows(rows: list[dict], ids: list[str]) -> list[str]:
    """Keys that stay unique when ids repeat: the k-th occurrence of an id gets '#k'."""
    seen: dict[str, int] = {}
    keys = []
    for rid in ids:
        k = seen.get(rid, 0)
        seen[rid] = k + 1
        keys.append(rid if k == 0 else f"{rid}#{k}")
    return keys


def error_record(file: str, line: int | None, field: str | None, reason: str, row: dict | None, raw: str | None = None) -> dict:
    rec = {"file": file, "line": line, "field": field, "error": reason}
    if row is not None:
        rec["row"] = row
    elif raw is not None:
        rec["raw"] = raw
    return rec


def run_stage(stage: Stage, opts: RunOptions) -> RunResult:
    started = time.monotonic()
    name = display_name(opts.input)
    lines = read_lines(opts.input)
    if not lines:
        raise CaiError(f"{name}: no rows (the input is empty)")

    bad: list[tuple[InputLine, InputError]] = []
    good: list[InputLine] = []
    for item in lines:
        if item.error is not None:
            bad.append((item, item.error))
            continue
        try:
            stage.check(item.row)
        except FieldProblem as problem:
            bad.append((item, InputError(problem.message, file=name, line=item.line, field=problem.field)))
            continue
        good.append(item)

    if bad and opts.on_error == "fail":
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise CaiError(f"{bad[0][1]}{more}; nothing was written. Fix the input, or use --on-error skip to process the valid rows")

    error_records = [error_record(name, it.line, e.field, e.reason, it.row, it.raw) for it, e in bad]

    rows, lines_of = [], []
    for item in good:
        row = item.row
        row.setdefault("id", row_id(row))
        if not in_shard(str(row["id"]), opts.shard):
            continue
        rows.append(row)
        lines_of.append(item.line)
    if opts.limit is not None:
        rows, lines_of = rows[: opts.limit], lines_of[: opts.limit]
    keys = _key_rows(rows, [str(r["id"]) for r in rows])

    out_path = Path(opts.output) if opts.output not in (None, "-") else None
    partial_path = out_path.with_name(out_path.name + ".partial") if out_path else None
    errors_path = Path(opts.errors_file) if opts.errors_file else (out_path.with_name(out_path.name + ".errors.jsonl") if out_path else None)

    done: dict[str, dict] = {}
    if partial_path is not None:
        previous = read_done_rows(partial_path)
        wanted = set(keys)
        for key, row in zip(_key_rows(previous, [str(r.get("id")) for r in previous]), previous):
            if key in wanted:
                done[key] = row
    resumed = len(done)
    pending = [i for i, k in enumerate(keys) if k not in done]

    failures: dict[str, tuple[int, RowFailure]] = {}
    if pending:
        stage.start()
        for i in list(pending):
            try:
                stage.check_loaded(rows[i])
            except RowFailure as failure:
                if opts.on_error == "fail":
                    raise CaiError(_failure_message(name, lines_of[i], failure) + "; nothing was written") from None
                failures[keys[i]] = (i, failure)
        pending = [i for i in pending if keys[i] not in failures]

    sink = AppendLog(partial_path) if partial_path is not None else StdoutWriter()
    try:
        _process(stage, opts, rows, keys, lines_of, pending, done, failures, sink, name)
    finally:
        if isinstance(sink, AppendLog):
            sink.close()

    for key, (i, failure) in failures.items():
        error_records.append(error_record(name, lines_of[i], failure.field, failure.reason, rows[i]))
    if out_path is not None:
        write_atomic(out_path, (r for k in keys if k in done for r in _as_rows(done[k])))
        if not failures and partial_path.exists():
            partial_path.unlink()
    if errors_path is not None:
        if error_records:
            write_atomic(errors_path, error_records)
        elif errors_path.exists() and out_path is not None:
            errors_path.unlink()  # stale errors from an earlier run that have since been fixed

    result = RunResult(
        rows_in=len(lines),
        rows_out=sum(len(_as_rows(done[k])) for k in keys if k in done),
        skipped=len(bad),
        failed=len(failures),
        resumed=resumed,
        seconds=time.monotonic() - started,
    )
    _print_summary(stage, result, errors_path if error_records else None, partial_path if failures else None)
    if bad and errors_path is None:
        for rec in error_records[: len(bad)]:
            print(f"cai: skipped {rec['file']}:{rec['line']}: {rec['field'] or 'row'}: {rec['error']}", file=sys.stderr)
    return result


def _as_rows(result) -> list[dict]:
    """A stage gives one row per input row, or a list: zero rows (left out on purpose, and counted by the stage) or one."""
    return result if isinstance(result, list) else [result]


def _failure_message(name: str, line: int, failure: RowFailure) -> str:
    what = f"field '{failure.field}': " if failure.field else ""
    return f"{name}:{line}: {what}{failure.reason}"


def _process(stage, opts, rows, keys, lines_of, pending, done, failures, sink, name) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    show = opts.progress if opts.progress is not None else sys.stderr.isatty()
    console = Console(stderr=True)
    progress = Progress(
        TextColumn(f"[bold]{stage.name}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=False,
    )
    with progress:
        task = progress.add_task(stage.name, total=len(pending))
        for start in range(0, len(pending), max(1, opts.batch_size)):
            batch = pending[start : start + opts.batch_size]
            results = stage.process([copy.deepcopy(rows[i]) for i in batch])
            finished = []
            for i, result in zip(batch, results):
                if isinstance(result, RowFailure):
                    if opts.on_error == "fail":
                        sink.write(finished)
                        raise CaiError(
                            _failure_message(name, lines_of[i], result)
                            + (f"; finished rows are kept in {opts.output}.partial, rerun to resume" if opts.output not in (None, "-") else "")
                        )
                    failures[keys[i]] = (i, result)
                    continue
                done[keys[i]] = result
                finished.extend(_as_rows(result))
            sink.write(finished)
            progress.advance(task, len(batch))


def _print_summary(stage, result: RunResult, errors_path, partial_path) -> None:
    stats = stage.stats
    tps = stats.tokens_out / result.seconds if result.seconds > 0 else 0.0
    parts = [
        f"{result.rows_in} in",
        f"{result.rows_out} out",
        f"{result.skipped} skipped",
        f"{result.failed} failed",
    ]
    if result.resumed:
        parts.append(f"{result.resumed} resumed")
    line = f"cai {stage.name}: rows {', '.join(parts)} | tokens {stats.tokens_in} in, {stats.tokens_out} out | {result.seconds:.1f}s, {tps:.1f} tok/s"
    if stats.truncated:
        line += f" | {stats.truncated} truncated at --max-tokens"
    if stats.cached_tokens:
        line += f" | {stats.cached_tokens} prompt tokens from cache"
    extra = stage.summary()
    if extra:
        line += f" | {extra}"
    print(line, file=sys.stderr)
    if errors_path is not None:
        print(f"cai: bad or failed rows were written to {errors_path}", file=sys.stderr)
    if partial_path is not None:
        print(f"cai: {result.failed} rows failed; rerun the same command to retry them (finished rows stay in {partial_path})", file=sys.stderr)
