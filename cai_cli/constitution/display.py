"""`cai constitution show`: every principle in a table."""

from __future__ import annotations

from .model import Constitution

WHEN_HELP = {
    "refused": "only for responses the refusal detector labels refusal, deflection or partial",
    "answered": "only for responses the refusal detector labels answer",
}

def constitution_table(c: Constitution):
    """A rich Table listing every principle, for `cai constitution show`."""
    from rich.table import Table

    title = f"{c.name} [dim]({c.format}, hash {c.hash}, {c.source})[/dim]"
    caption = (
        f"{len(c.critiques)} critique pairs, {len(c.comparisons)} comparison questions, "
        f"{len(c.few_shot)} few-shot examples"
    )
    if c.description:
        caption = f"{c.description}\n{caption}"
    table = Table(title=title, caption=caption, show_lines=True, expand=False)
    table.add_column("kind", style="cyan", no_wrap=True)
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("text", overflow="fold")
    for p in c.critiques:
        when = f"\n[b]when:[/b] {p.when} [dim]({WHEN_HELP[p.when]})[/dim]" if p.when != "always" else ""
        table.add_row("critique", p.id, f"[b]critique:[/b] {_esc(p.critique)}\n[b]revision:[/b] {_esc(p.revision)}{when}")
    for q in c.comparisons:
        table.add_row("comparison", q.id, _esc(q.question))
    for i, ex in enumerate(c.few_shot):
        prompt = ex.prompt if len(ex.prompt) <= 120 else ex.prompt[:117] + "..."
        table.add_row("few-shot", str(i), f"[b]prompt:[/b] {_esc(prompt)}")
    return table


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
