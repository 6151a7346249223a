"""report: gather `cai eval` results (and `cai label-prefs --gold` summaries) into tables (terminal), one figure
(PNG, SVG, PDF), or one HTML page; or draw the training curves of `cai train-*` folders.

merge.py reads and merges results files; table.py, chart.py and html.py show the merged report; curves.py reads
and draws training metrics; chart.save_figure writes every figure.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..stats import DEFAULT_BOOTSTRAP
from .chart import chart, figure
from .merge import load_results, report_from_summary
from .table import calibration_table, changes_table, print_summary, table


def run_report(results: list[str], output: str | None = None, json_out: str | None = None, bootstrap: int = DEFAULT_BOOTSTRAP) -> dict:
    """`cai report`: the table on stdout, notes on stderr, then the JSON and the chart when asked for."""
    import sys

    from rich.console import Console

    from .curves import metrics_paths, run_curves

    if (metrics := metrics_paths(results)) is not None:
        run_curves(metrics, output, json_out, _write_json)
        return {}
    merged = load_results(results, bootstrap=bootstrap)
    console = Console()
    if merged["models"]:  # label-prefs summaries alone bring a judge's calibration and no model
        console.print(table(merged, title="cai report"))
    if (changes := changes_table(merged)) is not None:
        console.print(changes)
    if (calibration := calibration_table(merged)) is not None:
        console.print(calibration)
    for note in merged["notes"]:
        print(f"cai report: note: {note}", file=sys.stderr)
    if json_out:
        _write_json(json_out, {k: v for k, v in merged.items() if k not in ("answers", "summary_files")})  # the answers are in the rows files already
    if output:
        print(f"cai report: chart -> {chart(merged, output)}", file=sys.stderr)
    return merged


def _write_json(path: str, data: dict) -> None:
    """The one writer of `cai report --json`: DATA beside PATH, renamed over it when whole."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)


__all__ = ["calibration_table", "chart", "figure", "load_results", "print_summary", "report_from_summary", "run_report", "table"]
