"""How a long run shows on stderr that it is alive (stages and training): rich's bar on a terminal, plain lines in a
log (`cai ... 2>run.log`, `make -j`, a batch job), where `tail -f` shows the run going on; stdout carries only rows.

A line comes at the start, then every LINE_SECONDS from a timer of its own, whether or not a batch finished in
between (a batch of long critiques can take minutes, and a silent log looks hung): what is done of the total, the
rate, the time left, and where the finished work already is.
"""

from __future__ import annotations

import sys
import threading
import time
from enum import Enum
from typing import Any

from .flags import IO_PANEL, Flag

LINE_SECONDS = 30.0  # between two progress lines in a log


class ProgressMode(str, Enum):
    """--progress: how a run shows its progress on stderr."""

    auto = "auto"  # a bar when stderr is a terminal, else lines
    bar = "bar"  # rich's live bar
    lines = "lines"  # a plain line at the start, then every LINE_SECONDS
    off = "off"


# --progress (runner.RunOptions, train.common.TrainOptions); `--no-progress`, its earlier spelling, still means off.
PROGRESS = Flag(
    panel=IO_PANEL,
    help=f"Progress on stderr. bar: a live bar. lines: a line at the start, then every {LINE_SECONDS:.0f} s (rows or steps done of the "
    "total, rate, time left, where finished work is), for a log that `tail -f` follows. auto: bar on a terminal, else lines. "
    "(--no-progress: off.)",
)


def progress_mode(value: ProgressMode | str | bool | None) -> ProgressMode:
    """The mode a caller asked for; a bool is the older on/off (True: the bar, False: off), None is auto."""
    if value is None or value is True or value is False:
        return {None: ProgressMode.auto, True: ProgressMode.bar, False: ProgressMode.off}[value]
    return ProgressMode(value)


def shown_as(value: ProgressMode | str | bool | None) -> ProgressMode:
    """bar, lines or off: auto decided by whether stderr is a terminal."""
    mode = progress_mode(value)
    if mode is ProgressMode.auto:
        return ProgressMode.bar if sys.stderr.isatty() else ProgressMode.lines
    return mode


def progress_bar(label: str, *extra_columns, show: bool = True):
    """The one look of cai's progress bars (stages and training): rich, on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=Console(stderr=True),
        disable=not show,
        transient=False,
    )


class Progress:
    """One run's progress in UNIT (rows, steps) out of TOTAL (None: not known, a pipe), shown as MODE says.

    Use as a context manager; `done(n)` counts work this run did, `resumed(n)` work an earlier run did (in the count,
    not in the rate; EARLIER: what it had done before this run started), `reached(k)` sets the count (a trainer's
    step), `info(text)` adds a few words (the loss). NOTE says where the finished work is (`finished rows are in
    OUT.partial`)."""

    def __init__(self, label: str, mode: ProgressMode | str | bool | None, total: int | None, *, unit: str = "rows",
                 note: str = "", earlier: int = 0, every: float | None = None):
        self.label, self.total, self.unit, self.note = label, total, unit, note
        self.mode = shown_as(mode)
        self.every = LINE_SECONDS if every is None else every
        self.count = self.earlier = earlier
        self.extra = ""
        self.started = time.monotonic()
        self._bar: Any = None  # rich's Progress, in bar mode
        self._task: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if self.mode is ProgressMode.bar:
            from rich.progress import TextColumn

            bar = self._bar = progress_bar(self.label, TextColumn("{task.fields[info]}"))
            bar.start()
            self._task = bar.add_task(self.label, total=self.total, completed=self.count, info="")
        elif self.mode is ProgressMode.lines:
            self._print(first=True)
            self._timer = threading.Thread(target=self._every, name="cai-progress", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self._bar is not None:
            self._bar.stop()

    def done(self, n: int = 1) -> None:
        with self._lock:
            self.count += n
        self._refresh()

    def resumed(self, n: int = 1) -> None:
        with self._lock:
            self.count += n
            self.earlier += n
        self._refresh()

    def reached(self, count: int) -> None:
        with self._lock:
            self.count = count
        self._refresh()

    def info(self, text: str) -> None:
        self.extra = text
        if self._bar is not None:
            self._bar.update(self._task, info=text)

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.count)

    def _every(self) -> None:
        while not self._stop.wait(self.every):
            self._print()

    def _print(self, first: bool = False) -> None:
        print(self.line(first), file=sys.stderr, flush=True)

    def line(self, first: bool = False) -> str:
        """`cai generate: 8/16 rows (50%) after 1m05s, 7.4 rows/min, about 1m05s left; finished rows are in ...`"""
        with self._lock:
            count, earlier = self.count, self.earlier
        elapsed = time.monotonic() - self.started
        text = f"cai {self.label}: {count}/{self.total} {self.unit}" if self.total is not None else f"cai {self.label}: {count} {self.unit}"
        if self.total:
            text += f" ({100 * count // self.total}%)"
        if earlier:
            text += f" ({earlier} from the earlier run)"
        if first:
            text += ", starting"
        else:
            text += f" after {_duration(elapsed)}"
            rate = (count - earlier) / elapsed if elapsed > 0 else 0.0
            if rate > 0:
                text += f", {rate:.2f} {self.unit}/s" if rate >= 1 else f", {60 * rate:.2g} {self.unit}/min"
                if self.total is not None and self.total > count:
                    text += f", about {_duration((self.total - count) / rate)} left"
            elif self.total is None or count < self.total:
                text += f", no {self.unit} finished yet"
        if self.extra:
            text += f" | {self.extra}"
        if self.note:
            text += f"; {self.note}"
        return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
