"""Readable rendering of rows for `cai show`: the conversation, first answer, each critique and revision."""

from __future__ import annotations

from typing import Iterable

from .rows import conversation, cut_replies, is_cut, meta_finish_reason, round_finish_reason

WIDTH = 400  # characters of each text shown in the terminal (`cai show --width`)
CUT_MARK = "[cut at --max-tokens]"  # after a text whose generation stopped at the token limit, where it stops


def _candidate_cut(row: dict, index: int) -> bool:
    reasons = meta_finish_reason(row, "generate")
    return is_cut(reasons[index] if isinstance(reasons, list) and index < len(reasons) else None)


def render_rows(rows: Iterable[dict], console, width: int = WIDTH) -> None:
    from rich.panel import Panel
    from rich.text import Text

    def clip(s: str) -> str:
        s = s.strip()
        return s if len(s) <= width else s[:width] + " …"

    for row in rows:
        body = Text()
        cut = cut_replies(row)

        def text(s: str, was_cut: bool, body=body) -> None:
            body.append(clip(s))
            if was_cut:
                body.append(f" {CUT_MARK}", style="bold red")
            body.append("\n")

        for msg in conversation(row) if ("prompt" in row or "messages" in row) else []:
            body.append(f"{msg['role']}: ", style="bold cyan")
            text(msg["content"], False)
        if "initial_response" in row:
            body.append("first answer: ", style="bold yellow")
            text(row["initial_response"], cut.get(row["initial_response"], False))
        for i, rnd in enumerate(row.get("rounds", []), start=1):
            tier = f" · tier {rnd['tier']}" if rnd.get("tier") else ""
            body.append(f"\nround {i} · principle '{rnd.get('principle')}'{tier}\n", style="bold magenta")
            body.append("  critique: ", style="bold red")
            text(rnd.get("critique", ""), is_cut(round_finish_reason(row, i - 1, "critique")))
            if "revision" in rnd:
                label = "  revision: " if rnd.get("changed", True) else "  revision (critique found nothing to change): "
                body.append(label, style="bold green")
                text(rnd["revision"], is_cut(round_finish_reason(row, i - 1, "revision")))
        for j, cand in enumerate(row.get("candidates", [])):
            body.append(f"candidate {j}: ", style="bold yellow")
            text(cand, _candidate_cut(row, j))
        pref = row.get("preference")
        if isinstance(pref, dict) and "p_chosen" in pref:
            body.append(f"\npreference: p_chosen={pref['p_chosen']:.2f}", style="bold blue")
            if "orders_agreed" in pref:
                body.append(f", orders agreed: {pref['orders_agreed']}", style="blue")
            body.append("\n")
        if "response" in row and row.get("rounds"):
            body.append("\nfinal: ", style="bold green")
            text(row["response"], cut.get(row["response"], False))
        elif "response" in row and "initial_response" not in row:
            body.append("response: ", style="bold yellow")
            text(row["response"], cut.get(row["response"], False))
        body.rstrip()
        title = f"{row.get('id', '')}" + (f" · {row['category']}" if isinstance(row.get("category"), str) else "")
        console.print(Panel(body, title=title, title_align="left"))


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
.row{border:1px solid #ddd;border-radius:6px;margin:1.2em 0;padding:.6em .9em}
.row h2{font-size:1.05em;margin:.2em 0 .5em} .tag{font-size:.8em;color:#555;background:#eee;border-radius:3px;padding:1px 5px;margin-left:.4em}
.label{font-weight:600;font-size:.85em;text-transform:uppercase;letter-spacing:.03em;margin:.7em 0 .2em}
.text{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;border-radius:4px;padding:.5em}
.prompt .text{background:#eef3fb} .critique .text{background:#fdf3f3} .revision .text{background:#f3faf3}
.round{border-left:3px solid #9c6ade;padding-left:.8em;margin:1em 0 .4em}
.principle{color:#6a3fb5;font-weight:600} .request{color:#666;font-size:.88em;font-style:italic}
ins{background:#c8f0c8;text-decoration:none} del{background:#f6c9c9;color:#7a2222}
.unchanged{color:#777;font-size:.88em} .legend{color:#555;font-size:.9em}
.cut{color:#b00020;font-weight:600;font-size:.85em;white-space:nowrap}
"""

_CUT_HTML = f" <span class='cut' title='the generation stopped at the token limit, not on its own'>{CUT_MARK}</span>"


def diff_html(before: str, after: str) -> str:
    """AFTER with the words that changed since BEFORE marked: <del> removed, then <ins> added.

    difflib matches words; a run of at most two unchanged words between two changes ("the", "and")
    within a sentence is folded into the change, so a rewritten sentence reads as one replacement,
    not a word salad.
    """
    import difflib
    import html
    import re

    a, b = re.findall(r"\s*\S+\s*", before), re.findall(r"\s*\S+\s*", after)
    ops = difflib.SequenceMatcher(None, [w.strip() for w in a], [w.strip() for w in b], autojunk=False).get_opcodes()
    merged: list[list] = []
    for k, (op, i1, i2, j1, j2) in enumerate(ops):
        gap = "".join(a[i1:i2])
        short_gap = op == "equal" and i2 - i1 <= 2 and 0 < k < len(ops) - 1 and not re.search(r"[.!?]\s*$", gap)
        if merged and (op != "equal" or short_gap) and merged[-1][0] != "equal":
            merged[-1][2], merged[-1][4] = i2, j2  # extend the open change
        else:
            merged.append(["change" if (op != "equal" or short_gap) else "equal", i1, i2, j1, j2])
    out = []
    for op, i1, i2, j1, j2 in merged:
        if op == "equal":
            out.append(html.escape("".join(b[j1:j2])))
            continue
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if removed.strip():
            out.append(f"<del>{html.escape(removed)}</del>")
        if added.strip():
            out.append(f"<ins>{html.escape(added)}</ins>")
    return "".join(out)


def render_html(rows: Iterable[dict], title: str = "cai show") -> str:
    """An SL-CAI file as one page: per row the prompt, the first answer, and each round's principle,
    critique and revision, the revision's changes against the text before it highlighted."""
    import html

    esc = html.escape
    parts = [
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{esc(title)}</title><style>{_CSS}</style>",
        f"<h1>{esc(title)}</h1><p class='legend'>In each revision, <ins>added words</ins> and <del>removed words</del> are marked against the answer before it; "
        f"{CUT_MARK} marks where a text stopped at the token limit instead of ending on its own.</p>",
    ]
    for row in rows:
        cut = cut_replies(row)
        mark = lambda was_cut: _CUT_HTML if was_cut else ""  # noqa: E731
        tags = f"<span class='tag'>{esc(row['category'])}</span>" if isinstance(row.get("category"), str) else ""
        parts.append(f"<div class='row'><h2>{esc(str(row.get('id', '')))}{tags}</h2>")
        for msg in conversation(row) if ("prompt" in row or "messages" in row) else []:
            parts.append(f"<div class='prompt'><div class='label'>{esc(msg['role'])}</div><div class='text'>{esc(msg['content'])}</div></div>")
        rounds = [r for r in row.get("rounds", []) if isinstance(r, dict)]
        current = row.get("initial_response")
        if current is None and not rounds:
            current = row.get("response")
        if current is not None:
            parts.append(f"<div class='first'><div class='label'>{'first answer' if rounds else 'response'}</div>"
                         f"<div class='text'>{esc(current)}{mark(cut.get(current, False))}</div></div>")
        for i, rnd in enumerate(rounds, start=1):
            tier = f" · tier {esc(str(rnd['tier']))}" if rnd.get("tier") else ""
            parts.append(f"<div class='round'><div class='label'>round {i} · principle <span class='principle'>{esc(str(rnd.get('principle', '')))}</span>{tier}</div>")
            if rnd.get("critique_request"):
                parts.append(f"<div class='request'>{esc(rnd['critique_request'])}</div>")
            critique_cut = mark(is_cut(round_finish_reason(row, i - 1, "critique")))
            parts.append(f"<div class='critique'><div class='label'>critique</div><div class='text'>{esc(rnd.get('critique', ''))}{critique_cut}</div></div>")
            if "revision" in rnd:
                if rnd.get("revision_request"):
                    parts.append(f"<div class='request'>{esc(rnd['revision_request'])}</div>")
                if rnd.get("changed", True) is False:
                    parts.append("<div class='revision'><div class='label'>revision</div><div class='unchanged'>The critique found nothing to change; the answer is kept.</div></div>")
                else:
                    body = diff_html(current, rnd["revision"]) if current is not None else esc(rnd["revision"])
                    body += mark(is_cut(round_finish_reason(row, i - 1, "revision")))
                    parts.append(f"<div class='revision'><div class='label'>revision</div><div class='text'>{body}</div></div>")
                    current = rnd["revision"]
            else:
                parts.append("<div class='unchanged'>Not revised yet (run `cai revise`).</div>")
            parts.append("</div>")
        parts.append("</div>")
    parts.append("</html>")
    return "".join(parts)
