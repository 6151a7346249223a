"""The report as terminal tables: one row per model, one column per metric any model has, values with the larger
half of their 95% interval beneath (narrow enough for an 80-column terminal); and the judge's calibration against
gold labels, one row per judge, per bin the share right and the count."""

from __future__ import annotations

from .merge import rating_of, report_from_summary

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
            r = rating_of(report, c, label)
            cells.append(_fmt({"value": r["rating"], "ci": r["ci"], "n": r["games"]}, 0) if r else "—")
        t.add_row(*cells, style="dim" if baseline else None)
    return t


CALIBRATION_CAPTION = (
    "The judge against gold labels. accuracy: share of decided comparisons where it chose the gold answer (±: Wilson 95%). "
    "ECE: the gap between its confidence p_chosen and its share right, averaged over the bins. Per bin: share right "
    "(comparisons) at that confidence; a calibrated judge's 0.8–0.9 bin is right about 85% of the time."
)


def calibration_table(report: dict):
    """A rich Table of the judge's calibration against gold labels, one row per series; None when there is none."""
    from rich import box
    from rich.table import Table

    series = [c for c in report.get("calibration") or [] if c.get("calibration")]
    if not series:
        return None
    bins = series[0]["calibration"]["bins"]
    t = Table(title="judge calibration", title_justify="left", caption=CALIBRATION_CAPTION, caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("judge", style="bold", overflow="fold", min_width=8)
    t.add_column("accuracy", justify="right")
    t.add_column("ECE", justify="right")
    for b in bins:
        t.add_column(f"{b['range'][0]:.1f}–\n{b['range'][1]:.1f}", justify="right")
    for entry in series:
        cal = entry["calibration"]
        cells = [entry["label"], _fmt(entry.get("accuracy")), f"{cal['ece']:.3f}"]
        cells += [f"{b['observed']:.2f}\n[dim]({b['n']})[/]" if b.get("n") else "—" for b in cal["bins"]]
        t.add_row(*cells)
    return t


CHANGES_CAPTION = (
    "Each model against its baseline on the same prompts. changed: answers whose text differs (Wilson 95%). "
    "Δ reward: the reward model's score of the model's answer minus the baseline's, mean over prompts (paired bootstrap 95%). "
    "Δ declined: the share of red-team (risky-looking benign) prompts declined, model minus baseline."
)
CHANGE_COLUMNS = [("reward", "Δ reward", 3), ("red_team_declined", "Δ red-team\ndeclined", 2), ("over_refusal", "Δ over-\nrefusal", 2)]


def changes_table(report: dict):
    """A rich Table of each model's paired change against its baseline (from rows files); None when there is none."""
    from rich import box
    from rich.table import Table

    changes = report.get("changes") or {}
    if not changes:
        return None
    shown = [c for c in CHANGE_COLUMNS if any(c[0] in ch for ch in changes.values())]
    t = Table(title="against the baseline", title_justify="left", caption=CHANGES_CAPTION, caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for heading in ("model", "baseline", "answers\nchanged"):
        t.add_column(heading, justify="left" if heading != "answers\nchanged" else "right", overflow="fold")
    for _, heading, _ in shown:
        t.add_column(heading, justify="right")
    for model, ch in changes.items():
        changed = ch.get("answers_changed")
        cells = [model, ch["baseline"], f"{changed['k']}/{changed['n']}" if changed else "—"]
        cells += [_fmt(ch.get(key), digits) for key, _, digits in shown]
        t.add_row(*cells)
    return t


def print_summary(summary: dict) -> None:
    """One eval run's table (and the judge's calibration with --gold-field), on stderr (stdout may be carrying the rows)."""
    from rich.console import Console

    report = report_from_summary(summary)
    console = Console(stderr=True)
    console.print(table(report))
    if (calibration := calibration_table(report)) is not None:
        console.print(calibration)
