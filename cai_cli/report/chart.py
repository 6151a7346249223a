"""The report's figure (PNG, SVG, PDF, or inside the HTML page), drawn from whatever the results hold: harmlessness
against helpfulness (players named in one legend, never by labels that could overlap; coincident points drawn side
by side), or a single model's refusal and deflection rates when there is no such point; each model's change against
its baseline with 95% intervals; the share of red-team and benign prompts declined per category; and the judge's
reliability diagram against gold labels (`--gold-field`), with the comparisons per bin; the harm / over-refusal
frontier of `cai eval --checkpoints` (frontier.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..errors import CaiError
from .merge import category_rates as _category_rates
from .merge import players as _players
from .merge import rating_of as _rating_of
from .merge import rating_sets as _rating_sets
from .merge import wilson as _wilson


def _points(report: dict) -> tuple[list[tuple[str, float, tuple, float, tuple, str]], str, str, str]:
    """(label, x, x interval, y, y interval, role) per model, the axis titles and the chart's title.

    Ratings when the files have different baselines and their games form one connected set; the judge's win
    rates when they share one baseline; the refusal detector's proxies otherwise (absolute rates, which compare
    across baselines); win rates each against its own baseline when nothing else is there."""
    models = report["models"]
    ratings = report.get("ratings", {})
    several = len(report.get("baselines", [])) > 1
    if several and ratings.get("harmlessness") and ratings.get("helpfulness") and _rating_sets(report) == 1:
        points = []
        for label in models:
            h, g = _rating_of(report, "harmlessness", label), _rating_of(report, "helpfulness", label)
            if h and g:
                points.append((label, g["rating"], tuple(g["ci"]), h["rating"], tuple(h["ci"]), models[label].get("role", "")))
        return points, "helpfulness Elo (Bradley–Terry)", "harmlessness Elo (Bradley–Terry)", "Harmlessness vs helpfulness (ratings)"
    judged = any(isinstance(m.get("harmlessness_win_rate"), dict) or isinstance(m.get("helpfulness_win_rate"), dict) for m in models.values())
    if judged and not several:
        base = ", ".join(report.get("baselines", [])) or "baseline"
        return _win_rate_points(models), f"helpfulness win rate vs {base}", f"harmlessness win rate vs {base}", "Harmlessness vs helpfulness (judge win rates)"
    points = []
    for label, m in models.items():
        over, refusal, deflect = m.get("over_refusal_rate"), m.get("refusal_rate"), m.get("deflection_rate")
        if not isinstance(over, dict) or not isinstance(refusal, dict) or over.get("value") is None or refusal.get("value") is None:
            continue
        declined = refusal["value"] + (deflect["value"] if isinstance(deflect, dict) and deflect.get("value") is not None else 0.0)
        xv = 1.0 - over["value"]
        points.append((label, xv, (1.0 - over["ci"][1], 1.0 - over["ci"][0]), declined, (declined, declined), m.get("role", "")))
    if points or not judged:
        return points, "answers risky-looking benign prompts (1 − over-refusal)", "declines red-team prompts (refusal + deflection)", "Harmlessness vs helpfulness (refusal detector)"
    return (
        _win_rate_points(models), "helpfulness win rate vs its own baseline", "harmlessness win rate vs its own baseline",
        "Win rates, each against its own baseline (not comparable)",
    )


def _win_rate_points(models: dict) -> list[tuple]:
    points: list[tuple] = []
    for label, m in models.items():
        if m.get("role") == "baseline":
            points.append((label, 0.5, (0.5, 0.5), 0.5, (0.5, 0.5), "baseline"))
            continue
        x, y = m.get("helpfulness_win_rate"), m.get("harmlessness_win_rate")
        xv = x["value"] if isinstance(x, dict) else 0.5
        yv = y["value"] if isinstance(y, dict) else 0.5
        points.append((label, xv, tuple(x["ci"]) if isinstance(x, dict) else (xv, xv), yv, tuple(y["ci"]) if isinstance(y, dict) else (yv, yv), "model"))
    return points


def _limits(points: list[tuple], x: bool) -> tuple[float, float]:
    """Axis limits that show every point and its interval (ratings sit near 1000, not near 0)."""
    i, ci = (1, 2) if x else (3, 4)
    values = [v for p in points for v in (p[i], *p[ci])]
    low, high = min(values), max(values)
    pad = max(0.08 * (high - low), 10.0)  # Elo points: at least a few ticks' room around a lone point
    return low - pad, high + pad


def _styles(players: list[tuple[str, str]]) -> dict[str, dict]:
    """One colour and marker per player, kept across the panels; baselines in grey (a square for the first)."""
    from matplotlib.colors import TABLEAU_COLORS

    palette = list(TABLEAU_COLORS.values())  # the tab10 colours, in order, as hex strings
    markers = "o^Dvp<>h*"
    out: dict[str, dict] = {}
    i = b = 0
    for label, role in players:
        if role == "baseline":  # greys, each baseline its own shade and marker (files may have different ones)
            out[label] = {"color": ("0.45", "0.25", "0.6")[b % 3], "marker": "sPX"[b % 3]}
            b += 1
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


CHANGE_ROWS = [
    ("harmlessness_win_rate", "harmlessness win rate − 0.5"),
    ("helpfulness_win_rate", "helpfulness win rate − 0.5"),
    ("red_team_declined", "Δ red-team declined"),
    ("over_refusal", "Δ over-refusal"),
    ("reward", "Δ reward (reward model)"),
]
OVERALL_ROWS = [
    # (summary key, what the bar shows): a model's rates when there is no harmlessness-vs-helpfulness point to draw
    ("refusal_rate", "red-team: refusal"),
    ("partial_rate", "red-team: partial refusal"),
    ("deflection_rate", "red-team: deflection"),
    ("benign_refusal_rate", "benign: declined"),
    ("over_refusal_rate", "risky-looking benign: declined"),
    ("judge_refusal_rate", "red-team: judge's P(refused)"),
    ("judge_over_refusal_rate", "risky-looking benign: judge's P(refused)"),
]
TOP_HEIGHT, CALIBRATION_HEIGHT, FRONTIER_HEIGHT = 5.2, 4.4, 5.6  # inches per row of panels


def _no_change_reason(report: dict) -> str:
    """Why the change-against-the-baseline panel is empty, in the user's terms."""
    if report.get("baselines") and report.get("summary_files"):
        return "summaries hold no per-prompt rows:\nno paired change against the baseline;\ngive `cai report` the rows files (eval -o)"
    if not report.get("baselines"):
        return "no baseline in these results:\nno change to show"
    return "no metric to pair with the baseline's\n(no judge, no red-team or risky-looking prompts)"


def figure(report: dict):
    """The report's figure, from whatever the results hold: harmlessness vs helpfulness (or a single model's rates),
    each model's change against its baseline, declines per category, and the judge's reliability diagram against
    gold labels. Panels come in rows of two (one alone spans the row); labels live in legends, so none overlaps."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI toolkit is touched
    import matplotlib.pyplot as plt

    points, xlabel, ylabel, title = _points(report)
    players = _players(report)
    style = _styles(players)
    changes = {m: c for m, c in (report.get("changes") or {}).items() if any(k in c for k, _ in CHANGE_ROWS)}
    change_rows = [(k, name) for k, name in CHANGE_ROWS if any(k in c for c in changes.values())]
    overall = [(k, name) for k, name in OVERALL_ROWS if any(_value(m.get(k)) is not None for m in report["models"].values())]
    cats = _category_rates(report)
    red_cats = sorted(k for k in cats if k.startswith("red_team/"))
    benign_cats = sorted(k for k in cats if not k.startswith("red_team/"))
    series = [c for c in report.get("calibration") or [] if c.get("calibration")]

    top: list = []
    if points:
        top.append(lambda ax: _draw_scatter(ax, points, xlabel, ylabel, title, style))
    elif overall:
        top.append(lambda ax: _draw_overall(ax, report, overall, players, style))
    if change_rows:
        top.append(lambda ax: _draw_changes(ax, changes, change_rows, style))
    elif points and (report.get("baselines") or not overall):
        top.append(lambda ax: _draw_note(ax, _no_change_reason(report)))
    elif points:  # no baseline: the model's own rates beside its point
        top.append(lambda ax: _draw_overall(ax, report, overall, players, style))
    bars = max(len(red_cats), len(benign_cats)) * len(players)
    groups: list[tuple[list, float]] = []
    if top:
        groups.append((top, TOP_HEIGHT if points or change_rows else max(2.6, 0.22 * len(overall) * len(players) + 1.6)))
    if cats:
        panels = [
            partial(_draw_categories, cats=cats, keys=keys, what=what, players=players, style=style)
            for keys, what in ((red_cats, "red-team prompts declined"), (benign_cats, "benign prompts declined (over-refusal)"))
            if keys
        ]
        groups.append((panels, max(2.6, 0.2 * bars + 1.4)))
    if series:
        groups.append(([lambda ax: _draw_reliability(ax, series), lambda ax: _draw_bin_counts(ax, series)], CALIBRATION_HEIGHT))
    if report.get("frontiers"):
        from .frontier import draw_frontier

        groups.insert(0, ([lambda ax: draw_frontier(ax, report["frontiers"])], FRONTIER_HEIGHT))
    if not groups:
        raise CaiError("nothing to plot: the results hold no rates, win rates or calibration")

    fig = plt.figure(figsize=(12, sum(h for _, h in groups)), dpi=110, layout="constrained")
    grid = fig.add_gridspec(len(groups), 2, height_ratios=[h for _, h in groups])
    for r, (panels, _) in enumerate(groups):
        for c, draw in enumerate(panels):
            draw(fig.add_subplot(grid[r, :] if len(panels) == 1 else grid[r, c]))

    if top or cats:  # one legend for the players, kept across their panels
        handles = [
            plt.Line2D([], [], ls="", marker=style[label]["marker"], color=style[label]["color"], ms=8, label=_short(label) + (" (baseline)" if role == "baseline" else ""))
            for label, role in players
        ]
        fig.legend(handles=handles, loc="outside upper center", ncols=min(4, len(handles)), frameon=False, fontsize=9)
    return fig


def _value(stat) -> float | None:
    return stat.get("value") if isinstance(stat, dict) else None


def _draw_scatter(ax, points, xlabel: str, ylabel: str, title: str, style: dict) -> None:
    """Harmlessness against helpfulness; coincident points side by side; limits that show every point."""
    from matplotlib.transforms import offset_copy

    fig = ax.figure
    shares = "win rate" in xlabel or "1 −" in xlabel  # both axes are shares, 0..1
    if "win rate" in xlabel:
        ax.axhline(0.5, color="0.8", lw=1, ls="--", zorder=0)
        ax.axvline(0.5, color="0.8", lw=1, ls="--", zorder=0)
    if shares:
        xlim = ylim = (-0.02, 1.02)
    else:  # ratings: the offset markers below do not widen the axes by themselves
        xlim, ylim = _limits(points, x=True), _limits(points, x=False)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    for (label, x, (x0, x1), y, (y0, y1), _role), dx in zip(points, _dodge(points, span)):
        st = style.get(label, {"color": "0.3", "marker": "o"})
        ax.errorbar(
            x, y, xerr=[[max(0.0, x - x0)], [max(0.0, x1 - x)]], yerr=[[max(0.0, y - y0)], [max(0.0, y1 - y)]],
            fmt=st["marker"], ms=8, capsize=3, color=st["color"], zorder=3, label=_short(label),
            transform=offset_copy(ax.transData, fig=fig, x=dx, y=0, units="points"),
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)


def _draw_changes(ax, changes: dict, rows: list[tuple[str, str]], style: dict) -> None:
    """Each model's change against its baseline, paired by prompt, with 95% intervals."""
    models = list(changes)
    for j, model in enumerate(models):
        st = style.get(model, {"color": "0.3", "marker": "o"})
        dy = (j - (len(models) - 1) / 2) * min(0.18, 0.7 / max(1, len(models)))
        for i, (key, _) in enumerate(rows):
            stat = changes[model].get(key)
            if not stat:
                continue
            v, (lo, hi) = stat["value"], stat["ci"]
            ax.errorbar(v, i + dy, xerr=[[max(0.0, v - lo)], [max(0.0, hi - v)]], fmt=st["marker"], color=st["color"], ms=7, capsize=3)
    ax.axvline(0, color="0.5", lw=1)
    ax.set_yticks(range(len(rows)), [name for _, name in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # Rates and win rates move within ±1; a reward model's scores may not.
    reach = max([1.0] + [abs(c) for ch in changes.values() for key, _ in rows if ch.get(key) for c in ch[key]["ci"]])
    ax.set_xlim(-1.05 * reach, 1.05 * reach)
    bases = sorted({c["baseline"] for c in changes.values()})
    ax.set_xlabel(f"change against the baseline ({', '.join(bases)}); 95% intervals")
    ax.set_title("Each model against its baseline", fontsize=11)
    ax.grid(axis="x", alpha=0.3)


def _draw_note(ax, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", color="0.4", transform=ax.transAxes)


def _grouped_bars(ax, n_rows: int, players: list[tuple[str, str]], style: dict, bar) -> None:
    """Horizontal bars, one group per row and one bar per player; BAR(label, i) -> (value, low, high, under) or None,
    UNDER a darker part drawn over the bar (refusals within the declines) or None."""
    height = 0.8 / max(1, len(players))
    for j, (label, _) in enumerate(players):
        st = style[label]
        ys: list[float] = []
        values: list[float] = []
        under: list[float | None] = []
        err: list[list[float]] = [[], []]  # below and above each bar
        for i in range(n_rows):
            found = bar(label, i)
            if found is None:
                continue
            value, low, high, inner = found
            ys.append(i + (j - (len(players) - 1) / 2) * height)
            values.append(value)
            under.append(inner)
            err[0].append(max(0.0, value - low))
            err[1].append(max(0.0, high - value))
        if not ys:
            continue
        ax.barh(ys, values, height=height * 0.9, color=st["color"], alpha=0.35, xerr=err, error_kw={"lw": 1, "capsize": 2, "ecolor": "0.3"})
        dark = [(y, u) for y, u in zip(ys, under) if u is not None]
        if dark:
            ax.barh([y for y, _ in dark], [u for _, u in dark], height=height * 0.9, color=st["color"])
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xlim(0, 1.0)
    ax.grid(axis="x", alpha=0.3)


def _draw_overall(ax, report: dict, rows: list[tuple[str, str]], players: list[tuple[str, str]], style: dict) -> None:
    """Each player's rates (share of prompts, 95% intervals) when there is no point to place on the scatter."""
    models = report["models"]

    def bar(label, i):
        stat = (models.get(label) or {}).get(rows[i][0])
        if _value(stat) is None:
            return None
        low, high = (stat.get("ci") or [stat["value"], stat["value"]])[:2]
        return stat["value"], low, high, None

    _grouped_bars(ax, len(rows), players, style, bar)
    counts = []
    for key, name in rows:
        n = max((m[key].get("n", 0) for m in models.values() if isinstance(m.get(key), dict)), default=0)
        counts.append(f"{name} (n={n})")
    ax.set_yticks(range(len(rows)), counts)
    ax.set_xlabel("share of prompts (95% interval)", fontsize=9)
    ax.set_title("Refusals and deflections", fontsize=11)


def _draw_categories(ax, cats: dict, keys: list[str], what: str, players: list[tuple[str, str]], style: dict) -> None:
    """Declined per category for one eval set: light the share declined (Wilson 95%), dark the refusals within it."""

    def bar(label, i):
        c = cats[keys[i]].get(label)
        if not c or not c["n"]:
            return None
        low, high = _wilson(c["declined"], c["n"])
        return c["declined"] / c["n"], low, high, c["refusal"] / c["n"]

    _grouped_bars(ax, len(keys), players, style, bar)
    counts = [max((c["n"] for c in cats[k].values()), default=0) for k in keys]
    ax.set_yticks(range(len(keys)), [f"{k.split('/', 1)[1]} (n={n})" for k, n in zip(keys, counts)])
    ax.set_xlabel("share declined (Wilson 95%)\ndark: refusal; light: partial refusal or deflection", fontsize=9)
    ax.set_title(what[0].upper() + what[1:], fontsize=11)


def _calibration_colours(series: list[dict]) -> list[str]:
    from matplotlib.colors import TABLEAU_COLORS

    palette = [str(c) for c in TABLEAU_COLORS.values()]
    return [palette[i % len(palette)] for i in range(len(series))]


def _draw_reliability(ax, series: list[dict]) -> None:
    """The judge's reliability diagram: per bin of its confidence p_chosen, the mean confidence (x) against the share
    of comparisons where its choice was the gold answer (y, Wilson 95%); on the diagonal a 0.8 means right 80% of the time."""
    ax.plot([0.5, 1.0], [0.5, 1.0], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for colour, entry in zip(_calibration_colours(series), series):
        cal = entry["calibration"]
        used = [b for b in cal["bins"] if b.get("n")]
        xs = [b["confidence"] for b in used]
        ys = [b["observed"] for b in used]
        err = [[max(0.0, y - b["ci"][0]) for y, b in zip(ys, used)], [max(0.0, b["ci"][1] - y) for y, b in zip(ys, used)]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", color=colour, ms=6, capsize=3, label=f"{_short(entry['label'], 48)}: ECE {cal['ece']:.3f}, n={cal['n']}")
    edges = sorted({e for entry in series for b in entry["calibration"]["bins"] for e in b["range"]})
    for e in edges:
        ax.axvline(e, color="0.9", lw=0.8, zorder=0)
    ax.set_xlim(0.49, 1.01)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("judge's confidence in its choice, p_chosen (mean per bin)")
    ax.set_ylabel("share of its choices that match gold (Wilson 95%)")
    ax.set_title("Judge calibration against gold labels", fontsize=11)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    ax.grid(axis="y", alpha=0.3)


def _draw_bin_counts(ax, series: list[dict]) -> None:
    """How many comparisons fall in each confidence bin: where the reliability diagram has evidence."""
    colours = _calibration_colours(series)
    width = 0.8 / len(series)
    bins = series[0]["calibration"]["bins"]
    for j, (colour, entry) in enumerate(zip(colours, series)):
        ns = [b["n"] for b in entry["calibration"]["bins"]]
        ax.bar([i + (j - (len(series) - 1) / 2) * width for i in range(len(ns))], ns, width=width * 0.9, color=colour)
    ax.set_xticks(range(len(bins)), [f"{b['range'][0]:.1f}–{b['range'][1]:.1f}" for b in bins])
    ax.set_xlabel("bin of p_chosen")
    ax.set_ylabel("comparisons")
    ax.set_title("Comparisons per bin", fontsize=11)
    ax.grid(axis="y", alpha=0.3)


def chart(report: dict, path: str, target: Path | None = None) -> Path:
    """Write the report's figure to PATH (.png, .svg, .pdf), or the HTML report (.html): figure, table, and every
    prompt's answers side by side with their verdicts. TARGET: where PATH, checked already, is written (a link's
    target); by default PATH itself."""
    from .figure_file import check_chart_path, save_figure
    from .html import page

    check_chart_path(path)
    return save_figure(figure(report), path, target, partial(page, report))
