"""The report's figure (PNG, SVG, PDF, or inside the HTML page): harmlessness against helpfulness (players named
in one legend, never by labels that could overlap; coincident points drawn side by side), each model's change
against its baseline with 95% intervals, and the share of red-team and benign prompts declined per category."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from ..errors import CaiError
from .merge import players as _players
from .merge import rating_of as _rating_of


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
    from ..stats import proportion

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
        from .html import page

        tmp.write_text(page(report, base64.b64encode(buf.getvalue()).decode("ascii")), encoding="utf-8")
    else:
        fig.savefig(tmp, format=suffix[1:])
    plt.close(fig)
    tmp.replace(out)
    return out
