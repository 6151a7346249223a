"""report: gather `cai eval` results (and `cai label-prefs --gold-field` summaries, and the harm / over-refusal frontier of
`cai eval --checkpoints`) into tables (terminal), one figure (PNG, SVG, PDF), or one HTML page.

merge.py reads and merges results files; table.py, chart.py and html.py show the merged report.
"""

from __future__ import annotations

import json

from ..stats import DEFAULT_BOOTSTRAP
from .chart import chart, check_chart_path, figure
from .merge import load_results, report_from_summary
from .table import calibration_table, print_summary, table


def run_report(results: list[str], output: str | None = None, json_out: str | None = None, bootstrap: int = DEFAULT_BOOTSTRAP) -> dict:
    """`cai report`: the table on stdout, notes on stderr, then the JSON and the chart when asked for. What it writes
    is checked before any file is read (not an input, not a folder, a folder that takes writes)."""
    import sys

    from rich.console import Console

    from ..output import check_targets, write_file

    if output is not None:
        check_chart_path(output)
    chart_to, json_to = check_targets([("-o", output), ("--json-out", json_out)], [("a results file", path) for path in results])
    merged = load_results(results, bootstrap=bootstrap)
    console = Console()
    if merged["models"]:  # label-prefs summaries alone bring a judge's calibration and no model
        console.print(table(merged, title="cai report"))
    if (calibration := calibration_table(merged)) is not None:
        console.print(calibration)
    for frontier in merged["frontiers"]:
        from ..eval.frontier import print_frontier

        print_frontier(frontier)
    for note in merged["notes"]:
        print(f"cai report: note: {note}", file=sys.stderr)
    if json_to is not None:
        metrics = {k: v for k, v in merged.items() if k not in ("answers", "summary_files")}  # the answers are in the rows files already
        write_file(json_to, json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    if output is not None:
        print(f"cai report: chart -> {chart(merged, output, chart_to)}", file=sys.stderr)
    return merged


__all__ = ["calibration_table", "chart", "figure", "load_results", "print_summary", "report_from_summary", "run_report", "table"]
