"""`cai constitution import DOC.md`: draft the header of a Markdown constitution that has none.

It lists the sections, guesses each one's tier from the words of its heading (which count most) and of
its text, pulls the bulleted constraints from a section whose heading names them, and says why it
guessed what it did, as YAML comments beside each line, for the user to check and edit. The guesses are
word counts, nothing cleverer: they are a first draft, and the draft loads as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConstitutionError
from .document import PREAMBLE, RawSection, parse_sections, split_front_matter

DEFAULT_TIERS = ("safe", "ethical", "guidelines", "helpful")

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
MATTER = re.compile(r"\b(overview|introduction|intro|preamble|contents|about this|how to read|acknowledg|glossary|"
                    r"appendix|changelog|license|licence|references|footnotes)\b", re.IGNORECASE)
CONSTRAINT_HEADING = re.compile(r"hard constraint|constraints|bright line|red line|never do|absolute|non-negotiable", re.IGNORECASE)
HEADING_WEIGHT = 5


@dataclass
class Guess:
    section: RawSection
    tier: str | None
    why: str
    route: bool = True
    explicit: bool = True  # False: inherited from the section above, so the draft need not repeat it


def _counts(text: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {t: {} for t in CUES}
    for word in re.findall(r"[a-z][a-z-]+", text.lower()):
        for tier, cues in CUES.items():
            cue = next((c for c in cues if word.startswith(c)), None)
            if cue is not None:
                out[tier][cue] = out[tier].get(cue, 0) + 1
    return out


def _score(sec: RawSection) -> tuple[dict[str, int], dict[str, str]]:
    head, body = _counts(" ".join(sec.path[-1:])), _counts(sec.text)
    scores, why = {}, {}
    for tier in CUES:
        h, b = sum(head[tier].values()), sum(body[tier].values())
        scores[tier] = HEADING_WEIGHT * h + b
        if h:
            why[tier] = f"heading says {', '.join(repr(c) for c in head[tier])}"
        elif b:
            top = sorted(body[tier].items(), key=lambda kv: -kv[1])[:3]
            why[tier] = "text: " + ", ".join(f"{c}… x{n}" for c, n in top)
    return scores, why


def guess_header(sections: list[RawSection], tiers: tuple[str, ...] = DEFAULT_TIERS) -> tuple[list[Guess], str | None, str]:
    """(a guess per section, the id of the constraints section or None, why that one)."""
    guesses: dict[str, Guess] = {}
    out = []
    for sec in sections:
        parent = guesses.get(sec.id.rsplit("/", 1)[0]) if "/" in sec.id else None
        if sec.id == PREAMBLE or MATTER.search(sec.title):
            g = Guess(sec, None, "reads like an introduction or index, not guidance", route=False)
        elif parent is not None and not parent.route:
            g = Guess(sec, None, f"under {parent.section.id}, which is not routed", route=False, explicit=False)
        else:
            scores, why = _score(sec)
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
    guesses, constraint, why_constraint = guess_header(sections)
    lines = [
        f"# Drafted by `cai constitution import {path}`: check every guess (the comments say why) and edit.",
        f"name: {_q(doc.stem)}",
    ]
    if title:
        lines.append(f"description: {_q(title)}")
    lines += [f"priorities: [{', '.join(DEFAULT_TIERS)}]   # highest first", "sections:"]
    notes = [f"{len(sections)} sections; tiers guessed from heading and text words (heading words count x{HEADING_WEIGHT}):"]
    for g in guesses:
        sid = g.section.id
        if not g.route:
            value, shown = "{route: false}", "not routed"
        else:
            value = shown = str(g.tier)
        if g.explicit and sid != constraint:
            lines.append(f"  {sid}: {value}   # {g.why}")
        notes.append(f"  {sid} ({g.section.path[-1]!r}, line {g.section.line}): {shown} - {g.why}")
    lines.append(f"hard_constraints: {constraint}   # {why_constraint}" if constraint else f"# hard_constraints: none found ({why_constraint})")
    notes.append(f"hard constraints: {constraint or 'none'} - {why_constraint}")
    if front is not None:
        notes.append(f"note: {path} already has front matter; this draft ignores it")
    return "\n".join(lines) + "\n", notes
