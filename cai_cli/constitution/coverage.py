"""`cai constitution coverage ROWS`: how often each section (or principle) and each tier was used by critique
rounds, and which routed sections never were.

A row with critique rounds counts its rounds; a row without, written by `cai synthesize` for a passage (its
`passage` field, meta.synthesize), counts once for that passage: what the row exercised, never both. A passage is
used where either count is above zero; `cai synthesize --until-covered` tops up each kind of request for a passage
whose rounds and requests of that kind number fewer than N.
Hard constraints are listed where the rows hold synthesized requests (the gate checks every answer against every
constraint, so rounds alone say nothing about them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import CaiError
from .model import Constitution


@dataclass
class Coverage:
    rounds: int = 0
    rows: int = 0
    by_principle: Counter = field(default_factory=Counter)
    by_tier: Counter = field(default_factory=Counter)  # "(none)" for rounds whose principle has no tier
    relevance: dict[str, list[float]] = field(default_factory=dict)
    hashes: Counter = field(default_factory=Counter)  # constitution hashes the rounds were made under
    passage_hashes: dict[str, set] = field(default_factory=dict)  # passage -> the content hashes rounds recorded for it
    never: list[str] = field(default_factory=list)  # routed sections/principles no round used (needs the constitution)
    tiers_never: list[str] = field(default_factory=list)
    requests: Counter = field(default_factory=Counter)  # passage (or "hard-constraint:<id>") -> synthesized rows for it
    requests_by_kind: dict[str, Counter] = field(default_factory=dict)  # passage -> kind -> synthesized rows
    constraints_never: list[str] = field(default_factory=list)  # hard constraints no round or synthesized row used

    def uses(self, pid: str) -> int:
        """The rounds that used PID plus the synthesized rows written for it."""
        return self.by_principle.get(pid, 0) + self.requests.get(pid, 0)

    def uses_of_kind(self, pid: str, kind: str) -> int:
        """The rounds that used PID plus the synthesized rows of KIND written for it."""
        return self.by_principle.get(pid, 0) + self.requests_by_kind.get(pid, Counter()).get(kind, 0)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "rounds": self.rounds, "principles": dict(self.by_principle.most_common()),
            "tiers": dict(self.by_tier.most_common()), "never_used": self.never, "tiers_never_used": self.tiers_never,
            "constitution_hashes": dict(self.hashes),
            "passage_hashes": {pid: sorted(h) for pid, h in self.passage_hashes.items()},
            **({"requests": dict(self.requests.most_common()), "requests_by_kind": {p: dict(c) for p, c in self.requests_by_kind.items()},
                "constraints_never_used": self.constraints_never} if self.requests else {}),
        }


def coverage(rows: Iterable[dict], constitution: Constitution | None = None) -> Coverage:
    """Counts over every critique round of ROWS; with CONSTITUTION, also what it could route and no round used."""
    out = Coverage()
    for row in rows:
        rounds = row.get("rounds")
        if not (isinstance(rounds, list) and rounds):
            if _synthesized(row, out):
                out.rows += 1
                continue
        if not isinstance(rounds, list):
            continue
        out.rows += 1
        for r in rounds:
            if not isinstance(r, dict) or "principle" not in r:
                continue
            out.rounds += 1
            pid = str(r["principle"])
            out.by_principle[pid] += 1
            out.by_tier[str(r.get("tier") or "(none)")] += 1
            if isinstance(r.get("relevance"), (int, float)):
                out.relevance.setdefault(pid, []).append(float(r["relevance"]))
            if r.get("constitution_hash"):
                out.hashes[str(r["constitution_hash"])] += 1
            if r.get("passage") and r.get("passage_hash"):
                out.passage_hashes.setdefault(str(r["passage"]), set()).add(str(r["passage_hash"]))
    if constitution is not None:
        out.never = [p.id for p in constitution.critiques if not out.uses(p.id)]
        out.tiers_never = [t for t in constitution.priorities if t not in out.by_tier]
        if out.requests:
            out.constraints_never = [c for c in _constraint_ids(constitution) if not out.uses(c)]
    return out


def _synthesized(row: dict, out: Coverage) -> bool:
    """Count ROW as a request `cai synthesize` wrote for a passage, where it is one."""
    from ..rows import stage_meta

    info = stage_meta(row, "synthesize")
    pid = row.get("passage")
    if not info or not isinstance(pid, str):
        return False
    out.requests[pid] += 1
    out.requests_by_kind.setdefault(pid, Counter())[str(row.get("kind"))] += 1
    if info.get("tier"):
        out.by_tier[str(info["tier"])] += 1
    if info.get("constitution_hash"):
        out.hashes[str(info["constitution_hash"])] += 1
    if isinstance(row.get("passage_hash"), str):
        out.passage_hashes.setdefault(pid, set()).add(row["passage_hash"])
    return True


def _constraint_ids(constitution: Constitution) -> list[str]:
    from .requests import CONSTRAINT_PREFIX

    return [f"{CONSTRAINT_PREFIX}{h.id}" for h in constitution.hard_constraints]


def read_coverage(path: str | None, constitution: str | None = None) -> tuple[Coverage, Constitution | None]:
    """`cai constitution coverage ROWS [-c FILE]`: ROWS read strictly (a line that is not a row, or no row at all, is
    one line naming it), counted against CONSTITUTION, or else the one the rounds record, which must load from here
    (a relative path recorded in another folder does not): what was never used is never guessed."""
    from ..jsonl import display_name, read_rows
    from ..rows import stage_meta
    from .loaders import load_constitution

    rows = read_rows(path, "`cai constitution coverage` reads the rows `cai critique` and `cai revise` write")
    charter = load_constitution(constitution) if constitution is not None else None
    if charter is None:
        name = display_name(path)
        sources = sorted({str(s) for r in rows for stage in ("critique", "synthesize") if (s := stage_meta(r, stage).get("constitution_source")) is not None})
        if len(sources) > 1:
            raise CaiError(f"{name}: its rounds were made with {len(sources)} constitutions ({', '.join(sources)}); name the one to count against with -c FILE")
        if sources:
            try:
                charter = load_constitution(sources[0].removeprefix("builtin:"))
            except CaiError as exc:
                raise CaiError(f"{name}: its rounds were made with {sources[0]}, which does not load from here ({exc}); name it with -c FILE") from None
    return coverage(rows, charter), charter


def coverage_table(cov: Coverage, constitution: Constitution | None):
    """A rich Table: one line per section/principle (used or not), with its tier, count, share and mean relevance."""
    from rich.markup import escape
    from rich.table import Table

    synthesized = f" and {sum(cov.requests.values())} synthesized requests" if cov.requests else ""
    title = f"coverage: {cov.rounds} critique rounds{synthesized} in {cov.rows} rows"
    tiers = ", ".join(f"{t} {n}" for t, n in cov.by_tier.most_common()) or "none"
    caption = f"by tier: {tiers}"
    if cov.tiers_never:
        caption += f"\ntiers never used: {', '.join(cov.tiers_never)}"
    if constitution is not None and cov.hashes and set(cov.hashes) != {constitution.hash}:
        caption += f"\n[yellow]rounds made under constitution hashes {', '.join(cov.hashes)}; {constitution.source} is {constitution.hash}[/yellow]"
    table = Table(title=title, caption=caption)
    table.add_column("passage / principle", overflow="fold")
    table.add_column("tier")
    for col in ("rounds", *(("requests",) if cov.requests else ()), "share", "mean relevance"):
        table.add_column(col, justify="right", no_wrap=True)
    ids = [p.id for p in constitution.critiques] if constitution is not None else []
    if cov.requests and constitution is not None:
        ids += _constraint_ids(constitution)
    ids += [pid for pid, _ in (cov.by_principle + cov.requests).most_common() if pid not in ids]
    tier_of = {p.id: p.tier for p in constitution.critiques} if constitution is not None else {}
    for pid in ids:
        n = cov.by_principle.get(pid, 0)
        used = cov.uses(pid)
        rel = cov.relevance.get(pid)
        share = f"{n / cov.rounds:.1%}" if cov.rounds else "-"
        seen = cov.passage_hashes.get(pid)
        stale = ""
        if seen and constitution is not None and constitution.is_document and pid in {p.id for p in constitution.passages}:
            if seen != {constitution.passage_by_id(pid).hash}:
                stale = " [yellow](rounds quote another version)[/yellow]"
        requests = [str(cov.requests.get(pid, 0))] if cov.requests else []
        table.add_row((escape(pid) + stale) if used else f"[red]{escape(pid)} (never)[/red]", tier_of.get(pid) or "-", str(n), *requests, share,
                      f"{sum(rel) / len(rel):.2f}" if rel else "-")
    return table
