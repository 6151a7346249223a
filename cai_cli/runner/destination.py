"""Where one run's finished input rows go, a record at a time (see resume/side_file.py for a record); every file it
writes, it writes through output/.

With -o OUT: into the side file, which the run holds locked (it is OUT's only writer), a batch at a time; at the
end OUT and the dropped rows are assembled from it in input order, and the stage's summary is counted from those
same records. Without: to stdout (or a device) at once, dropped rows to --dropped or one stderr line each. Either
way each record passes the stage's screen (runner.Stage) in input order just before it leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import CaiError
from ..output import AppendLog, AtomicWriter, OutputLock, Outputs, RowStream, SetAside, check_room, take_back, write_summary
from ..resume import SideFile, open_side_file, scan_side_file, side_records


class Destination:
    def __init__(self, outputs: Outputs, where: Callable[[int], tuple[str, int]], recount: Callable[[dict], None],
                 screen: Callable[[dict], dict] | None = None):
        self.outputs, self.where, self.recount = outputs, where, recount
        self.screen = screen or (lambda rec: rec)
        self.partial = outputs.partial
        self.lock: OutputLock | None = None
        self.side: SideFile | None = None  # what an earlier run finished, when resuming
        self.sink: AppendLog | None = None
        self.stream: RowStream | None = None
        self.set_aside: SetAside | None = None  # without -o OUT: where dropped rows go at once
        self.ready = False  # the model has started: the side file's header (its fingerprint) can be written
        self.rows_out = self.dropped = self.finished_here = 0
        self.writing = str(outputs.partial or (f"-o {outputs.stream}" if outputs.stream else "stdout"))  # for a message about the disk

    def open(self, restart: bool, fingerprint: Callable[[], dict], my_error: Callable[[dict], bool]) -> None:
        """With -o OUT: take the side file (locked), check an earlier run's settings, and take back what that run's
        attempt appended to files the user named (MY_ERROR: an errors record of this stage). Otherwise: the stream."""
        outputs = self.outputs
        if self.partial is None:
            self.stream = RowStream(outputs.stream)
            self.set_aside = SetAside(outputs.dropped if outputs.dropped_named else None, outputs.dropped_named)
            return
        self.lock, self.side, notes, self.sink = open_side_file(self.partial, str(outputs.out), restart, fingerprint)
        for path, named, mine in ((outputs.errors, outputs.errors_named, my_error), (outputs.dropped, outputs.dropped_named, _is_dropped)):
            if path is not None and named:
                take_back(path, notes, mine)

    def note(self, note: dict) -> None:
        """Record in the side file where this run began appending to a file the user named."""
        if self.sink is not None:
            if self.ready or self.side is not None:
                self.sink.write([{"cai_note": note}])
            else:
                self.sink.hold({"cai_note": note})  # the header waits for a started model; the note goes with it

    def emit(self, records: list[dict]) -> None:
        """Finished input rows, in input order."""
        if not records:
            return
        self.finished_here += len(records)
        if self.sink is not None:
            self.sink.write(records)
            return
        assert self.stream is not None and self.set_aside is not None  # without -o OUT, open() made both
        records = [self.screen(rec) for rec in records]
        rows = [r for rec in records for r in rec["rows"]]
        self.stream.write(rows)
        self.rows_out += len(rows)
        for rec in records:
            for row in rec.get("dropped", ()):
                file, line = self.where(rec["line"])
                self.set_aside.add(row, f"cai: dropped {file}:{line} ({row.get('id')}): {row['dropped']}")
                self.dropped += 1
            self.recount(rec)

    def finish(self, keep: Callable[[dict], bool] | None, summary: Callable[[], dict] | None) -> None:
        """With -o OUT: OUT and the dropped rows from the records KEEP takes (None: none was selected); without: the
        dropped rows' file closed. Then the SUMMARY JSON, where there is a summary file."""
        if self.set_aside is not None:
            self.set_aside.finish()
        if self.partial is not None and self.outputs.out is not None:
            self.assemble(keep)
        if summary is not None and self.outputs.summary is not None:
            write_summary(self.outputs.summary, summary())

    def assemble(self, keep: Callable[[dict], bool] | None) -> None:
        """OUT (and the dropped rows) from the side file, checked to be whole and still this run's."""
        assert self.sink is not None and self.lock is not None and self.partial is not None and self.outputs.out is not None
        self.sink.write_held()  # notes no batch took: written, so a rerun can take back what they cover
        self.sink.verify()  # another process cut the side file short: OUT would lack rows
        self.sink.close()
        if not self.lock.still_held():
            raise CaiError(f"{self.partial}: another run took this side file over while this one ran; rerun to finish")
        check_room(self.outputs.out.parent, self.partial.stat().st_size, self.partial)
        dropped = SetAside(self.outputs.dropped, self.outputs.dropped_named, self.note)
        self.writing = str(self.outputs.out)
        side = scan_side_file(self.partial) if keep is not None else None
        self.rows_out = assemble(self.outputs.out, side, dropped, keep or (lambda rec: False), self.recount, self.screen)
        self.dropped = dropped.count
        self.sink.close()

    def close(self, finished: bool, failed: bool) -> None:
        """Put stdout back; let go of the side file, removed when OUT is complete (FINISHED without FAILED rows to
        retry) or when it holds nothing."""
        if self.stream is not None:
            self.stream.close(failed=not finished)
        if not finished and self.set_aside is not None:
            self.set_aside.discard()
        if self.sink is not None:
            self.sink.close()
        if self.lock is not None and self.partial is not None:
            empty = self.partial.exists() and self.partial.stat().st_size == 0
            self.lock.release(remove=(finished and not failed) or empty)

    @property
    def dropped_in(self) -> Path | None:
        """The file the dropped rows went to (None: stderr, or none were dropped)."""
        if not self.dropped:
            return None
        return self.outputs.dropped if self.outputs.out is not None or self.outputs.dropped_named else None


def _is_dropped(rec: dict) -> bool:
    return "dropped" in rec


def assemble(out: Path, side: SideFile | None, dropped: SetAside, keep: Callable[[dict], bool], recount: Callable[[dict], None],
             screen: Callable[[dict], dict] = lambda rec: rec) -> int:
    """Write OUT from the side file, streamed in input order: each record KEEP takes (this run's --limit and
    --shard), passed through SCREEN, gives its rows to OUT, its dropped rows to DROPPED and the whole record to
    RECOUNT (the stage's summary, rebuilt from every finished row, whichever run finished it). Returns how many rows
    OUT holds."""
    writer = AtomicWriter(out)
    try:
        for rec in side_records(side):
            if not keep(rec):
                continue
            rec = screen(rec)
            for row in rec["rows"]:
                writer.write(row)
            for row in rec.get("dropped", ()):
                dropped.add(row, "")
            recount(rec)
        writer.commit()
        dropped.finish()
    except BaseException:
        writer.discard()
        dropped.discard()
        raise
    return writer.count
