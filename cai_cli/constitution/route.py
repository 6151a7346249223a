"""`cai constitution route`: why each row gets the passages it gets, as relevance routing (routing.py) ranks them."""

from __future__ import annotations

from collections.abc import Sequence

from .model import Constitution
from .routing import COMPARABLE, DEFAULT_RANKER, TOP_K, Ranker, Router, Routing, conversation_text


def explain(router: Router, conversation: Sequence[dict], response: str | None = None, top: int = TOP_K) -> dict:
    """Why a conversation (and the response a critique would see) gets the passages it gets, for `cai constitution
    route`: the words it is ranked by (and those the lexicon added), the first TOP units with their scores, the words
    that matched each and whether each is comparably relevant (drawable). Units whose `when` rules out the
    conversation (operator, no-operator) are left out; `refused`/`answered` ones are kept and marked."""
    from .model import applies

    operator = any(m.get("role") == "system" for m in conversation)
    eligible = [p for p in router.constitution.critiques if p.when in ("always", "refused", "answered") or applies(p.when, "answer", operator)]
    pool = [*eligible, *router.constraints]
    text = conversation_text(list(conversation), response)
    ranked = router.rank(text, pool)
    best = ranked[0].score if ranked else 0.0
    added = router.expanded(text)[len(text):].split("\n")
    when = {p.id: p.when for p in pool}
    shown = []
    for r in ranked[:top]:
        item = r.as_dict()
        item["comparable"] = best > 0 and r.score >= COMPARABLE * best and r in ranked[:TOP_K]
        if when.get(r.id, "always") != "always":
            item["when"] = when[r.id]
        shown.append(item)
    return {"ranker": router.ranker.value, "expanded": [w for w in added if w], "top": shown}


def route_rows(path: str | None, constitution: Constitution, top: int = TOP_K, ranker: Ranker | str = DEFAULT_RANKER) -> list[tuple[str, dict]]:
    """`cai constitution route ROWS`: (row id, explain(...)) per row of PATH (JSONL; '-' or None: stdin), ranked by
    RANKER. A row needs
    `prompt` or `messages`; its `response`, where it has one, is ranked with it as critique ranks it. A bad line or row
    stops with one line naming the file, the line and the field."""
    from ..errors import CaiError, InputError
    from ..jsonl import read_lines
    from ..rows import FieldProblem, check_conversation, conversation

    if top < 1:
        raise CaiError(f"--top: expected a number of at least 1, got {top}")
    router = Router(constitution, Routing.relevance, ranker)
    out = []
    for item in read_lines(path):
        if item.error is not None:
            raise item.error
        row = item.row or {}
        try:
            check_conversation(row)
        except FieldProblem as problem:
            raise InputError(problem.message, file=path if path not in (None, "-") else "<stdin>", line=item.line, field=problem.field) from None
        response = row.get("response") if isinstance(row.get("response"), str) else None
        out.append((str(row.get("id", f"line {item.line}")), explain(router, conversation(row), response, top)))
    return out
