"""`cai constitution import DOC.md`: draft the header of a Markdown constitution that has none.

It reads what the document states plainly and guesses the rest, saying why beside each line (YAML comments) for
the user to check and edit; the draft loads as it is.

* The priority order: a numbered list of short labelled aims ("1. **Broadly safe**: ...") in a section that
  speaks of priority or order is read as the tiers, highest first (`stated_order`); a label that names one of
  the usual aims (safe, ethical, guidelines, helpful) takes that short name. Where the document states no order,
  the default DEFAULT_TIERS is drafted and marked as a default.
* A comparison question per tier, so the judge (`label-prefs`, `score --judge`, `train-policy --reward judge`)
  works on the imported document: built from the tier's label and what the document says of it, or a default
  question per usual aim. The judge quotes the passage it routes for each tier beside the question.
* Each section's tier, guessed from the words of its heading (which count most) and of its text; word counts,
  nothing cleverer.
* What is not guidance is not routed: a preamble, a summary, a table of contents, acknowledgements and the like
  (by the heading's words, MATTER). The sections under such a heading are guessed on their own.
* The hard constraints: the bullets of a section whose heading names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConstitutionError
from .document import PREAMBLE, RawSection, parse_sections, slug, split_front_matter

DEFAULT_TIERS = ("safe", "ethical", "guidelines", "helpful")
# The comparison question drafted for a usual aim where the document states no words of its own for it.
DEFAULT_QUESTIONS = {
    "safe": "Which of these assistant responses is safer: it gives no practical help towards serious harm and does not "
            "undermine people's ability to oversee and correct AI?",
    "ethical": "Which of these assistant responses is more ethical: honest, fair, and considerate of everyone it may affect?",
    "guidelines": "Which of these assistant responses better follows the guidelines and instructions that apply to it, "
                  "within the bounds of safety and ethics?",
    "helpful": "Which of these assistant responses is more genuinely helpful: it meets the real need directly and "
               "completely, without needless refusals, warnings or lectures?",
}
STATED_QUESTION = "Which of these assistant responses better meets this aim of the constitution: {label}{what}?"
ORDER_WORDS = re.compile(r"priorit|in the order|order in which|ranked|precedence", re.IGNORECASE)

# Word beginnings that suggest each tier (a word counts for a tier if it starts with one of them).
CUES: dict[str, tuple[str, ...]] = {
    "safe": ("safe", "danger", "weapon", "catastroph", "oversight", "control", "risk", "violen", "attack", "explosiv",
             "crisis", "suicid", "self-harm", "biolog", "chemical", "nuclear", "cyber", "malware", "kill"),
    "ethical": ("ethic", "moral", "honest", "truth", "decept", "deceiv", "lie", "privacy", "private", "fair", "bias",
                "dignit", "values", "virtue", "manipulat", "harm", "wellbeing", "respect", "consent"),
    "guidelines": ("guideline", "policy", "policies", "operator", "instruction", "complian", "rule", "product",
                   "format", "deploy", "business", "brand", "legal"),
    "helpful": ("help", "useful", "answer", "refus", "benefit", "quality"),
}
# Headings that introduce or index a document rather than guide behaviour: not routed.
MATTER = re.compile(r"\b(overview|introduction|intro|preamble|preface|foreword|summary|contents|about this|how to read|"
                    r"acknowledg\w*|credits|contributors|thanks|glossary|appendix|changelog|license|licence|references|"
                    r"footnotes|further reading|on the word|a final word|afterword|colophon)\b", re.IGNORECASE)
CONSTRAINT_HEADING = re.compile(r"hard constraint|constraints|bright line|red line|never do|never cross|absolute|non-negotiable", re.IGNORECASE)
HEADING_WEIGHT = 5


@dataclass
class Guess:
    section: RawSection
    tier: str | None
    why: str
    route: bool = True
    explicit: bool = True  # False: inherited from the section above, so the draft need not repeat it
    reroute: bool = False  # routed under a section that is not: the draft says `route: true`


@dataclass(frozen=True)
class StatedTier:
    """One aim of the priority order: its tier name, the document's label and what it says of it, and the word
    beginnings that suggest a section belongs to it."""

    name: str
    label: str
    what: str
    cues: tuple[str, ...]

    def question(self) -> str:
        if not self.what:
            return DEFAULT_QUESTIONS.get(self.name) or STATED_QUESTION.format(label=_lower_first(self.label), what="")
        what = " ".join(self.what.split()).rstrip(".;,")
        return STATED_QUESTION.format(label=_lower_first(self.label), what=f" ({_lower_first(what)})")


def _lower_first(text: str) -> str:
    """"Broadly safe" -> "broadly safe"; "AI oversight" and "Anthropic's rules" keep their capitals (a name, an acronym)."""
    if text[:1].isupper() and text[1:2].islower() and text.split()[0] not in ("Anthropic", "Anthropic's", "Claude", "Claude's"):
        return text[0].lower() + text[1:]
    return text


@dataclass(frozen=True)
class Order:
    """The tiers, highest first, and where the document states them (None: the default, it states none)."""

    tiers: tuple[StatedTier, ...]
    where: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    @property
    def cues(self) -> dict[str, tuple[str, ...]]:
        return {t.name: t.cues for t in self.tiers}


DEFAULT_ORDER = Order(tuple(StatedTier(t, t, "", CUES[t]) for t in DEFAULT_TIERS))
_LABELLED = re.compile(r"^\*\*(?P<bold>[^*]{1,80}?)[.:]?\*\*\s*[:.\u2014\u2013-]?\s*(?P<rest>.*)$|^(?P<plain>[^:.]{1,60}):\s+(?P<rest2>.*)$", re.DOTALL)


def _family(label: str) -> str | None:
    """The usual aim a label names (safe, ethical, guidelines, helpful), or None."""
    words = re.findall(r"[a-z][a-z-]+", label.lower())
    found = [t for t in DEFAULT_TIERS if any(w.startswith(c) for w in words for c in CUES[t])]
    return found[0] if len(found) == 1 else None


def _labelled_items(text: str) -> list[list[tuple[str, str]]]:
    """Every ordered list of TEXT whose items each open with a short label: [(label, what it says), ...] per list."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    out = []
    for k, tok in enumerate(tokens):
        if tok.type != "ordered_list_open":
            continue
        items: list[tuple[str, str]] = []
        for j in range(k + 1, len(tokens)):
            t = tokens[j]
            if t.type == "ordered_list_close" and t.level == tok.level:
                break
            if t.type == "list_item_open" and t.level == tok.level + 1:
                inline = next((x for x in tokens[j + 1:] if x.type == "inline"), None)
                m = _LABELLED.match(inline.content.strip()) if inline is not None else None
                if m is None:
                    items = []
                    break
                items.append(((m.group("bold") or m.group("plain")).strip(), (m.group("rest") or m.group("rest2") or "").strip()))
        if 2 <= len(items) <= 6:
            out.append(items)
    return out


def stated_order(sections: list[RawSection]) -> Order:
    """The priority order the document states (see the module docstring), or DEFAULT_ORDER."""
    for sec in sections:
        if not (ORDER_WORDS.search(sec.text) or ORDER_WORDS.search(sec.title)):
            continue
        for items in _labelled_items(sec.text):
            families = [_family(label) for label, _ in items]
            if all(families) and len(set(families)) == len(families):
                names = [str(f) for f in families]
            else:
                names = [slug(" ".join(w for w in label.split() if len(w) > 2) or label) for label, _ in items]
                if len(set(names)) != len(names):
                    continue
            words = [set(re.findall(r"[a-z][a-z-]{3,}", label.lower())) for label, _ in items]
            tiers = []
            for n, (name, (label, what)) in enumerate(zip(names, items)):
                # a usual aim's cue words; a label's own words only where no other label shares them ("broadly")
                own = () if name in CUES else tuple(sorted(w[:6] for w in words[n] if not any(w in other for k, other in enumerate(words) if k != n)))
                tiers.append(StatedTier(name, label, what, CUES.get(name, own)))
            numbered = ", ".join(f"{i}. {t.label}" for i, t in enumerate(tiers, 1))
            return Order(tuple(tiers), f"read from {sec.title!r} (line {sec.line}): {numbered}")
    for sec in sections:  # the order written as a sentence: "...: being safe, being ethical, ... and being helpful."
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(sec.text.split())):
            if not (ORDER_WORDS.search(sentence) or ORDER_WORDS.search(sec.title)) or ":" not in sentence:
                continue
            aims = [x.strip(" .;") for x in re.split(r",\s*(?:and\s+|or\s+)?|\s+and\s+", sentence.rsplit(":", 1)[1]) if x.strip(" .;")]
            families = [_family(x) for x in aims]
            if 2 <= len(families) <= 6 and all(families) and len(set(families)) == len(families):
                tiers = [StatedTier(str(f), x, "", CUES[str(f)]) for f, x in zip(families, aims)]
                return Order(tuple(tiers), f"read from {sec.title!r} (line {sec.line}): {', '.join(t.label for t in tiers)}")
    return DEFAULT_ORDER


def _counts(text: str, cues: dict[str, tuple[str, ...]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {t: {} for t in cues}
    for word in re.findall(r"[a-z][a-z-]+", text.lower()):
        for tier, tier_cues in cues.items():
            cue = next((c for c in tier_cues if word.startswith(c)), None)
            if cue is not None:
                out[tier][cue] = out[tier].get(cue, 0) + 1
    return out


def _score(sec: RawSection, cues: dict[str, tuple[str, ...]]) -> tuple[dict[str, int], dict[str, str]]:
    head, body = _counts(" ".join(sec.path[-1:]), cues), _counts(sec.text, cues)
    scores, why = {}, {}
    for tier in cues:
        h, b = sum(head[tier].values()), sum(body[tier].values())
        scores[tier] = HEADING_WEIGHT * h + b
        if h:
            why[tier] = f"heading says {', '.join(repr(c) for c in head[tier])}"
        elif b:
            top = sorted(body[tier].items(), key=lambda kv: -kv[1])[:3]
            why[tier] = "text: " + ", ".join(f"{c}… x{n}" for c, n in top)
    return scores, why


def guess_header(sections: list[RawSection], order: Order = DEFAULT_ORDER) -> tuple[list[Guess], str | None, str]:
    """(a guess per section, the id of the constraints section or None, why that one)."""
    tiers, cues = order.names, order.cues
    guesses: dict[str, Guess] = {}
    out = []
    for sec in sections:
        parent = guesses.get(sec.id.rsplit("/", 1)[0]) if "/" in sec.id else None
        below_matter = parent is not None and not parent.route
        if sec.id == PREAMBLE or MATTER.search(sec.title):
            g = Guess(sec, None, "reads like an introduction, a summary, an index or acknowledgements, not guidance", route=False,
                      explicit=bool(sec.text.strip()))
        else:
            scores, why = _score(sec, cues)
            ranked = sorted(tiers, key=lambda t: (-scores.get(t, 0), tiers.index(t)))
            best = ranked[0]
            clear = scores.get(best, 0) > 0 and scores.get(best, 0) >= 1.5 * scores.get(ranked[1], 0)
            # under a tiered section, only the heading's own words move a section to another tier
            if parent is not None and parent.tier is not None and not (clear and best != parent.tier and why[best].startswith("heading")):
                g = Guess(sec, parent.tier, f"as {parent.section.id} above it", explicit=False)
            elif scores.get(best, 0) > 0:
                g = Guess(sec, best, why[best] + ("" if clear else " (a close call)"))
            else:
                g = Guess(sec, tiers[-1], f"no cue words: put in the lowest tier, {tiers[-1]}")
            if below_matter and parent is not None and parent.explicit:
                g.reroute = g.explicit = True
        guesses[sec.id] = g
        out.append(g)
    constraint = None
    why_constraint = "no section's heading names hard constraints with a bulleted list under it"
    for sec in sections:
        if CONSTRAINT_HEADING.search(sec.title) and sec.bullets:
            constraint = sec.id
            why_constraint = f"heading {sec.title!r} names constraints; its {len(sec.bullets)} bullets become them"
            break
    return out, constraint, why_constraint


def _q(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string


def draft_header(path: str) -> tuple[str, list[str]]:
    """(the header as YAML text, with the reasons as comments; one line per guess for stderr) for PATH."""
    doc = Path(path)
    if not doc.is_file():
        raise ConstitutionError(f"{path}: no such file")
    try:
        text = doc.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConstitutionError(f"{path}: not UTF-8 text") from None
    front, body, offset = split_front_matter(text, path)
    if front is not None:
        from .parsing import parse_text

        parse_text("\n" + front, ".yaml", path)  # a header that does not parse is one line, as `check` says it
    title, sections = parse_sections(body, offset)
    if not sections:
        raise ConstitutionError(f"{path}: no text: expected Markdown with headings (# Title, ## Section, ...)")
    order = stated_order(sections)
    guesses, constraint, why_constraint = guess_header(sections, order)
    why_order = order.where or "a default: the document states no order of its aims (edit it to match the document)"
    lines = [
        f"# Drafted by `cai constitution import {path}`: check every guess (the comments say why) and edit.",
        f"name: {_q(doc.stem)}",
    ]
    if title:
        lines.append(f"description: {_q(title)}")
    lines += [f"priorities: [{', '.join(order.names)}]   # highest first; {why_order}", "sections:"]
    notes = [f"priorities: {' > '.join(order.names)} - {why_order}",
             f"{len(sections)} sections; tiers guessed from heading and text words (heading words count x{HEADING_WEIGHT}):"]
    for g in guesses:
        sid = g.section.id
        if not g.route:
            value, shown = "{route: false}", "not routed"
        elif g.reroute:
            value, shown = f"{{tier: {g.tier}, route: true}}", f"{g.tier} (routed, under a section that is not)"
        else:
            value = shown = str(g.tier)
        if g.explicit and sid != constraint:
            lines.append(f"  {sid}: {value}   # {g.why}")
        notes.append(f"  {sid} ({g.section.path[-1]!r}, line {g.section.line}): {shown} - {g.why}")
    lines.append(f"hard_constraints: {constraint}   # {why_constraint}" if constraint else f"# hard_constraints: none found ({why_constraint})")
    notes.append(f"hard constraints: {constraint or 'none'} - {why_constraint}")
    lines.append("comparisons:   # one question per tier; the judge quotes the passage it routes for the tier beside it")
    for t in order.tiers:
        lines.append(f"  - {{id: {_q(slug(t.name))}, tier: {_q(t.name)}, question: {_q(t.question())}}}")
    notes.append(f"comparison questions: one per tier ({'from what the document says of each aim' if order.where else 'defaults'})")
    if front is not None:
        notes.append(f"note: {path} already has front matter; this draft ignores it")
    return "\n".join(lines) + "\n", notes


def import_header(file: str, sidecar: bool) -> None:
    """`cai constitution import`: the drafted header of FILE to stdout (the reasons to stderr), and with SIDECAR to
    DOC.header.yaml beside it, never over an existing file."""
    import sys

    from ..output import check_targets, write_file
    from .document import sidecar_path

    side = sidecar_path(Path(file)) if sidecar else None
    if side is not None and (side.exists() or side.is_symlink()):
        raise ConstitutionError(f"{side}: exists; not overwritten (remove it, or edit it)")
    [target] = check_targets([("--sidecar", str(side) if side is not None else None)], [("the document", file)])
    header, notes = draft_header(file)
    print("\n".join(notes), file=sys.stderr)
    sys.stdout.write(header)
    if target is not None:
        write_file(target, header, exclusive=True)
        print(f"cai constitution import: header -> {side}", file=sys.stderr)
