"""The side file (OUT.partial) a run appends its finished rows to, so that a rerun picks up where a crash stopped."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaiError
from ..output import AppendLog, OutputLock
from .fingerprint import changes, mismatch_message

# OUT.partial holds a header {"cai_side_file": 3, "fingerprint": {...}}, then one record per finished input row,
# {"line": L, "id": ID, "sha": DIGEST, "rows": [...], "dropped": [...], "tally": [...]} (0..N output rows each; `sha`
# the digest of the input row, `tally` what the row adds to the stage's summary), appended a batch at a time in
# input order, and notes {"cai_note": {...}} (where the run began appending to a file the user named, so that a
# rerun takes back what its own earlier attempt wrote there, and nothing else). A rerun appends the rows it
# finishes, again in input order, so the file is a few increasing runs of line numbers; merging them streams
# every record in input order.

SIDE_FILE_VERSION = 3


@dataclass
class SideFile:
    path: Path
    header: dict | None  # None: an empty file, or one written before side files had a header
    segments: list[tuple[int, int]]  # byte ranges, each holding records in increasing line order
    records: int
    notes: list[dict] = field(default_factory=list)

    @property
    def fingerprint(self) -> dict | None:
        return self.header.get("fingerprint") if self.header else None


def scan_side_file(path: Path) -> SideFile | None:
    """The side file's header, notes and increasing runs of records; None when there is none (or nothing in it)."""
    if not path.exists():
        return None
    header, count = None, 0
    notes: list[dict] = []
    segments: list[tuple[int, int]] = []
    seg_start: int | None = None
    last_line, offset = None, 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh):
            begin, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                break  # torn by a crash: not finished
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if number == 0:
                if isinstance(rec, dict) and "cai_side_file" in rec:
                    header = rec
                    continue
                return SideFile(path, None, [], 1)  # rows of an older cai: no header, no line numbers
            if isinstance(rec, dict) and isinstance(rec.get("cai_note"), dict):
                notes.append(rec["cai_note"])
                continue
            if not (isinstance(rec, dict) and isinstance(rec.get("line"), int) and isinstance(rec.get("rows"), list)):
                continue
            if last_line is not None and rec["line"] <= last_line:
                assert seg_start is not None  # a segment is open once a record was seen
                segments.append((seg_start, begin))
                seg_start = None
            if seg_start is None:
                seg_start = begin
            last_line = rec["line"]
            count += 1
        if seg_start is not None:
            segments.append((seg_start, offset))
    if header is None and count == 0:
        return None
    return SideFile(path, header, segments, count, notes)


def _segment_records(path: Path, start: int, end: int) -> Iterator[dict]:
    with path.open("rb") as fh:
        fh.seek(start)
        while fh.tell() < end:
            raw = fh.readline()
            if not raw.endswith(b"\n"):
                return
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("line"), int) and isinstance(rec.get("rows"), list):
                yield rec


def side_records(side: SideFile | None) -> Iterator[dict]:
    """Every finished record of a side file, in input (line) order, streamed: memory holds one record per run."""
    if side is None:
        return iter(())
    runs = [_segment_records(side.path, s, e) for s, e in side.segments]
    return heapq.merge(*runs, key=lambda rec: rec["line"])


def check_fingerprint(side: SideFile | None, current: dict | None) -> None:
    """A resume never mixes rows made under other settings: stop, saying what changed, if the side file's differ."""
    if side is not None and current is not None:
        found = changes(side.fingerprint or {}, current)
        if found:
            raise CaiError(mismatch_message(side.path, found, side.records))


def open_side_file(path: Path, output: str, restart: bool, fingerprint: Callable[[], dict | None]) -> tuple[OutputLock, SideFile | None, list[dict], AppendLog]:
    """(the lock that makes this run the output's only writer; what an earlier run finished, checked against the
    run's FINGERPRINT(); the notes of where it appended to files the user named; the log this run appends to, whose
    header records FINGERPRINT() as it stands when the first batch is written). --restart discards the earlier
    run's records; a side file without a header or of another version (an older cai) cannot be trusted and stops
    the run."""
    lock = OutputLock(path, output)
    try:
        side = scan_side_file(path)
        notes = side.notes if side is not None else []
        if side is not None and restart:
            lock.discard_contents()
            side = None
        if side is not None:
            if side.header is None or side.header.get("cai_side_file") != SIDE_FILE_VERSION:
                raise CaiError(f"{path}: written by an older cai, without what a resume checks; add --restart to discard it and start over")
            check_fingerprint(side, fingerprint())
    except BaseException:
        lock.release(remove=False)
        raise
    return lock, side, notes, AppendLog(path, header=lambda: {"cai_side_file": SIDE_FILE_VERSION, "fingerprint": fingerprint()})
