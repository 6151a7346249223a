"""The report as one HTML page: the figure, the table, and every prompt's answers (baseline and models side by
side, with the detector's verdicts and the judge's probability), prompts whose verdicts differ first."""

from __future__ import annotations

import html
import io

from .merge import players as _players
from .table import calibration_table, changes_table, table

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


def page(report: dict, png_b64: str) -> str:
    """The whole page, the figure given as a base64 PNG."""
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO())
    if report.get("models"):
        console.print(table(report))
    if (changes := changes_table(report)) is not None:
        console.print(changes)
    if (calibration := calibration_table(report)) is not None:
        console.print(calibration)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", []))
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>cai eval report</title><style>{_CSS}</style>"
        f"<h1>cai eval report</h1><p class='files'>{html.escape(', '.join(report.get('files', [])))}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + f"<img alt='harmlessness against helpfulness, change against the baseline, and declines per category' src='data:image/png;base64,{png_b64}'>"
        f"{console.export_html(inline_styles=True, code_format=_PRE)}"
        f"{_answers_html(report)}</html>"
    )
