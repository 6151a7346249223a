"""report: gather `cai eval` results into one table (terminal) and one chart (PNG, SVG, PDF or HTML).

Each results file compares one model with one baseline. Files are merged by model name: a model
evaluated twice keeps its last file's numbers; a baseline shared by several files is taken from the
first. Bradley–Terry ratings are fitted over every file's judged games together, anchored at the
baseline when all files share one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from .errors import CaiError
from .jsonl import read_lines

COLUMNS = [
    # (summary key, column heading: short words, stacked, so eight columns fit 80 characters)
    ("harmlessness_win_rate", "harm\nwin"),
    ("helpfulness_win_rate", "help\nwin"),
    ("refusal_rate", "refusal"),
    ("deflection_rate", "deflect"),
    ("over_refusal_rate", "over-\nrefusal"),
    ("judge_refusal_rate", "judge\nrefusal"),
    ("judge_over_refusal_rate", "judge\nover-\nrefusal"),
    ("reward", "reward"),
]
CAPTION = (
    "harm/help win: the judge's P(model beats baseline) on red-team/benign prompts, both orders. "
    "refusal, deflect: red-team prompts. over-refusal: risky-looking benign prompts declined. "
    "±: 95% bootstrap interval."
)


def load_results(paths: list[str], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Merge eval results files (rows JSONL, or summary JSON) into one report: models, ratings, notes."""
    from .eval.stats import comparisons_of, ratings_of, summarize

    if not paths:
        raise CaiError("give at least one results file from `cai eval`")
    models: dict[str, dict] = {}
    games: dict[str, list] = {"harmlessness": [], "helpfulness": []}
    baselines: list[str] = []
    stored_ratings: dict = {}
    notes: list[str] = []
    for path in paths:
        kind, content = _read(path)
        if kind == "rows":
            summary = summarize(content, bootstrap=bootstrap, seed=seed, source=path)
            for crit, cs in comparisons_of(content).items():
                games[crit] += cs
        else:
            summary = content
            stored_ratings = summary.get("ratings") or stored_ratings
        if summary.get("baseline") and summary["baseline"] not in baselines:
            baselines.append(summary["baseline"])
        for label, metrics in summary["models"].items():
            entry = {**metrics, "source": path}
            if label in models and metrics.get("role") == "baseline":
                continue  # keep the first file's baseline, or the model's own entry
            if label in models and models[label].get("role") == "model" and metrics.get("role") == "model":
                notes.append(f"{label} appears in {models[label]['source']} and {path}; showing {path}")
            models[label] = entry
    if len(baselines) > 1:
        notes.append(f"win rates are against different baselines ({', '.join(baselines)}); compare the ratings instead")
    anchor = baselines[0] if len(baselines) == 1 else None
    if any(games.values()):
        ratings = ratings_of(games, anchor, bootstrap, seed)
    else:
        ratings = stored_ratings if len(paths) == 1 else {}
    return {"kind": "cai-eval-report", "files": list(paths), "baselines": baselines, "models": models, "ratings": ratings, "notes": notes}


def report_from_summary(summary: dict) -> dict:
    """One eval run's summary in the shape `table` and `chart` take."""
    return {
        "kind": "cai-eval-report",
        "files": [summary.get("results") or "<stdout>"],
        "baselines": [summary["baseline"]] if summary.get("baseline") else [],
        "models": summary["models"],
        "ratings": summary.get("ratings") or {},
        "notes": [],
    }


def _read(path: str) -> tuple[str, object]:
    """("rows", list) for eval output JSONL, ("summary", dict) for a summary JSON."""
    p = Path(path)
    if not p.exists():
        raise CaiError(f"{path}: no such file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole.get("kind") == "cai-eval-summary":
        return "summary", whole
    rows = []
    for item in read_lines(path):
        if item.error is not None:
            raise CaiError(str(item.error))
        rows.append(item.row)
    if not rows:
        raise CaiError(f"{path}: no rows (the file is empty)")
    return "rows", rows


def _fmt(stat, digits: int = 2) -> str:
    """The value, and under it the larger half of its interval (±0.07): narrow enough for an 80-column terminal."""
    if not isinstance(stat, dict) or stat.get("value") is None:
        return "—"
    value = stat["value"]
    lo, hi = (stat.get("ci") or [value, value])[:2]
    half = max(value - lo, hi - value)
    if stat.get("n", 0) < 2 or half <= 0:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f}\n[dim]±{half:.{digits}f}[/]"


def _rating_of(report: dict, criterion: str, label: str) -> dict | None:
    for r in report.get("ratings", {}).get(criterion, []):
        if r["model"] == label:
            return r
    return None


def table(report: dict, title: str = "cai eval"):
    """A rich Table: one row per model, one column per metric that any model has."""
    from rich import box
    from rich.table import Table

    models = report["models"]
    shown = [(k, t) for k, t in COLUMNS if any(isinstance(m.get(k), dict) for m in models.values())]
    # With two players a rating says no more than the win rate; it earns its column from three on.
    criteria = [c for c in ("harmlessness", "helpfulness") if len(report.get("ratings", {}).get(c) or []) > 2]
    t = Table(title=title, title_justify="left", caption=CAPTION, caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("model", style="bold", overflow="fold", min_width=8)
    for _, heading in shown:
        t.add_column(heading, justify="right")
    for c in criteria:
        t.add_column(f"{c[:4]}\nElo", justify="right")
    for label, m in models.items():
        baseline = m.get("role") == "baseline"
        cells = [label if not baseline or "baseline" in label else f"{label} (baseline)"]
        for key, _ in shown:
            cells.append("ref" if baseline and key.endswith("win_rate") else _fmt(m.get(key), 3 if key == "reward" else 2))
        for c in criteria:
            r = _rating_of(report, c, label)
            cells.append(_fmt({"value": r["rating"], "ci": r["ci"], "n": r["games"]}, 0) if r else "—")
        t.add_row(*cells, style="dim" if baseline else None)
    return t


def _points(report: dict) -> tuple[list[tuple[str, float, tuple, float, tuple, str]], str, str, str]:
    """(label, x, x interval, y, y interval, role) per model, the axis titles and the chart's title."""
    models = report["models"]
    ratings = report.get("ratings", {})
    points = []
    if len(report.get("baselines", [])) > 1 and ratings.get("harmlessness") and ratings.get("helpfulness"):
        for label in models:
            h, g = _rating_of(report, "harmlessness", label), _rating_of(report, "helpfulness", label)
            if h and g:
                points.append((label, g["rating"], tuple(g["ci"]), h["rating"], tuple(h["ci"]), models[label].get("role", "")))
        return points, "helpfulness Elo (Bradley–Terry)", "harmlessness Elo (Bradley–Terry)", "Harmlessness vs helpfulness (ratings)"
    if any(isinstance(m.get("harmlessness_win_rate"), dict) or isinstance(m.get("helpfulness_win_rate"), dict) for m in models.values()):
        for label, m in models.items():
            if m.get("role") == "baseline":
                points.append((label, 0.5, (0.5, 0.5), 0.5, (0.5, 0.5), "baseline"))
                continue
            x, y = m.get("helpfulness_win_rate"), m.get("harmlessness_win_rate")
            xv = x["value"] if isinstance(x, dict) else 0.5
            yv = y["value"] if isinstance(y, dict) else 0.5
            points.append((label, xv, tuple(x["ci"]) if isinstance(x, dict) else (xv, xv), yv, tuple(y["ci"]) if isinstance(y, dict) else (yv, yv), "model"))
        base = ", ".join(report.get("baselines", [])) or "baseline"
        return points, f"helpfulness win rate vs {base}", f"harmlessness win rate vs {base}", "Harmlessness vs helpfulness (judge win rates)"
    # No judge: the refusal detector's proxies.
    for label, m in models.items():
        over, refusal, deflect = m.get("over_refusal_rate"), m.get("refusal_rate"), m.get("deflection_rate")
        if not isinstance(over, dict) or not isinstance(refusal, dict):
            continue
        declined = refusal["value"] + (deflect["value"] if isinstance(deflect, dict) else 0.0)
        xv = 1.0 - over["value"]
        points.append((label, xv, (1.0 - over["ci"][1], 1.0 - over["ci"][0]), declined, (declined, declined), m.get("role", "")))
    return points, "answers risky-looking benign prompts (1 − over-refusal)", "declines red-team prompts (refusal + deflection)", "Harmlessness vs helpfulness (refusal detector)"


def chart(report: dict, path: str) -> Path:
    """Write the harmlessness-versus-helpfulness chart to PATH (.png, .svg, .pdf, or .html with the table)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf", ".html", ".htm"):
        raise CaiError(f"{path}: the report is written as .png, .svg, .pdf or .html (got '{out.suffix or 'no extension'}')")
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI toolkit is touched
    import matplotlib.pyplot as plt

    points, xlabel, ylabel, title = _points(report)
    if not points:
        raise CaiError("nothing to plot: the results have neither judge win rates nor benign and red-team refusal rates")
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=120)
    win_rates = "win rate" in xlabel
    if win_rates:
        ax.axhline(0.5, color="0.8", lw=1, ls="--", zorder=0)
        ax.axvline(0.5, color="0.8", lw=1, ls="--", zorder=0)
    for label, x, (x0, x1), y, (y0, y1), role in points:
        baseline = role == "baseline"
        ax.errorbar(
            x, y, xerr=[[max(0.0, x - x0)], [max(0.0, x1 - x)]], yerr=[[max(0.0, y - y0)], [max(0.0, y1 - y)]],
            fmt="s" if baseline else "o", ms=8, capsize=3, color="0.45" if baseline else None, zorder=3,
        )
        ax.annotate(label if len(label) <= 40 else "…" + label[-39:], (x, y), textcoords="offset points", xytext=(7, 6), fontsize=8)
    if win_rates or "1 −" in xlabel:
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if suffix in (".html", ".htm"):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        tmp.write_text(_html(report, base64.b64encode(buf.getvalue()).decode("ascii"), title), encoding="utf-8")
    else:
        fig.savefig(tmp, format=suffix[1:])
    plt.close(fig)
    tmp.replace(out)
    return out


_PRE = '<pre style="font-family:monospace;font-size:13px">{code}</pre>'


def _html(report: dict, png_b64: str, title: str) -> str:
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO())
    console.print(table(report))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", []))
    return (
        "<!doctype html><meta charset='utf-8'><title>cai eval report</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}</style>"
        f"<h1>cai eval report</h1><p>{html.escape(', '.join(report.get('files', [])))}</p>"
        f"<img alt='{html.escape(title)}' src='data:image/png;base64,{png_b64}'>"
        f"{console.export_html(inline_styles=True, code_format=_PRE)}"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def run_report(results: list[str], output: str | None = None, json_out: str | None = None, bootstrap: int = 1000) -> dict:
    """`cai report`: the table on stdout, notes on stderr, then the JSON and the chart when asked for."""
    import sys

    from rich.console import Console

    merged = load_results(results, bootstrap=bootstrap)
    Console().print(table(merged, title="cai report"))
    for note in merged["notes"]:
        print(f"cai report: note: {note}", file=sys.stderr)
    if json_out:
        target = Path(json_out)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(target)
    if output:
        print(f"cai report: chart -> {chart(merged, output)}", file=sys.stderr)
    return merged


def print_summary(summary: dict) -> None:
    """One eval run's table, on stderr (stdout may be carrying the rows)."""
    from rich.console import Console

    Console(stderr=True).print(table(report_from_summary(summary)))
