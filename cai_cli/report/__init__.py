"""report: gather `cai eval` results (and `cai label-prefs --gold-field` summaries, and the harm / over-refusal frontier
of `cai eval --checkpoints`) into tables (terminal), one figure (PNG, SVG, PDF), or one HTML page; or draw the
training curves of `cai train-*` folders.

merge.py reads and merges results files; table.py, chart.py and html.py show the merged report; curves.py reads
and draws training metrics; figure_file.py writes every figure.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..stats import DEFAULT_BOOTSTRAP
from .chart import chart, figure
from .figure_file import check_chart_path
from .merge import load_results, report_from_summary
from .table import calibration_table, changes_table, print_summary, table


def run_report(results: list[str], output: str | None = None, json_out: str | None = None, bootstrap: int = DEFAULT_BOOTSTRAP) -> dict:
    """`cai report`: the table on stdout, notes on stderr, then the JSON and the chart when asked for. What it writes
    is checked before any file is read whole (not an input, not a folder, a folder that takes writes); training
    folders (or their metrics.jsonl) are told from eval results by their first line."""
    import sys

    from rich.console import Console

    from ..output import check_targets
    from .curves import metrics_paths, run_curves

    curves = metrics_paths(results)
    if output is not None:
        check_chart_path(output, "the report" if curves is None else "the training curves")
    chart_to, json_to = check_targets([("-o", output), ("--json-out", json_out)], [("a results file", path) for path in results])
    if curves is not None:
        run_curves(curves, output, chart_to, json_to, write_json)
        return {}
    merged = load_results(results, bootstrap=bootstrap)
    console = Console()
    if merged["models"]:  # label-prefs summaries alone bring a judge's calibration and no model
        console.print(table(merged, title="cai report"))
    if (changes := changes_table(merged)) is not None:
        console.print(changes)
    if (calibration := calibration_table(merged)) is not None:
        console.print(calibration)
    for frontier in merged["frontiers"]:
        from ..eval.frontier import print_frontier

        print_frontier(frontier)
    for note in merged["notes"]:
        print(f"cai report: note: {note}", file=sys.stderr)
    if json_to is not None:
        write_json(json_to, {k: v for k, v in merged.items() if k not in ("answers", "summary_files")})  # the answers are in the rows files already
    if output is not None:
        print(f"cai report: chart -> {chart(merged, output, chart_to)}", file=sys.stderr)
    return merged


def write_json(target: Path, data: dict) -> None:
    """`cai report --json-out`: DATA as indented JSON at TARGET (checked already)."""
    from ..output import write_file

    write_file(target, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


__all__ = ["calibration_table", "chart", "figure", "load_results", "print_summary", "report_from_summary", "run_report", "table"]
