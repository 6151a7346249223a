"""Markdown constitutions: a prose document loads as it is, its headings become sections.

* Sections: one per heading (ATX `#` or setext), its text the Markdown up to the next heading of any
  level. Its id is the heading path as a slug ("being-safe/weapons-and-serious-harm"); a lone top-level
  heading that opens the document is its title, not part of the paths, and the text before the first
  section under it is the section `preamble`.
* The header (`DocumentHeader`): YAML front matter between `---` lines at the top, or a sidecar
  `<stem>.header.yaml` beside the document (`cai constitution import` drafts one). It names the tiers
  (`priorities`), maps sections to tiers (a section inherits from the nearest one above it), says where
  the hard constraints are, and may give a section `when` or `route: false`. A document without a header
  loads too: every section is routed by relevance alone, with no tiers and no hard constraints.
* Every section is split into passages within a token budget (passages.py); every routed passage becomes a
  critique principle (requests.py words the requests), so the stages see `critiques` as they do for a list
  constitution.

Markdown is parsed with markdown-it-py (CommonMark), so code blocks and setext headings are read as a
Markdown reader reads them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConstitutionError
from .model import ComparisonPrinciple, Constitution, FewShotExample, HardConstraint, Section
from .parsing import read_text, resolve_section

if TYPE_CHECKING:
    from . import schema as s

SUFFIXES = (".md", ".markdown")
SIDECAR_SUFFIX = ".header.yaml"
PREAMBLE = "preamble"
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)(?:\r?\n)?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)


@dataclass
class RawSection:
    """A heading and its text as parsed, before the header gives it a tier."""

    id: str
    title: str
    path: tuple[str, ...]
    level: int
    text: str
    line: int
    bullets: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """"Weapons & serious harm" -> "weapons-serious-harm" (ASCII, lower case, dashes)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "section"


def sidecar_path(doc: Path) -> Path:
    return doc.with_name(doc.stem + SIDECAR_SUFFIX)


_OPENED = re.compile(r"\A\ufeff?---[ \t]*\r?\n")


def split_front_matter(text: str, shown: str) -> tuple[str | None, str, int]:
    """(front matter YAML or None, the Markdown body, how many lines the front matter took). A first line `---` that no
    later `---` line closes is refused (SHOWN names the file): read as Markdown, the header would be taken for text."""
    m = _FRONT.match(text)
    if not m:
        if _OPENED.match(text):
            raise ConstitutionError(f"{shown}:1: the header opened by `---` is never closed: end it with a `---` line (or remove the first line)")
        return None, text.lstrip("\ufeff"), 0
    return m.group(1), text[m.end():], text[: m.end()].count("\n")


def parse_sections(body: str, line_offset: int = 0) -> tuple[str | None, list[RawSection]]:
    """(the document's title or None, its sections in order) from a Markdown body."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(body)
    lines = body.splitlines()
    heads = []  # (level, title, first line, line after the heading)
    for k, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None:
            heads.append((int(tok.tag[1:]), tokens[k + 1].content.strip(), tok.map[0], tok.map[1]))
    title = None
    if heads and sum(1 for h in heads if h[0] == 1) == 1 and heads[0][0] == 1:
        title = heads[0][1]
    sections: list[RawSection] = []
    seen: dict[str, int] = {}
    stack: list[tuple[int, str, str]] = []  # (level, slug, title) of the open headings above
    first_start = heads[0][2] if heads else len(lines)
    pre = "\n".join(lines[:first_start]).strip()
    for n, (level, text, start, after) in enumerate(heads):
        end = heads[n + 1][2] if n + 1 < len(heads) else len(lines)
        own = "\n".join(lines[after:end]).strip()
        if title is not None and n == 0:  # the title: its text (and any before it) is the preamble
            pre = "\n\n".join(x for x in (pre, own) if x)
            continue
        while stack and stack[-1][0] >= level:
            stack.pop()
        sid = "/".join([x[1] for x in stack] + [slug(text)])
        if sid in seen or sid == PREAMBLE:
            seen[sid] = seen.get(sid, 1) + 1
            sid = f"{sid}-{seen[sid]}"
        else:
            seen[sid] = 1
        stack.append((level, sid.rsplit("/", 1)[-1], text))
        sections.append(RawSection(sid, text, tuple(x[2] for x in stack), level, own, start + 1 + line_offset))
    if pre:
        sections.insert(0, RawSection(PREAMBLE, title or "Preamble", (title or "Preamble",), 1, pre, 1 + line_offset))
    _attach_bullets(tokens, sections, heads, line_offset, title is not None)
    return title, sections


def _attach_bullets(tokens, sections: list[RawSection], heads, line_offset: int, has_title: bool) -> None:
    """Each section's top-level list items (their first paragraph, on one line): the candidates for constraints."""
    starts = [(sec.line - 1 - line_offset, sec) for sec in sections if sec.id != PREAMBLE]
    preamble = next((sec for sec in sections if sec.id == PREAMBLE), None)
    for k, tok in enumerate(tokens):
        if tok.type != "list_item_open" or tok.level != 1 or tok.map is None:
            continue
        inline = next((t for t in tokens[k + 1:] if t.type == "inline"), None)
        if inline is None:
            continue
        owner = preamble
        for start, sec in starts:
            if start <= tok.map[0]:
                owner = sec
        if owner is not None:
            owner.bullets.append(" ".join(inline.content.split()))


def read_header(doc: Path, shown: str, text: str) -> tuple[s.DocumentHeader, str, int, str]:
    """(the header, the Markdown body, the body's first line - 1, where the header came from)."""
    from . import schema as s  # pydantic: only when a file is read
    from .parsing import parse_text, read_data

    front, body, offset = split_front_matter(text, shown)
    side = sidecar_path(doc)
    if front is not None and side.is_file():
        raise ConstitutionError(f"{shown}: has both front matter and a sidecar {side.name}: keep one")
    if front is not None:
        data: Any = parse_text("\n" + front, ".yaml", shown)  # the newline keeps YAML's line numbers the file's
        where = shown
    elif side.is_file():
        data, where = read_data(side, str(side)), str(side)
    else:
        data, where = {}, shown
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConstitutionError(f"{where}: the header must be a mapping (name, priorities, sections, hard_constraints, ...), got {s.tname(data)}")
    return s.validate(s.DocumentHeader, data, where), body, offset, where


def load_document(path: Path, *, shown: str, source: str) -> Constitution:
    text = read_text(path, shown, "a Markdown file")
    header, body, offset, where = read_header(path, shown, text)
    title, raw = parse_sections(body, offset)
    if not raw:
        raise ConstitutionError(f"{shown}: no text: expected Markdown with headings (# Title, ## Section, ...)")
    return build_document(header, raw, title, source=source, shown=shown, where=where, default_name=path.stem)


def _constraint_id(text: str, taken: set[str]) -> str:
    base = slug(" ".join(text.split()[:6]))
    cid, n = base, 1
    while cid in taken:
        n += 1
        cid = f"{base}-{n}"
    taken.add(cid)
    return cid


def _check_tier(tier: str | None, priorities: list[str], where: str, field_name: str) -> None:
    if tier is None:
        return
    if not priorities:
        raise ConstitutionError(f"{where}: {field_name}: tier '{tier}' given but no `priorities` declare the tiers")
    if tier not in priorities:
        raise ConstitutionError(f"{where}: {field_name}: expected one of the priorities ({', '.join(priorities)}), got '{tier}'")


def check_priorities(priorities: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(priorities):
        if name in seen:
            raise ConstitutionError(f"{where}: priorities[{i}]: duplicate tier '{name}'")
        seen.add(name)


def build_document(header: s.DocumentHeader, raw: list[RawSection], title: str | None, *, source: str, shown: str, where: str,
                   default_name: str) -> Constitution:

    from .parsing import behaviours_of, check_unique, few_shot_example
    from .passages import DEFAULT_PASSAGE_TOKENS
    from .requests import sized

    priorities = list(header.priorities)
    check_priorities(priorities, where)
    ids = [r.id for r in raw]
    specs: dict[str, s.SectionSpec] = {}
    for key, spec in header.sections.items():
        sid = resolve_section(key, ids, where, f"sections.{key}")
        if sid in specs:
            raise ConstitutionError(f"{where}: sections.{key}: names section '{sid}', which another key names too")
        _check_tier(spec.tier, priorities, where, f"sections.{key}.tier")
        specs[sid] = spec

    constraints: list[HardConstraint] = []
    constraint_section = None
    taken: set[str] = set()
    if isinstance(header.hard_constraints, str):
        constraint_section = resolve_section(header.hard_constraints, ids, where, "hard_constraints")
        bullets = next(r.bullets for r in raw if r.id == constraint_section)
        if not bullets:
            raise ConstitutionError(f"{where}: hard_constraints: section '{constraint_section}' has no bulleted list (each bullet is one constraint)")
        constraints = [HardConstraint(_constraint_id(b, taken), b, constraint_section) for b in bullets]
    elif header.hard_constraints:
        constraints = _listed_constraints(header.hard_constraints, where)

    def inherited(sid: str, attr: str) -> Any:
        cur: str | None = sid
        while cur is not None:
            spec = specs.get(cur)
            if spec is not None and getattr(spec, attr) is not None:
                return getattr(spec, attr)
            cur = cur.rsplit("/", 1)[0] if "/" in cur else None
        return None

    sections = []
    for r in raw:
        route = inherited(r.id, "route")
        routed = bool(r.text) and route is not False and r.id != constraint_section
        tier = inherited(r.id, "tier")
        if routed and priorities and tier is None:
            raise ConstitutionError(
                f"{where}: sections: '{r.id}' ({shown}:{r.line}) has no tier: map it, or a section above it, to one of "
                f"{', '.join(priorities)}, or give it route: false"
            )
        sections.append(Section(r.id, r.title, r.path, r.level, r.text, r.line, tier, inherited(r.id, "when") or "always", routed))
    if not any(sec.routed for sec in sections):
        raise ConstitutionError(f"{where}: sections: none is left to route (every section is empty, the constraints, or route: false)")
    check_unique([p.id for p in header.comparisons], where, "comparisons")
    for i, q in enumerate(header.comparisons):
        _check_tier(q.tier, priorities, where, f"comparisons[{i}].tier")
    few_shot: tuple[FewShotExample, ...] = tuple(few_shot_example(ex) for ex in header.few_shot or [])
    return sized(Constitution(
        name=header.name or default_name,
        description=header.description or (title or ""),
        critiques=(),
        comparisons=tuple(ComparisonPrinciple(q.id, q.question, q.tier) for q in header.comparisons),
        few_shot=few_shot,
        source=source,
        format="markdown",
        priorities=tuple(priorities),
        sections=tuple(sections),
        hard_constraints=tuple(constraints),
        behaviours=behaviours_of(header.behaviours, where, ids),
    ), DEFAULT_PASSAGE_TOKENS)


def _listed_constraints(items: list[s.HardConstraintSpec], where: str) -> list[HardConstraint]:
    taken = {c.id for c in items if c.id}
    out = []
    seen: dict[str, int] = {}
    for i, c in enumerate(items):
        cid = c.id or _constraint_id(c.text, taken)
        if cid in seen:
            raise ConstitutionError(f"{where}: hard_constraints[{i}].id: duplicate id '{cid}' (also hard_constraints[{seen[cid]}])")
        seen[cid] = i
        out.append(HardConstraint(cid, c.text))
    return out
