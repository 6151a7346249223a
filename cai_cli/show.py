"""`cai show`: rows for people, in the terminal and as HTML. It reads every JSONL file a cai stage writes (stage
rows, exports, eval rows, errors and dropped files, a side file's finished rows) and says in one line what any other
file is (a summary, training metrics, an empty file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import CaiError
from .rows import cut_replies, is_cut, meta_finish_reason, round_finish_reason

WIDTH = 400  # characters of each text shown in the terminal (`cai show --width`)
CUT_MARK = "[cut at --max-tokens]"  # after a text whose generation stopped at the token limit, where it stops


def load_rows(path: str, skip_bad: bool = False) -> tuple[list[dict], list[str]]:
    """(the rows to show, notes for stderr) of PATH; a CaiError (one line) where there is nothing to show. A line that
    is not a row stops the read with one line naming it; SKIP_BAD (`--on-error skip`) shows the rows that are and
    names the others on stderr instead."""
    from .filekinds import SIDE_FILE_KEY, describe_rows
    from .jsonl import NotJsonl, display_name, read_lines

    name = display_name(path)
    try:
        lines = read_lines(path)
    except NotJsonl as exc:
        todo = f"read it with jq . {name}" if exc.document is not None else exc.todo
        raise CaiError(f"{exc.name}: {exc.what}, not rows: `cai show` displays the JSONL rows cai stages write" + (f"; {todo}" if todo else "")) from None
    rows = [item.row for item in lines if item.row is not None]
    bad = [item for item in lines if item.error is not None]
    if not lines:
        raise CaiError(f"{name}: empty (no rows to show)")
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more lines that are not rows)" if len(bad) > 1 else ""
        raise CaiError(f"{bad[0].error}{more}; add --on-error skip to show the rows that are")
    notes = [f"cai show: {len(bad)} lines are not rows and were not shown (first: {bad[0].error})"] if bad and rows else []
    if not rows:
        raise CaiError(f"{bad[0].error}; no line of {name} is a JSON row, so there is nothing to show")
    kind = describe_rows(rows)
    if SIDE_FILE_KEY in rows[0]:
        records = [r for r in rows[1:] if isinstance(r.get("rows"), list)]
        rows = [r for rec in records for r in [*rec["rows"], *(rec.get("dropped") or [])] if isinstance(r, dict)]
        notes.append(f"cai show: {name} is {kind}; showing the {len(rows)} rows its {len(records)} finished input rows gave")
    elif kind.startswith("training metrics"):
        raise CaiError(f"{name}: {kind}, not rows: `cai show` displays the JSONL rows cai stages write")
    return rows, notes


def _text(value: Any) -> str:
    """Any field as text: a string as it is, anything else (a number, a list the user put there) as compact JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _messages(value: Any) -> list[tuple[str, str]] | None:
    """A [{"role", "content"}] list as (role, text) pairs; None when VALUE is not one."""
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None
    return [(_text(m.get("role")) or "?", _text(m.get("content"))) for m in value]


def _reply(value: Any) -> str:
    """A reply as text: a string, or the last message of a conversational column (trl's chosen, completion)."""
    messages = _messages(value)
    return messages[-1][1] if messages else _text(value)


@dataclass
class RowView:
    """What one row shows, whatever wrote it: every field coerced to text, so no row can break the page."""

    title: str
    conversation: list[tuple[str, str]]
    first: str | None  # the first answer (initial_response), or the only response of a row without rounds
    rounds: list[dict]  # principle, tier, critique_request, critique, revision_request, revision?, changed, gated
    items: list[tuple[str, str]] = field(default_factory=list)  # candidates, completion, chosen/rejected, verdicts, errors
    final: str | None = None  # the current response after rounds
    # Which texts were cut at --max-tokens, by the finish reason the stage that wrote each one recorded.
    first_cut: bool = False
    final_cut: bool = False
    cut_items: set[str] = field(default_factory=set)  # labels in `items`


def row_view(row: dict) -> RowView:
    record = row if {"file", "line", "error"} <= row.keys() else None  # an errors-file record: the row is inside
    if record is not None:
        row = record["row"] if isinstance(record.get("row"), dict) else {}
    category = row.get("category")
    name = _text(row.get("id")) or (f"line {record.get('line')}" if record is not None else "")
    title = name + (f" · {category}" if isinstance(category, str) else "")
    conversation = _messages(row.get("messages")) or _messages(row.get("prompt"))
    if conversation is None:
        conversation = [("user", _text(row["prompt"]))] if row.get("prompt") is not None else []
    rounds = []
    found = row.get("rounds")
    for index, rnd in enumerate(found if isinstance(found, list) else []):
        if isinstance(rnd, dict):
            shown: dict[str, Any] = {k: _text(rnd.get(k)) for k in ("principle", "tier", "critique_request", "critique", "revision_request")}
            if "revision" in rnd:
                shown["revision"] = _text(rnd["revision"])
            shown["changed"] = rnd.get("changed", True) is not False
            shown["critique_cut"] = is_cut(round_finish_reason(row, index, "critique"))
            shown["revision_cut"] = is_cut(round_finish_reason(row, index, "revision"))
            shown["gated"] = bool(rnd.get("gated"))  # the gate sent this round to a hard constraint
            # the passage the round showed (a constraint's: the passage stating it) and its hash: what decided the round
            shown["passage"] = f" · passage {rnd['passage']} ({rnd.get('passage_hash')})" if rnd.get("passage") else ""
            rounds.append(shown)
    first = row.get("initial_response")
    if first is None and not rounds:
        first = row.get("response")
    view = RowView(title, conversation, None if first is None else _text(first), rounds)
    cut = cut_replies(row)
    view.first_cut = isinstance(first, str) and cut.get(first, False)
    if rounds and row.get("response") is not None:
        view.final = _text(row["response"])
        view.final_cut = isinstance(row["response"], str) and cut.get(row["response"], False)
    items = view.items
    if record is not None:
        where = f"line {record.get('line')}" + (f", field '{record['field']}'" if record.get("field") else "")
        items.append((f"error ({where})", _text(record.get("error"))))
        if record.get("raw") is not None:
            items.append(("the line as read", _text(record["raw"])))
    if isinstance(row.get("passage"), str) and isinstance(row.get("kind"), str):  # a request `cai synthesize` wrote
        items.append(("written for", f"{row['kind']} · {row['passage']} ({row.get('passage_hash')})"))
    if row.get("raw") is not None:
        items.append(("what the model wrote", _text(row["raw"])))
    if row.get("dropped") is not None:
        items.append(("left out", _text(row["dropped"])))
    candidates = row.get("candidates")
    reasons = meta_finish_reason(row, "generate")
    for j, cand in enumerate(candidates if isinstance(candidates, list) else []):
        items.append((f"candidate {j}", _text(cand)))
        if isinstance(reasons, list) and j < len(reasons) and is_cut(reasons[j]):
            view.cut_items.add(f"candidate {j}")
    for name in ("completion", "chosen", "rejected"):
        if row.get(name) is not None:
            items.append((name, _reply(row[name])))
    pref = row.get("preference")
    p_chosen = pref.get("p_chosen") if isinstance(pref, dict) else row.get("p_chosen")
    if isinstance(p_chosen, (int, float)):
        agreed = f", orders agreed: {pref['orders_agreed']}" if isinstance(pref, dict) and "orders_agreed" in pref else ""
        decided = ""
        if isinstance(pref, dict) and pref.get("decided_by"):  # the tier (or constraint) that decided, and the passage asked about
            decided = f", decided by {pref['decided_by']}" + (f" on passage {pref['decided_by_passage']}" if pref.get("decided_by_passage") else "")
        items.append(("preference", f"p_chosen={p_chosen:.2f}{agreed}{decided}"))
    for name in ("refusal", "rewards", "judge"):
        if isinstance(row.get(name), dict):
            found = row[name]
            items.append((name, _text(found.get("label") if name == "refusal" and "label" in found else found)))
    return view


def render_rows(rows: Iterable[dict], console, width: int = WIDTH) -> None:
    from rich.panel import Panel
    from rich.text import Text

    def clip(s: str) -> str:
        s = s.strip()
        return s if len(s) <= width else s[:width] + " …"

    for row in rows:
        view = row_view(row)
        body = Text()

        def text(s: str, was_cut: bool = False, body=body) -> None:
            body.append(clip(s))
            if was_cut:
                body.append(f" {CUT_MARK}", style="bold red")
            body.append("\n")

        for role, content in view.conversation:
            body.append(f"{role}: ", style="bold cyan")
            text(content)
        if view.first is not None:
            body.append("first answer: " if view.rounds or "initial_response" in row else "response: ", style="bold yellow")
            text(view.first, view.first_cut)
        for i, rnd in enumerate(view.rounds, start=1):
            tier = f" · tier {rnd['tier']}" if rnd["tier"] else ""
            tier += rnd.get("passage", "")
            tier += " · the gate: the response likely crossed this hard constraint" if rnd.get("gated") else ""
            body.append(f"\nround {i} · principle '{rnd['principle']}'{tier}\n", style="bold magenta")
            body.append("  critique: ", style="bold red")
            text(rnd["critique"], rnd["critique_cut"])
            if "revision" in rnd:
                label = "  revision: " if rnd["changed"] else "  revision (critique found nothing to change): "
                body.append(label, style="bold green")
                text(rnd["revision"], rnd["revision_cut"])
        for label, item in view.items:
            body.append(f"{label}: ", style="bold yellow")
            text(item, label in view.cut_items)
        if view.final is not None:
            body.append("\nfinal: ", style="bold green")
            text(view.final, view.final_cut)
        body.rstrip()
        console.print(Panel(body, title=view.title, title_align="left"))


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
.cut{color:#b00020;font-weight:600;font-size:.85em;white-space:nowrap}
ins{background:#c8f0c8;text-decoration:none} del{background:#f6c9c9;color:#7a2222}
.unchanged{color:#777;font-size:.88em} .legend{color:#555;font-size:.9em}
"""


_CUT_HTML = f" <span class='cut' title='the generation stopped at the token limit, not on its own'>{CUT_MARK}</span>"


def _cut_html(was_cut: bool) -> str:
    return _CUT_HTML if was_cut else ""


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
    """A file's rows as one page: per row the prompt, the first answer, and each round's principle, critique and
    revision, the revision's changes against the text before it highlighted; then candidates, exported columns,
    verdicts and errors."""
    import html

    esc = html.escape
    parts = [
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{esc(title)}</title><style>{_CSS}</style>",
        f"<h1>{esc(title)}</h1><p class='legend'>In each revision, <ins>added words</ins> and <del>removed words</del> are marked against the answer before it; "
        f"{CUT_MARK} marks where a text stopped at the token limit instead of ending on its own.</p>",
    ]
    for row in rows:
        view = row_view(row)
        name, _, category = view.title.partition(" · ")
        tags = f"<span class='tag'>{esc(category)}</span>" if category else ""
        parts.append(f"<div class='row'><h2>{esc(name)}{tags}</h2>")
        for role, content in view.conversation:
            parts.append(f"<div class='prompt'><div class='label'>{esc(role)}</div><div class='text'>{esc(content)}</div></div>")
        current = view.first
        if current is not None:
            parts.append(f"<div class='first'><div class='label'>{'first answer' if view.rounds else 'response'}</div><div class='text'>{esc(current)}{_cut_html(view.first_cut)}</div></div>")
        for i, rnd in enumerate(view.rounds, start=1):
            tier = f" · tier {esc(rnd['tier'])}" if rnd["tier"] else ""
            tier += esc(rnd.get("passage", ""))
            tier += " · the gate: the response likely crossed this hard constraint" if rnd.get("gated") else ""
            parts.append(f"<div class='round'><div class='label'>round {i} · principle <span class='principle'>{esc(rnd['principle'])}</span>{tier}</div>")
            if rnd["critique_request"]:
                parts.append(f"<div class='request'>{esc(rnd['critique_request'])}</div>")
            parts.append(f"<div class='critique'><div class='label'>critique</div><div class='text'>{esc(rnd['critique'])}{_cut_html(rnd['critique_cut'])}</div></div>")
            if "revision" in rnd:
                if rnd["revision_request"]:
                    parts.append(f"<div class='request'>{esc(rnd['revision_request'])}</div>")
                if not rnd["changed"]:
                    parts.append("<div class='revision'><div class='label'>revision</div><div class='unchanged'>The critique found nothing to change; the answer is kept.</div></div>")
                else:
                    body = diff_html(current, rnd["revision"]) if current is not None else esc(rnd["revision"])
                    body += _cut_html(rnd["revision_cut"])
                    parts.append(f"<div class='revision'><div class='label'>revision</div><div class='text'>{body}</div></div>")
                    current = rnd["revision"]
            else:
                parts.append("<div class='unchanged'>Not revised yet (run `cai revise`).</div>")
            parts.append("</div>")
        for label, item in view.items:
            parts.append(f"<div class='first'><div class='label'>{esc(label)}</div><div class='text'>{esc(item)}{_cut_html(label in view.cut_items)}</div></div>")
        parts.append("</div>")
    parts.append("</html>")
    return "".join(parts)


def show_file(file: str, limit: int | None, width: int, html_out: str | None, skip_bad: bool) -> None:
    """`cai show`: FILE's rows readably in the terminal (each text clipped to WIDTH), or as an HTML page at HTML_OUT;
    with SKIP_BAD, a line that is not a row is named on stderr instead of stopping."""
    import sys

    from rich.console import Console

    from .output import check_targets, write_file

    [target] = check_targets([("--html", html_out)], [("the input", None if file == "-" else file)])
    rows, notes = load_rows(file, skip_bad=skip_bad)
    shown = rows[:limit] if limit else rows
    if target is not None:
        write_file(target, render_html(shown, title=f"cai show {file}"))
        print(f"cai show: {len(shown)} rows -> {html_out}", file=sys.stderr)
    else:
        render_rows(shown, Console(), width)
    for note in notes:
        print(note, file=sys.stderr)
