"""Builds the critique and revision conversations, and cleans what the model writes back."""

from __future__ import annotations

import re
from typing import Sequence

from .constitution import FewShotExample

Conversation = list[dict]


def few_shot_turns(examples: Sequence[FewShotExample]) -> Conversation:
    """Worked examples as earlier turns of the same chat, as the original method showed them.

    Critique prompts show every example whole (through its revision): the model learns the full loop.
    """
    turns: Conversation = []
    for ex in examples:
        turns += ex.messages()
    return turns


def critique_messages(conversation: Conversation, response: str, critique_request: str, examples: Sequence[FewShotExample] = ()) -> Conversation:
    """The model sees the conversation, its own current response, then the critique request."""
    system = [m for m in conversation[:1] if m["role"] == "system"]
    rest = conversation[len(system) :]
    return (
        system
        + few_shot_turns(examples)
        + rest
        + [{"role": "assistant", "content": response}, {"role": "user", "content": critique_request}]
    )


def revision_messages(
    conversation: Conversation,
    response: str,
    critique_request: str,
    critique: str,
    revision_request: str,
    examples: Sequence[FewShotExample] = (),
) -> Conversation:
    return critique_messages(conversation, response, critique_request, examples) + [
        {"role": "assistant", "content": critique},
        {"role": "user", "content": revision_request},
    ]


_PREAMBLE = re.compile(
    r"""^\s*(?:
        (?:sure|certainly|of\ course|okay|ok|absolutely|here\ you\ go)[,!.]?\s*
    )?(?:
        (?:here\s+is|here's|below\s+is|this\s+is|i've\s+rewritten|i\ have\ rewritten|i've\ revised|i\ have\ revised)
        [^\n:]{0,80}?(?:revis|rewrit|updat|improv|edit|respon|version|answer)[^\n:]{0,60}:
      | (?:revised|rewritten|updated|improved|new|edited)?\s*(?:response|revision|answer|version)\s*:
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)

_NO_CHANGE = re.compile(
    r"""(?:
        \b(?:no|nothing)\b[^.\n]{0,40}\b(?:harmful|problematic|unethical|wrong|issues?|problems?|concerns?|changes?\ (?:are|is)\ needed|to\ (?:change|revise|fix|improve))
      | \b(?:is|was|seems|appears)\ (?:already\ )?(?:appropriate|harmless|fine|acceptable|ethical|safe\ and\ helpful)\b
      | \bdoes\ not\ (?:contain|need|require)\b[^.\n]{0,30}\b(?:harm|chang|revis|problem|issue)
      | \bdoesn't\ (?:contain|need|require)\b[^.\n]{0,30}\b(?:harm|chang|revis|problem|issue)
    )""",
    re.IGNORECASE | re.VERBOSE,
)

_FINDS_PROBLEM = re.compile(
    r"\b(?:however|but|although|should(?:\ not|n't)?|could\ be\ (?:harmful|improved)|harmful|dangerous|illegal|unethical|inappropriate|problematic|misleading)\b",
    re.IGNORECASE,
)


def clean_output(text: str) -> str:
    """Strip boilerplate the model wraps around a revision ("Sure, here is a revised response:") and stray quotes."""
    text = text.strip()
    for _ in range(2):  # "Sure! Here's the revision:\n\nRevised response: ..." has two layers
        stripped = _PREAMBLE.sub("", text, count=1).strip()
        if stripped == text or not stripped:
            break
        text = stripped
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”" and text.count(text[0]) == 2:
        text = text[1:-1].strip()
    if len(text) >= 2 and text[0] == "“" and text[-1] == "”":
        text = text[1:-1].strip()
    return text


def critique_finds_nothing(critique: str) -> bool:
    """True when the critique says the response needs no change (and raises no problem elsewhere)."""
    head = critique.strip()[:300]
    if not _NO_CHANGE.search(head):
        return False
    # "There is nothing harmful here, however it could mislead ..." still asks for a change.
    after = _NO_CHANGE.split(head, maxsplit=1)[-1]
    return not _FINDS_PROBLEM.search(after)
