"""Readable rendering of rows for `cai show`: the conversation, first answer, each critique and revision."""

from __future__ import annotations

from typing import Iterable

from .rows import conversation


def render_rows(rows: Iterable[dict], console, width: int = 400) -> None:
    from rich.panel import Panel
    from rich.text import Text

    def clip(s: str) -> str:
        s = s.strip()
        return s if len(s) <= width else s[:width] + " …"

    for row in rows:
        body = Text()
        for msg in conversation(row) if ("prompt" in row or "messages" in row) else []:
            body.append(f"{msg['role']}: ", style="bold cyan")
            body.append(clip(msg["content"]) + "\n")
        if "initial_response" in row:
            body.append("first answer: ", style="bold yellow")
            body.append(clip(row["initial_response"]) + "\n")
        for i, rnd in enumerate(row.get("rounds", []), start=1):
            body.append(f"\nround {i} · principle '{rnd.get('principle')}'\n", style="bold magenta")
            body.append("  critique: ", style="bold red")
            body.append(clip(rnd.get("critique", "")) + "\n")
            if "revision" in rnd:
                label = "  revision: " if rnd.get("changed", True) else "  revision (critique found nothing to change): "
                body.append(label, style="bold green")
                body.append(clip(rnd["revision"]) + "\n")
        for j, cand in enumerate(row.get("candidates", [])):
            body.append(f"candidate {j}: ", style="bold yellow")
            body.append(clip(cand) + "\n")
        pref = row.get("preference")
        if isinstance(pref, dict) and "p_chosen" in pref:
            body.append(f"\npreference: p_chosen={pref['p_chosen']:.2f}", style="bold blue")
            if "orders_agreed" in pref:
                body.append(f", orders agreed: {pref['orders_agreed']}", style="blue")
            body.append("\n")
        if "response" in row and row.get("rounds"):
            body.append("\nfinal: ", style="bold green")
            body.append(clip(row["response"]))
        elif "response" in row and "initial_response" not in row:
            body.append("response: ", style="bold yellow")
            body.append(clip(row["response"]))
        title = f"{row.get('id', '')}" + (f" · {row['category']}" if isinstance(row.get("category"), str) else "")
        console.print(Panel(body, title=title, title_align="left"))
