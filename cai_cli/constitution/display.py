"""`cai constitution show`: every principle (or section), hard constraint and comparison in a table."""

from __future__ import annotations

from .model import Constitution
from .routing import Ranker

WHEN_HELP = {
    "refused": "only for responses the refusal detector labels refusal, deflection or partial",
    "answered": "only for responses the refusal detector labels answer",
    "operator": "only where the conversation has a system message (operator's instructions)",
    "no-operator": "only where the conversation has no system message",
}
PREVIEW_CHARS = 160


def _when(when: str) -> str:
    return f"\n[b]when:[/b] {when} [dim]({WHEN_HELP[when]})[/dim]" if when != "always" else ""


def _tier(tier: str | None) -> str:
    return f"\n[b]tier:[/b] {tier}" if tier else ""


def constitution_table(c: Constitution):
    """A rich Table listing every principle (a document: every section), for `cai constitution show`."""
    from rich.table import Table

    title = f"{c.name} [dim]({c.format}, hash {c.hash}, {c.source})[/dim]"
    units = (f"{len(c.sections)} sections, {len(c.passages)} passages of at most {c.passage_tokens} tokens ({len(c.critiques)} routed)"
             if c.is_document else f"{len(c.critiques)} critique pairs")
    caption = (
        f"{units}, {len(c.hard_constraints)} hard constraints, {len(c.comparisons)} comparison questions, "
        f"{len(c.few_shot)} few-shot examples" + (f", {len(c.behaviours)} instructable behaviours" if c.behaviours else "")
    )
    if c.priorities:
        caption += f"\npriorities (highest first): {' > '.join(c.priorities)}"
    if c.description:
        caption = f"{c.description}\n{caption}"
    table = Table(title=title, caption=caption, show_lines=True, expand=False)
    table.add_column("kind", style="cyan", no_wrap=True)
    table.add_column("id", style="bold", overflow="fold")
    table.add_column("text", overflow="fold")
    for s in c.sections:
        text = " ".join(s.text.split())
        preview = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."
        state = "" if s.routed else "\n[dim](not routed)[/dim]"
        table.add_row("section", s.id, f"[b]{_esc(s.heading)}[/b] [dim](line {s.line}, {len(s.text.split())} words, hash {s.hash})[/dim]\n"
                      f"{_esc(preview)}{_tier(s.tier)}{_when(s.when)}{state}")
    for p in ([] if c.is_document else c.critiques):
        table.add_row("critique", p.id, f"[b]critique:[/b] {_esc(p.critique)}\n[b]revision:[/b] {_esc(p.revision)}{_tier(p.tier)}{_when(p.when)}")
    for h in c.hard_constraints:
        table.add_row("hard constraint", h.id, _esc(h.text))
    for q in c.comparisons:
        table.add_row("comparison", q.id, _esc(q.question) + _tier(q.tier))
    for b in c.behaviours:
        where = f"\n[b]described in:[/b] {_esc(b.section)}" if b.section else ""
        table.add_row("behaviour", b.id, f"{_esc(b.description)}\n[b]default:[/b] {'on' if b.default else 'off'}; "
                      f"[b]changed by:[/b] {', '.join(b.changed_by)}{where}")
    for i, ex in enumerate(c.few_shot):
        prompt = ex.prompt if len(ex.prompt) <= 120 else ex.prompt[:117] + "..."
        table.add_row("few-shot", str(i), f"[b]prompt:[/b] {_esc(prompt)}")
    return table


def constitution_json(c: Constitution) -> dict:
    """`cai constitution show --json`: everything the table shows, as data (a document's passages with their tokens)."""
    from .requests import stating_passage

    out: dict = {"name": c.name, "description": c.description, "source": c.source, "format": c.format, "hash": c.hash,
                 "priorities": list(c.priorities)}
    if c.is_document:
        out["passage_tokens"] = c.passage_tokens
        out["sections"] = [{"id": s.id, "title": s.title, "path": list(s.path), "line": s.line, "tier": s.tier, "when": s.when,
                            "routed": s.routed, "words": len(s.text.split()), "hash": s.hash,
                            "passages": [{"id": p.id, "tokens": p.tokens, "hash": p.hash} for p in c.passages if p.section == s.id]}
                           for s in c.sections]
    else:
        out["critiques"] = [{"id": p.id, "critique": p.critique, "revision": p.revision, "when": p.when, "tier": p.tier, "hash": p.hash}
                            for p in c.critiques]
    out["hard_constraints"] = [{"id": h.id, "text": h.text, "section": h.section,
                                "passage": getattr(stating_passage(c, h), "id", None), "hash": h.hash} for h in c.hard_constraints]
    out["comparisons"] = [{"id": q.id, "question": q.question, "tier": q.tier, "hash": q.hash} for q in c.comparisons]
    out["behaviours"] = [b._canonical() for b in c.behaviours]
    out["few_shot"] = len(c.few_shot)
    return out


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def route_table(explained: list[tuple[str, dict]], constitution: Constitution):
    """A rich Table for `cai constitution route`: per row, its first passages with their scores and matched words (under
    dense and hybrid, also each one's BM25 score, cosine and closest sentence)."""
    from rich.table import Table

    ranker = explained[0][1].get("ranker", "bm25") if explained else "bm25"
    both = Ranker(ranker) is not Ranker.bm25
    title = (f"routing: {constitution.name} [dim]({len(constitution.critiques)} routed units, passages of at most {constitution.passage_tokens} tokens, "
             f"ranked by {ranker})[/dim]")
    table = Table(title=title, caption="* comparably relevant: the draw is among these (a named hard constraint takes the round)", show_lines=True)
    table.add_column("row", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("passage / constraint", overflow="fold")
    table.add_column("tier")
    table.add_column("score", justify="right")
    if both:
        table.add_column("bm25", justify="right")
        table.add_column("cosine", justify="right")
    table.add_column("matched words" + (" / closest sentence" if both else ""), overflow="fold")
    for rid, info in explained:
        for n, r in enumerate(info["top"], 1):
            mark = "*" if r["comparable"] else ""
            when = f" [dim](when: {r['when']})[/dim]" if "when" in r else ""
            first = _esc(rid) + (f"\n[dim]+ {_esc('; '.join(info['expanded']))}[/dim]" if info["expanded"] and n == 1 else "")
            matched = _esc(", ".join(r["matched"])) or "[dim]none[/dim]"
            scores = [f"{r['bm25']:.2f}", f"{r['cosine']:.2f}"] if both else []
            if both:
                matched += f"\n[dim]{_esc(_clip(r['closest'], 160))}[/dim]"
            table.add_row(first if n == 1 else "", str(n), f"{mark}{_esc(r['id'])}{when}", r["tier"] or "-", f"{r['score']:.2f}", *scores, matched)
    return table


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
