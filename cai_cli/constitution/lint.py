"""`cai constitution lint`: what in a constitution will not reach the model as its author meant.

Each finding names the unit (passage, section, tier, constraint, behaviour), its line in the file where it has one,
and what to do. The checks:

* over-budget: a passage longer than the budget (a list, code block, table or single sentence that is never cut):
  it is still shown whole, and may crowd the conversation out of a small model's context;
* lead-in-without-list: a paragraph that introduces what follows ("Broadly safe behaviors include:") with no list,
  code or quote after it in its section: the substance it announces is elsewhere or missing;
* non-guidance-routed: a routed section whose heading or text reads as something other than guidance
  (acknowledgements, a summary, a table of contents, a list of names or links): it would be drawn for critiques;
* tier-without-question: a priority tier with no comparison question of its own (the judge asks the generic passage
  question), or with no routed passage to quote;
* constraint-without-passage: a hard constraint no passage states (the gate can quote only the constraint);
* behaviour-unreferenced: an instructable behaviour whose `section` is not given or names no section, so no passage
  describes it to the critic and the judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .model import Constitution


class FindingKind(str, Enum):
    over_budget = "over-budget"
    lead_in_without_list = "lead-in-without-list"
    non_guidance_routed = "non-guidance-routed"
    tier_without_question = "tier-without-question"
    constraint_without_passage = "constraint-without-passage"
    behaviour_unreferenced = "behaviour-unreferenced"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    unit: str  # the passage, section, tier, constraint or behaviour it is about
    line: int | None
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "unit": self.unit, "line": self.line, "message": self.message}


_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)|https?://\S+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SMALL = {"a", "an", "and", "the", "of", "in", "on", "to", "for", "with", "by", "at", "or", "de", "van", "von", "la", "le"}


def reads_as_non_guidance(text: str) -> str | None:
    """Why TEXT reads as something other than guidance (mostly names, or mostly links), or None."""
    words = [w for w in _WORD.findall(_LINK.sub(" ", text)) if w.lower() not in _SMALL]
    if len(words) >= 20 and sum(w[0].isupper() for w in words) / len(words) > 0.5:
        return "most of its words are capitalised: a list of names or titles"
    links = _LINK.findall(text)
    if len(links) >= 3 and sum(len(x) for x in links) > 0.3 * len(text):
        return "most of it is links"
    return None


def lint(constitution: Constitution) -> list[Finding]:
    """Every finding (module docstring) for CONSTITUTION, in the document's order within each check."""
    from .draft import MATTER
    from .passages import blocks
    from .requests import stating_passage

    out: list[Finding] = []
    budget = constitution.passage_tokens
    stating = {stating_passage(constitution, h).id: h.id for h in constitution.hard_constraints if stating_passage(constitution, h) is not None}  # type: ignore[union-attr]
    for p in constitution.passages:
        if budget and (p.routed or p.id in stating) and p.tokens > budget:
            line = constitution.section_by_id(p.section).line
            out.append(Finding(FindingKind.over_budget, p.id, line,
                               f"about {p.tokens} tokens, over the budget of {budget}: a list, table or sentence that is never cut; it is "
                               "shown whole and may crowd a small model's context (split it, or raise --passage-tokens)"))
    for s in constitution.sections:
        found = blocks(s.text)
        for b, after in zip(found, [*found[1:], None]):
            if b.lead_in and (after is None or after.kind == "paragraph"):
                out.append(Finding(FindingKind.lead_in_without_list, s.id, s.line,
                                   f"{b.text.splitlines()[-1][-60:]!r} introduces a list, but no list follows it in this section"))
    for s in constitution.sections:
        if not s.routed:
            continue
        why = f"its heading {s.title!r} names matter, not guidance" if MATTER.search(s.title) else reads_as_non_guidance(s.text)
        if why:
            out.append(Finding(FindingKind.non_guidance_routed, s.id, s.line, f"routed, but {why}: give it `route: false` in the header"))
    for tier in constitution.priorities:
        if not constitution.comparisons_in(tier):
            out.append(Finding(FindingKind.tier_without_question, tier, None,
                               "no comparison question of its own: the judge asks the generic passage question (`cai constitution import` drafts one per tier)"))
        if not any(p.tier == tier and p.routed for p in constitution.passages) and constitution.is_document:
            out.append(Finding(FindingKind.tier_without_question, tier, None, "no routed passage: the judge has nothing of the document to quote for it"))
    for h in constitution.hard_constraints:
        if stating_passage(constitution, h) is None:
            out.append(Finding(FindingKind.constraint_without_passage, h.id, None,
                               "no passage states it (the header lists it): the gate and the critic see the constraint alone"))
    ids = {s.id for s in constitution.sections}
    for beh in constitution.behaviours:
        if beh.section is None or beh.section not in ids:
            out.append(Finding(FindingKind.behaviour_unreferenced, beh.id, None,
                               "no `section` of the document describes it: the critic and the judge see only its name and description"))
    return out


def format_findings(constitution: Constitution, findings: list[Finding]) -> str:
    head = f"{constitution.source} ({constitution.hash}, passages of at most {constitution.passage_tokens} tokens): "
    if not findings:
        return head + "no findings"
    lines = [head + f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"]
    width = max(len(f.kind.value) for f in findings)
    for f in findings:
        where = f" (line {f.line})" if f.line else ""
        lines.append(f"{f.kind.value:<{width}}  {f.unit}{where}: {f.message}")
    return "\n".join(lines)
