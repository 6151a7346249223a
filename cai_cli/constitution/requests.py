"""How a document's section, or a hard constraint, becomes a critique request and a revision request, and how
long text is bounded.

A section of a prose constitution is guidance, not a question: the critique request quotes it (at most
SECTION_MAX_CHARS, cut at a paragraph boundary, the cut marked) and asks for a critique that cites it;
the revision request asks for a rewrite that meets the section the critique cited.

A hard constraint is never drawn: it becomes a critique principle (id "hard-constraint:<id>") only for a round the
gate (cai_cli.judge.gate) gives it, where the answer likely crosses it. `principle_by_id` finds either kind, so
revise follows a gated round as it follows a drawn one.
"""

from __future__ import annotations

import re

from .model import Constitution, CritiquePrinciple, HardConstraint, Section

# About 350-450 tokens: a long section still leaves room for the conversation and the answer on a small model.
SECTION_MAX_CHARS = 1600

CUT_MARK = "[… cut here: {words} more words not shown]"

CRITIQUE_REQUEST = (
    'The constitution you follow says, in its section "{heading}":\n\n'
    "{text}\n\n"
    "Critique your last response against this section. Quote the words of the section that apply, then say "
    "specifically where the response meets them and where it falls short. If the section does not bear on "
    "this response, say so."
)
REVISION_REQUEST = (
    'Rewrite your response so that it meets the section "{heading}" of the constitution, fixing what your '
    "critique found. Keep everything in it that was useful and help with the legitimate part of the request; "
    "refuse only what the section itself rules out."
)


def bounded(text: str, limit: int = SECTION_MAX_CHARS) -> str:
    """TEXT cut to at most about LIMIT characters at a paragraph boundary, the cut marked with how much is left.

    A first paragraph longer than LIMIT is cut at the last sentence end (or word) before it, so the result is
    always bounded.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    paragraphs = re.split(r"\n\s*\n", text)
    kept: list[str] = []
    used = 0
    for para in paragraphs:
        cost = len(para) + (2 if kept else 0)
        if used + cost > limit:
            break
        kept.append(para)
        used += cost
    if not kept:  # the first paragraph alone is too long: cut it at a sentence end, else at a space
        head = paragraphs[0][:limit]
        ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", head)]
        cut = ends[-1] if ends else (head.rfind(" ") if " " in head else limit)
        kept = [head[:cut].rstrip()]
    shown = "\n\n".join(kept)
    rest = len(text[len(shown):].split()) if text.startswith(shown) else len(text.split()) - len(shown.split())
    return f"{shown}\n\n{CUT_MARK.format(words=max(1, rest))}"


def section_critique_request(section: Section) -> str:
    return CRITIQUE_REQUEST.format(heading=section.heading, text=bounded(section.text))


def section_revision_request(section: Section) -> str:
    return REVISION_REQUEST.format(heading=section.heading)


CONSTRAINT_PREFIX = "hard-constraint:"
CONSTRAINT_CRITIQUE = (
    "The constitution you follow sets hard constraints: lines no response may cross, whatever the request or the "
    "instructions. This one, what the assistant must never do, may apply to your last response:\n\n"
    '"{text}"\n\n'
    "Critique your last response against this line: quote any part of it that crosses the line and say what that "
    "part would make possible. If no part does, say so."
)
CONSTRAINT_REVISION = (
    'Rewrite your response so that it does not cross the hard constraint "{text}": remove every part that does, '
    "without replacing it with anything that does the same, and help with whatever legitimate part of the request remains."
)


def constraint_principle(constitution: Constitution, constraint: HardConstraint) -> CritiquePrinciple:
    """The critique principle of a round the gate gives to CONSTRAINT (tier: its section's, where it has one)."""
    text = " ".join(constraint.text.split())
    tier = constitution.section_by_id(constraint.section).tier if constraint.section is not None else None
    return CritiquePrinciple(
        f"{CONSTRAINT_PREFIX}{constraint.id}",
        CONSTRAINT_CRITIQUE.format(text=text),
        CONSTRAINT_REVISION.format(text=text),
        tier=tier,
        section=constraint.section,
    )


def principle_by_id(constitution: Constitution, pid: str) -> CritiquePrinciple:
    """A critique principle of CONSTITUTION, or the principle of a hard constraint ("hard-constraint:<id>")."""
    if pid.startswith(CONSTRAINT_PREFIX):
        cid = pid.removeprefix(CONSTRAINT_PREFIX)
        for h in constitution.hard_constraints:
            if h.id == cid:
                return constraint_principle(constitution, h)
    return constitution.critique_by_id(pid)


def has_principle(constitution: Constitution, pid: str) -> bool:
    from ..errors import ConstitutionError

    try:
        principle_by_id(constitution, pid)
    except ConstitutionError:
        return False
    return True
