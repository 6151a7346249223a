"""report: gather `cai eval` results into one table (terminal), one figure (PNG, SVG, PDF), or one HTML page.

The figure: harmlessness against helpfulness (players named in one legend, never by labels that
could overlap; coincident points drawn side by side), each model's change against its baseline
with 95% intervals, and the share of red-team and benign prompts declined per category. The HTML
page adds the table and every prompt's answers, baseline and models side by side with verdicts.

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
    "±: 95% interval (Wilson for rates, bootstrap for means)."
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
    answers: dict[tuple, dict] = {}
    changes: dict[str, dict] = {}
    summaries_only: list[str] = []
    for path in paths:
        content = _read(path)
        if isinstance(content, list):  # eval output rows; a dict is a summary
            summary = summarize(content, bootstrap=bootstrap, seed=seed, source=path)
            for crit, cs in comparisons_of(content).items():
                games[crit] += cs
            _collect_answers(answers, content, summary)
            if summary.get("baseline"):
                changes[summary["model"]] = _changes(content, summary, bootstrap, seed)
        else:
            summary = content
            summaries_only.append(path)
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
    return {
        "kind": "cai-eval-report",
        "files": list(paths),
        "baselines": baselines,
        "models": models,
        "ratings": ratings,
        "changes": changes,
        "notes": notes,
        "answers": list(answers.values()),
        "summary_files": summaries_only,  # they hold no answers to show side by side
    }


def _declined(verdict) -> float | None:
    """1.0 when the detector says the reply did not do all that was asked (refusal, partial, deflection)."""
    if not isinstance(verdict, dict) or "label" not in verdict:
        return None
    return 0.0 if verdict["label"] == "answer" else 1.0


def _changes(rows: list[dict], summary: dict, bootstrap: int, seed: int) -> dict:
    """The model's change against its baseline, prompt by prompt (paired), with 95% intervals.

    Win rates are already a change (0.5: no change); the detector's rates are differences of the two
    answers to the same prompt, so their interval is the paired bootstrap's.
    """
    from .stats import bootstrap_mean

    out: dict = {"baseline": summary["baseline"]}
    model = summary["models"].get(summary["model"], {})
    for key in ("harmlessness_win_rate", "helpfulness_win_rate"):
        stat = model.get(key)
        if isinstance(stat, dict) and stat.get("value") is not None:
            out[key] = {"value": stat["value"] - 0.5, "ci": [c - 0.5 for c in stat["ci"]], "n": stat["n"]}

    def paired(subset):
        diffs = []
        for r in subset:
            m, b = _declined(r.get("refusal")), _declined(r.get("baseline_refusal"))
            if m is not None and b is not None:
                diffs.append(m - b)
        return bootstrap_mean(diffs, bootstrap=bootstrap, seed=seed)

    from .eval.stats import benign_marker

    red = [r for r in rows if r.get("eval_set") == "red_team"]
    marker = benign_marker(rows)  # risky_looking, or the run's --benign-field
    risky = [r for r in rows if r.get("eval_set") == "benign" and r.get(marker) is True]
    for key, subset in (("red_team_declined", red), ("over_refusal", risky)):
        if stat := paired(subset):
            out[key] = stat
    return out


def _collect_answers(answers: dict, rows: list[dict], summary: dict) -> None:
    """Per prompt: the baseline's and each model's answer and verdict, for the side-by-side view."""
    from .eval.stats import baseline_answer_field, benign_marker
    from .rows import conversation

    model, baseline = summary["model"], summary.get("baseline")
    marker, baseline_answer = benign_marker(rows), baseline_answer_field(rows)
    for r in rows:
        if "response" not in r:
            continue
        key = (r.get("eval_set"), r.get("id"))
        entry = answers.setdefault(
            key,
            {
                "id": r.get("id"),
                "eval_set": r.get("eval_set"),
                "category": r.get("category") if isinstance(r.get("category"), str) else None,
                "risky_looking": r.get(marker),
                "conversation": conversation(r) if ("prompt" in r or "messages" in r) else [],
                "answers": {},
            },
        )
        found = r.get("judge")
        judge = found if isinstance(found, dict) else {}
        entry["answers"][model] = {
            "role": "model",
            "response": r["response"],
            "verdict": r.get("refusal") or {},
            "p_model": judge.get("p_model"),
            "criterion": judge.get("criterion"),
        }
        if baseline and baseline_answer in r and baseline not in entry["answers"]:
            entry["answers"][baseline] = {"role": "baseline", "response": r[baseline_answer], "verdict": r.get("baseline_refusal") or {}}


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


def _read(path: str) -> list[dict] | dict:
    """The rows of eval output JSONL (a list), or a summary JSON (a dict)."""
    p = Path(path)
    if not p.exists():
        raise CaiError(f"{path}: no such file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole.get("kind") == "cai-eval-summary":
        return whole
    rows: list[dict] = []
    for item in read_lines(path):
        if item.error is not None:
            raise CaiError(str(item.error))
        assert item.row is not None  # a line without an error has its row
        rows.append(item.row)
    if not rows:
        raise CaiError(f"{path}: no rows (the file is empty)")
    return rows


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


def _players(report: dict) -> list[tuple[str, str]]:
    """(label, role) of every player, baselines first: the order of legends, bars and answer columns."""
    models = report["models"]
    first = [(k, "baseline") for k, m in models.items() if m.get("role") == "baseline"]
    return first + [(k, m.get("role") or "model") for k, m in models.items() if m.get("role") != "baseline"]


def _styles(players: list[tuple[str, str]]) -> dict[str, dict]:
    """One colour and marker per player, kept across the panels; baselines grey squares."""
    from matplotlib.colors import TABLEAU_COLORS

    palette = list(TABLEAU_COLORS.values())  # the tab10 colours, in order, as hex strings
    markers = "o^Dvp<>h*"
    out: dict[str, dict] = {}
    i = 0
    for label, role in players:
        if role == "baseline":
            out[label] = {"color": "0.45", "marker": "s"}
        else:
            out[label] = {"color": palette[i % len(palette)], "marker": markers[i % len(markers)]}
            i += 1
    return out


def _short(label: str, width: int = 40) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def _dodge(points: list[tuple], span: float) -> list[float]:
    """Offsets in points for markers that would land on each other (closer than 1.5% of the axis):
    each group of coincident points is spread side by side, so none hides another."""
    offsets = [0.0] * len(points)
    groups: list[list[int]] = []
    for i, pt in enumerate(points):
        for g in groups:
            q = points[g[0]]
            if abs(pt[1] - q[1]) <= 0.015 * span and abs(pt[3] - q[3]) <= 0.015 * span:
                g.append(i)
                break
        else:
            groups.append([i])
    for g in groups:
        for k, i in enumerate(g):
            offsets[i] = (k - (len(g) - 1) / 2) * 9.0
    return offsets


def _category_rates(report: dict) -> dict[str, dict[str, dict]]:
    """eval_set/category -> player -> {n, refusal, declined}: counts of the detector's labels."""
    out: dict[str, dict[str, dict]] = {}
    if report.get("answers"):
        for entry in report["answers"]:
            key = f"{entry['eval_set']}/{entry['category'] or '(none)'}"
            for label, ans in entry["answers"].items():
                c = out.setdefault(key, {}).setdefault(label, {"n": 0, "refusal": 0, "declined": 0})
                verdict = ans.get("verdict", {}).get("label")
                if verdict is None:
                    continue
                c["n"] += 1
                c["refusal"] += verdict == "refusal"
                c["declined"] += verdict != "answer"
        return out
    for label, m in report["models"].items():  # summaries only: their per-category rates
        for key, c in (m.get("by_category") or {}).items():
            n = c.get("n", 0)
            refusal = round(c.get("refusal_rate", 0.0) * n)
            declined = refusal + round((c.get("partial_rate", 0.0) + c.get("deflection_rate", 0.0)) * n)
            out.setdefault(key, {})[label] = {"n": n, "refusal": refusal, "declined": declined}
    return out


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval of k successes in n (cai_cli.stats.proportion): a 0% rate still gets a real interval."""
    from .stats import proportion

    if n == 0:
        return (0.0, 0.0)
    low, high = proportion(k, n)["ci"]
    return (low, high)


CHANGE_ROWS = [
    ("harmlessness_win_rate", "harmlessness win rate − 0.5"),
    ("helpfulness_win_rate", "helpfulness win rate − 0.5"),
    ("red_team_declined", "Δ red-team declined"),
    ("over_refusal", "Δ over-refusal"),
]


def figure(report: dict):
    """The report's figure: harmlessness vs helpfulness, each model's change against its baseline,
    and refusal and over-refusal per category. Labels live in one legend, so none overlaps another."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI toolkit is touched
    import matplotlib.pyplot as plt
    from matplotlib.transforms import offset_copy

    points, xlabel, ylabel, title = _points(report)
    if not points:
        raise CaiError("nothing to plot: the results have neither judge win rates nor benign and red-team refusal rates")
    players = _players(report)
    style = _styles(players)
    changes = {m: c for m, c in (report.get("changes") or {}).items() if any(k in c for k, _ in CHANGE_ROWS)}
    cats = _category_rates(report)
    red_cats = sorted(k for k in cats if k.startswith("red_team/"))
    benign_cats = sorted(k for k in cats if not k.startswith("red_team/"))
    n_bars = max(len(red_cats), len(benign_cats)) * len(players)
    bottom = max(2.6, 0.2 * n_bars + 1.4) if cats else 0
    fig = plt.figure(figsize=(12, 5.2 + bottom), dpi=110, layout="constrained")
    grid = fig.add_gridspec(2 if cats else 1, 2, height_ratios=[5.2, bottom] if cats else [1])

    # 1. harmlessness against helpfulness; coincident points side by side.
    ax = fig.add_subplot(grid[0, 0])
    win_rates = "win rate" in xlabel
    if win_rates:
        ax.axhline(0.5, color="0.8", lw=1, ls="--", zorder=0)
        ax.axvline(0.5, color="0.8", lw=1, ls="--", zorder=0)
    span = 1.0 if (win_rates or "1 −" in xlabel) else max(1e-9, max(p[1] for p in points) - min(p[1] for p in points), max(p[3] for p in points) - min(p[3] for p in points))
    for (label, x, (x0, x1), y, (y0, y1), _role), dx in zip(points, _dodge(points, span)):
        st = style.get(label, {"color": "0.3", "marker": "o"})
        ax.errorbar(
            x, y, xerr=[[max(0.0, x - x0)], [max(0.0, x1 - x)]], yerr=[[max(0.0, y - y0)], [max(0.0, y1 - y)]],
            fmt=st["marker"], ms=8, capsize=3, color=st["color"], zorder=3, label=_short(label),
            transform=offset_copy(ax.transData, fig=fig, x=dx, y=0, units="points"),
        )
    if win_rates or "1 −" in xlabel:
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)

    # 2. each model's change against its baseline, paired by prompt, with 95% intervals.
    ax2 = fig.add_subplot(grid[0, 1])
    rows = [(k, name) for k, name in CHANGE_ROWS if any(k in c for c in changes.values())]
    if rows:
        models = list(changes)
        for j, model in enumerate(models):
            st = style.get(model, {"color": "0.3", "marker": "o"})
            dy = (j - (len(models) - 1) / 2) * min(0.18, 0.7 / max(1, len(models)))
            for i, (key, _) in enumerate(rows):
                stat = changes[model].get(key)
                if not stat:
                    continue
                v, (lo, hi) = stat["value"], stat["ci"]
                ax2.errorbar(v, i + dy, xerr=[[max(0.0, v - lo)], [max(0.0, hi - v)]], fmt=st["marker"], color=st["color"], ms=7, capsize=3)
        ax2.axvline(0, color="0.5", lw=1)
        ax2.set_yticks(range(len(rows)), [name for _, name in rows])
        ax2.set_ylim(len(rows) - 0.5, -0.5)
        ax2.set_xlim(-1.05, 1.05)
        bases = sorted({c["baseline"] for c in changes.values()})
        ax2.set_xlabel(f"change against the baseline ({', '.join(bases)}); 95% intervals")
        ax2.set_title("Each model against its baseline", fontsize=11)
        ax2.grid(axis="x", alpha=0.3)
    else:
        ax2.axis("off")
        ax2.text(0.5, 0.5, "no baseline in these results:\nno change to show", ha="center", va="center", color="0.4", transform=ax2.transAxes)

    # 3. declined per category: red-team (refusal wanted) and benign (over-refusal), per player.
    if cats:
        for col, (keys, what) in enumerate(((red_cats, "red-team prompts declined"), (benign_cats, "benign prompts declined (over-refusal)"))):
            axb = fig.add_subplot(grid[1, col])
            if not keys:
                axb.axis("off")
                continue
            height = 0.8 / len(players)
            for j, (label, _) in enumerate(players):
                st = style[label]
                ys, declined, refusal = [], [], []
                err: list[list[float]] = [[], []]  # below and above each bar
                for i, key in enumerate(keys):
                    c = cats[key].get(label)
                    if not c or not c["n"]:
                        continue
                    rate = c["declined"] / c["n"]
                    lo, hi = _wilson(c["declined"], c["n"])
                    ys.append(i + (j - (len(players) - 1) / 2) * height)
                    declined.append(rate)
                    refusal.append(c["refusal"] / c["n"])
                    err[0].append(rate - lo)
                    err[1].append(hi - rate)
                axb.barh(ys, declined, height=height * 0.9, color=st["color"], alpha=0.35, xerr=err, error_kw={"lw": 1, "capsize": 2, "ecolor": "0.3"})
                axb.barh(ys, refusal, height=height * 0.9, color=st["color"])
            counts = [max((c["n"] for c in cats[k].values()), default=0) for k in keys]
            axb.set_yticks(range(len(keys)), [f"{k.split('/', 1)[1]} (n={n})" for k, n in zip(keys, counts)])
            axb.set_ylim(len(keys) - 0.5, -0.5)
            axb.set_xlim(0, 1.0)
            axb.set_xlabel("share declined (Wilson 95%): dark refusal, light partial or deflection", fontsize=9)
            axb.set_title(what[0].upper() + what[1:], fontsize=11)
            axb.grid(axis="x", alpha=0.3)

    handles = [
        plt.Line2D([], [], ls="", marker=style[label]["marker"], color=style[label]["color"], ms=8, label=_short(label) + (" (baseline)" if role == "baseline" else ""))
        for label, role in players
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(4, len(handles)), frameon=False, fontsize=9)
    return fig


def chart(report: dict, path: str) -> Path:
    """Write the report's figure to PATH (.png, .svg, .pdf), or the HTML report (.html): figure,
    table, and every prompt's answers side by side with their verdicts."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf", ".html", ".htm"):
        raise CaiError(f"{path}: the report is written as .png, .svg, .pdf or .html (got '{out.suffix or 'no extension'}')")
    import matplotlib.pyplot as plt

    fig = figure(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if suffix in (".html", ".htm"):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        tmp.write_text(_html(report, base64.b64encode(buf.getvalue()).decode("ascii")), encoding="utf-8")
    else:
        fig.savefig(tmp, format=suffix[1:])
    plt.close(fig)
    tmp.replace(out)
    return out


_PRE = '<pre style="font-family:monospace;font-size:13px">{code}</pre>'
VERDICT_COLOURS = {"answer": "#2e7d32", "refusal": "#c62828", "partial": "#ef6c00", "deflection": "#6a1b9a"}
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .files{color:#666;font-size:.9em} img{max-width:100%}
.prompt{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em .8em}
.prompt h3{margin:.1em 0 .4em;font-size:1em} .tag{font-size:.8em;color:#555;background:#eee;border-radius:3px;padding:1px 5px;margin-left:.4em}
.conv{white-space:pre-wrap;background:#f6f8fa;padding:.5em;border-radius:4px;margin-bottom:.6em}
.answers{display:grid;gap:.6em;grid-template-columns:repeat(auto-fit,minmax(260px,1fr))}
.answer{border:1px solid #e3e3e3;border-radius:4px;padding:.5em;min-width:0}
.answer.baseline{background:#fafafa}
.who{font-weight:600;margin-bottom:.3em;overflow-wrap:anywhere}
.verdict{display:inline-block;color:#fff;border-radius:3px;padding:0 6px;font-size:.8em;margin-right:.4em}
.judge{font-size:.8em;color:#444}
.text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.92em;margin-top:.3em}
.evidence{font-size:.78em;color:#777}
"""


def _answers_html(report: dict) -> str:
    """Every prompt with the baseline's and each model's answer side by side; prompts where the
    verdicts differ come first, since that is where the models changed."""
    entries = report.get("answers") or []
    if not entries:
        if report.get("summary_files"):
            return f"<p>No answers to show side by side: {html.escape(', '.join(report['summary_files']))} is a summary; give `cai report` the rows files.</p>"
        return ""
    order = [label for label, _ in _players(report)]

    def differs(e):
        return len({a.get("verdict", {}).get("label") for a in e["answers"].values()}) > 1

    ranked = sorted(entries, key=lambda e: (not differs(e), e["eval_set"] or "", e["category"] or "", str(e["id"])))
    parts = [f"<h2>Answers side by side</h2><p>{len(entries)} prompts; the {sum(map(differs, entries))} where the verdicts differ come first.</p>"]
    esc = html.escape
    for e in ranked:
        tags = f"<span class='tag'>{esc(e['eval_set'] or '')}</span>"
        if e["category"]:
            tags += f"<span class='tag'>{esc(e['category'])}</span>"
        if e.get("risky_looking") is True:
            tags += "<span class='tag'>risky-looking</span>"
        conv = "\n\n".join(f"{m['role']}: {m['content']}" for m in e["conversation"])
        cells = []
        for label in [x for x in order if x in e["answers"]] + [x for x in e["answers"] if x not in order]:
            a = e["answers"][label]
            v = a.get("verdict", {})
            name = v.get("label", "?")
            badge = f"<span class='verdict' style='background:{VERDICT_COLOURS.get(name, '#555')}'>{esc(name)}</span>"
            judge = ""
            if a.get("p_model") is not None:
                judge = f"<span class='judge'>judge: P(better than baseline on {esc(a.get('criterion') or '')}) = {a['p_model']:.2f}</span>"
            evidence = f"<div class='evidence'>{esc(v['rule'])}: “{esc(v.get('match') or '')}”</div>" if v.get("rule") else ""
            role = a.get("role", "model")
            who = esc(label) + (" (baseline)" if role == "baseline" else "")
            cells.append(f"<div class='answer {role}'><div class='who'>{who}</div>{badge}{judge}{evidence}<div class='text'>{esc(a['response'])}</div></div>")
        parts.append(f"<div class='prompt'><h3>{esc(str(e['id']))}{tags}</h3><div class='conv'>{esc(conv)}</div><div class='answers'>{''.join(cells)}</div></div>")
    return "".join(parts)


def _html(report: dict, png_b64: str) -> str:
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO())
    console.print(table(report))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", []))
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>cai eval report</title><style>{_CSS}</style>"
        f"<h1>cai eval report</h1><p class='files'>{html.escape(', '.join(report.get('files', [])))}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + f"<img alt='harmlessness against helpfulness, change against the baseline, and declines per category' src='data:image/png;base64,{png_b64}'>"
        f"{console.export_html(inline_styles=True, code_format=_PRE)}"
        f"{_answers_html(report)}</html>"
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
        metrics = {k: v for k, v in merged.items() if k not in ("answers", "summary_files")}  # the answers are in the rows files already
        tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(target)
    if output:
        print(f"cai report: chart -> {chart(merged, output)}", file=sys.stderr)
    return merged


def print_summary(summary: dict) -> None:
    """One eval run's table, on stderr (stdout may be carrying the rows)."""
    from rich.console import Console

    Console(stderr=True).print(table(report_from_summary(summary)))
