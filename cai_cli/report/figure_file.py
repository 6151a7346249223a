"""How every `cai report` figure is written: the file names it takes, checked before any work, and the figure saved
as an image or inside an HTML page, through the output module."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from ..errors import CaiError

CHART_SUFFIXES = (".png", ".svg", ".pdf", ".html", ".htm")


def check_chart_path(path: str, what: str = "the report") -> None:
    """Before any work: WHAT (the report, the training curves) is written as one of CHART_SUFFIXES."""
    suffix = Path(path).suffix
    if suffix.lower() not in CHART_SUFFIXES:
        raise CaiError(f"{path}: {what} is written as .png, .svg, .pdf or .html (got '{suffix or 'no extension'}')")


def save_figure(fig, path: str, target: Path | None, html_page: Callable[[str], str]) -> Path:
    """FIG written to PATH (or TARGET, its checked target) as .png, .svg or .pdf, or, for .html, as the page HTML_PAGE
    makes around the figure (given it as a base64 PNG); every `cai report` figure is written here."""
    from ..output import figure_bytes, write_file

    suffix = Path(path).suffix.lower()
    import matplotlib.pyplot as plt

    try:
        if suffix in (".html", ".htm"):
            data: str | bytes = html_page(base64.b64encode(figure_bytes(fig, "png")).decode("ascii"))
        else:
            data = figure_bytes(fig, suffix[1:])
    finally:
        plt.close(fig)
    write_file(target or Path(path), data)
    return Path(path)
