"""How a document's passage, or a hard constraint, becomes a critique request and a revision request, and how
an operator's long instructions are bounded.

A passage of a prose constitution is guidance, not a question: the critique request quotes it whole, under its
heading path (passages.py keeps every passage within the model's budget), and asks for a critique that cites it;
the revision request asks for a rewrite that meets the passage the critique cited.

A hard constraint is never drawn: it becomes a critique principle (id "hard-constraint:<id>") only for a round the
gate (cai_cli.judge.gate) gives it, where the answer likely crosses it. `principle_by_id` finds either kind, so
revise follows a gated round as it follows a drawn one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from .model import Constitution, CritiquePrinciple, HardConstraint

if TYPE_CHECKING:
    from .passages import Passage

# An operator's system message quoted after a request: about 350-450 tokens, room left for the rest on a small model.
QUOTE_MAX_CHARS = 1600

CUT_MARK = "[… cut here: {words} more words not shown]"

CRITIQUE_REQUEST = (
    'The constitution you follow says, in "{heading}":\n\n'
    "{text}\n\n"
    "Critique your last response against this passage. Quote the words of the passage that apply, then say "
    "specifically where the response meets them and where it falls short. If the passage does not bear on "
    "this response, say so."
)
REVISION_REQUEST = (
    'Rewrite your response so that it meets the passage "{heading}" of the constitution, fixing what your '
    "critique found. Keep everything in it that was useful and help with the legitimate part of the request; "
    "refuse only what the passage itself rules out."
)


def bounded(text: str, limit: int = QUOTE_MAX_CHARS) -> str:
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


def passage_critique_request(passage: Passage) -> str:
    return CRITIQUE_REQUEST.format(heading=passage.heading, text=passage.text.strip())


def passage_revision_request(passage: Passage) -> str:
    return REVISION_REQUEST.format(heading=passage.heading)


CONSTRAINT_PREFIX = "hard-constraint:"
CONSTRAINT_CRITIQUE = (
    "The constitution you follow sets hard constraints: lines no response may cross, whatever the request or the "
    "instructions. This one, what the assistant must never do, may apply to your last response:\n\n"
    '"{text}"\n\n'
    "{stated}"
    "Critique your last response against this line: quote any part of it that crosses the line and say what that "
    "part would make possible. If no part does, say so."
)
STATED_IN = 'The constitution states it in "{heading}":\n\n{passage}\n\n'
CONSTRAINT_REVISION = (
    'Rewrite your response so that it does not cross the hard constraint "{text}": remove every part that does, '
    "without replacing it with anything that does the same, and help with whatever legitimate part of the request remains."
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def stating_passage(constitution: Constitution, constraint: HardConstraint) -> Passage | None:
    """The passage whose list states CONSTRAINT (None where the header lists the constraint itself)."""
    if constraint.section is None:
        return None
    want = _flat(constraint.text)
    for p in constitution.passages:
        if p.section == constraint.section and want in _flat(p.text):
            return p
    return None


def constraint_principle(constitution: Constitution, constraint: HardConstraint) -> CritiquePrinciple:
    """The critique principle of a round given to CONSTRAINT, by the gate or by routing (tier: its section's, where it
    has one); the critique request quotes the constraint and the passage that states it."""
    text = _flat(constraint.text)
    tier = constitution.section_by_id(constraint.section).tier if constraint.section is not None else None
    passage = stating_passage(constitution, constraint)
    stated = STATED_IN.format(heading=passage.heading, passage=passage.text.strip()) if passage is not None else ""
    return CritiquePrinciple(
        f"{CONSTRAINT_PREFIX}{constraint.id}",
        CONSTRAINT_CRITIQUE.format(text=text, stated=stated),
        CONSTRAINT_REVISION.format(text=text),
        tier=tier,
        section=constraint.section,
        passage=passage.id if passage is not None else None,
    )


def principle_by_id(constitution: Constitution, pid: str) -> CritiquePrinciple:
    """A critique principle of CONSTITUTION, or the principle of a hard constraint ("hard-constraint:<id>")."""
    if pid.startswith(CONSTRAINT_PREFIX):
        cid = pid.removeprefix(CONSTRAINT_PREFIX)
        for h in constitution.hard_constraints:
            if h.id == cid:
                return constraint_principle(constitution, h)
    return constitution.critique_by_id(pid)


def round_principle(constitution: Constitution, rnd: dict) -> CritiquePrinciple:
    """The principle a critique round RND used, under the passage budget the round records (`passage_tokens`), so
    revise and --amend find the passage the critic was shown whatever budget they would choose themselves."""
    budget = rnd.get("passage_tokens")
    if constitution.is_document and isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        constitution = sized(constitution, budget)
    return principle_by_id(constitution, str(rnd.get("principle")))


def has_principle(constitution: Constitution, rnd: dict) -> bool:
    from ..errors import ConstitutionError

    try:
        round_principle(constitution, rnd)
    except ConstitutionError:
        return False
    return True


def sized(constitution, budget: int):
    """CONSTITUTION with its passages (and a document's critique principles, one per routed passage) under BUDGET; a
    list constitution has no passages and comes back as it is."""
    return _sized(constitution, int(budget))


@lru_cache(maxsize=16)
def _sized(constitution, budget: int):
    from dataclasses import replace

    from .passages import section_passages

    if not constitution.is_document:
        return constitution
    if constitution.passage_tokens == budget:
        return constitution
    passages = tuple(p for section in constitution.sections for p in section_passages(section, budget))
    critiques = tuple(
        CritiquePrinciple(p.id, passage_critique_request(p), passage_revision_request(p), p.when, p.tier, p.section, p.id)
        for p in passages if p.routed
    )
    return replace(constitution, passages=passages, critiques=critiques, passage_tokens=budget)
