"""The one look of cai's progress bars (stages and training): rich, on stderr, so stdout carries only rows."""

from __future__ import annotations


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
