"""How a document's section becomes a critique request and a revision request, and how long text is bounded.

A section of a prose constitution is guidance, not a question: the critique request quotes it (at most
SECTION_MAX_CHARS, cut at a paragraph boundary, the cut marked) and asks for a critique that cites it;
the revision request asks for a rewrite that meets the section the critique cited.
"""

from __future__ import annotations

import re

from .model import Section

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
