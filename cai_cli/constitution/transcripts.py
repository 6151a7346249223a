"""The paper's transcripts ("\n\nHuman: ...\n\nAssistant: ..." and, in its few-shot file, CritiqueRequest:, Critique:,
RevisionRequest: and Revision: blocks): one splitter for both readers, the few-shot file (loaders.py) and the judge's
worked judgments (judge/examples.py)."""

from __future__ import annotations

import re

TURNS = ("Human", "Assistant")
FEW_SHOT_BLOCKS = (*TURNS, "CritiqueRequest", "Critique", "RevisionRequest", "Revision")


def transcript_blocks(text: str, labels: tuple[str, ...] = TURNS) -> tuple[str, list[tuple[str, str]]]:
    """(the text before the first label, [(label, its text, stripped)]): a block starts at a LABELS label followed by a
    colon, at the start of TEXT or after a blank line."""
    mark = re.compile(r"(?:^|\n\n)(" + "|".join(map(re.escape, labels)) + r"):")
    marks = list(mark.finditer(text))
    if not marks:
        return text, []
    blocks = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        blocks.append((m.group(1), text[m.end() : end].strip()))
    return text[: marks[0].start()], blocks
