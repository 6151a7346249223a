"""What a run says on stderr: the summary line at the end (rows in and out, tokens, seconds), where the rows, the
errors and the dropped rows went, and where the finished rows are when it stops."""

from __future__ import annotations

import sys

from ..output import Outputs
from .contract import RunResult


def kept_where(partial, dest) -> str:
    """Where the finished rows are (PARTIAL: the side file, None without -o; DEST: runner.destination), for a message
    about a run that stopped."""
    if partial is not None and (dest.finished_here or dest.side is not None):
        return f"the finished rows are kept in {partial}: rerun the same command to resume"
    if partial is None and dest.rows_out:
        return f"the {dest.rows_out} rows before it were written"
    return "nothing was written"


def where_rows_go(outputs: Outputs) -> str:
    """For a progress line: where the rows finished so far already are."""
    if outputs.partial is not None:
        return f"finished rows are in {outputs.partial}, flushed after each batch"
    return f"finished rows are written to {outputs.stream or 'stdout'} after each batch"


def print_summary(stage, result: RunResult, errors_path, partial_path, dropped_path) -> None:
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
