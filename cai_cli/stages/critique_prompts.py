"""Builds the critique, revision and skip-check conversations, and cleans what the model writes back.

Worked examples are earlier turns of the same chat, as the method shows them (the paper's prompt and
the Hugging Face recipe both prepend whole critique/revision conversations). So that an example cannot
leak into the real critique (a critique of a joke that talks about "breaking into a network" is the
wifi example leaking), each example opens with a header naming it a finished, unrelated example, and
the real conversation opens with a header naming it the current one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..constitution import FewShotExample

Conversation = list[dict]

EXAMPLE_HEADER = (
    "[Worked example {i} of {n}: a separate, finished conversation that only shows how a critique and a "
    "revision are done. It has nothing to do with the current conversation.]"
)
CURRENT_HEADER = (
    "[The current conversation. The worked examples above are unrelated to it: critique and revise only "
    "what is said from here on.]"
)


def _with_header(turns: Conversation, header: str) -> Conversation:
    """TURNS with HEADER prepended to the first user turn (copies; the input is not changed)."""
    out = [dict(m) for m in turns]
    for m in out:
        if m["role"] == "user":
            m["content"] = f"{header}\n\n{m['content']}"
            return out
    return [{"role": "user", "content": header}] + out


def few_shot_turns(examples: Sequence[FewShotExample]) -> Conversation:
    """Worked examples as earlier turns of the chat, each whole (through its revision) and marked as an example."""
    turns: Conversation = []
    for i, ex in enumerate(examples, 1):
        turns += _with_header(ex.messages(), EXAMPLE_HEADER.format(i=i, n=len(examples)))
    return turns


OPERATOR_NOTE = (
    "This conversation runs under instructions from the operator who deployed you (its system message):\n\n"
    "{instructions}\n\n"
    "Take them into account: follow them where the constitution allows."
)


def with_operator(request: str, instructions: str | None) -> str:
    """REQUEST followed by the operator's instructions (bounded like a section), so the critic and the reviser
    weigh them; REQUEST unchanged when the conversation has no system message."""
    if not instructions:
        return request
    from ..constitution.requests import bounded

    return f"{request}\n\n{OPERATOR_NOTE.format(instructions=bounded(instructions))}"


def with_behaviours(request: str, note: str) -> str:
    """REQUEST followed by the note of the instructable behaviours in force (constitution.behaviours.note), so the critic
    and the reviser weigh them; REQUEST unchanged where the constitution declares none."""
    return f"{request}\n\n{note}" if note else request


def critique_messages(conversation: Conversation, response: str, critique_request: str, examples: Sequence[FewShotExample] = ()) -> Conversation:
    """The model sees the worked examples, the conversation, its own current response, then the critique request."""
    system = [m for m in conversation[:1] if m["role"] == "system"]
    rest = [dict(m) for m in conversation[len(system) :]]
    if examples:
        rest = _with_header(rest, CURRENT_HEADER)
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


# --------------------------------------------------------------------------- --skip-unchanged

# Asked both ways round (a scored yes/no pair, cai_cli.judge.maths.yes_no_pairs), because small models lean
# towards "Yes" whatever the question: the second question's answer means the opposite.
CHANGE_QUESTION = "Does the critique ask for any change to the response?"
NO_CHANGE_QUESTION = "Does the critique find the response fine as it is, asking for no change at all?"
SKIP_THRESHOLD = 0.5  # --skip-threshold: the response is kept where P(change) is below it


def skip_check_messages(conversation: Conversation, response: str, critique: str, question: str) -> Conversation:
    """One yes/no question about a critique: does it ask for a change (or, asked the other way, for none)?"""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
    body = "\n\n".join(lines) + f"\n\nAssistant: {response}"
    return [
        {
            "role": "user",
            "content": (
                f"Here is a conversation between a user and an AI assistant:\n\n{body}\n\n"
                f"Here is a critique of the assistant's last response:\n\n{critique}\n\n{question} Answer Yes or No."
            ),
        }
    ]


# --------------------------------------------------------------------------- cleaning

# Only a lead-in that stands apart from the answer goes, never a word of the answer itself:
#  - a line of its own, ending in a colon, that introduces a revision ("Sure, here is a revised response:" then a line
#    break; "I've rewritten my reply to be safer:" then a line break);
#  - on the answer's own line, only a lead-in about the revision itself: a label ("Revised response:", "Revision:") or
#    a sentence whose subject is the response ("Here's a rewritten version of my answer:").
# "Here's a safer way to do it: use a ladder." and "Here is the corrected formula: E = mc^2." are answers: "a safer way
# to do it" and "the corrected formula" are content, so they stay whole, as does a sentence that merely ends in a colon.
_REVISION_WORD = r"(?:revis|rewrit|rewrote|updat|improv|edit|correct|new\ version|safer|better)"
_OPENER = r"(?:(?:sure|certainly|of\ course|okay|ok|absolutely|here\ you\ go)[,!.]?\s*)?"
_INTRO = r"(?:here\s+is|here's|below\s+is|i've|i\ have|this\s+is)"
_ADJ = r"[\w-]+,?\s+(?:and\s+)?"
_NOUN = r"(?:response|revision|reply|answer|version|rewrite)"
_OF_MINE = r"\s+of\s+(?:my|the|your)\s+(?:(?:previous|original|earlier|last|first)\s+)?(?:response|reply|answer)"
# The response itself, as a lead-in names it: "a revised response", "my safer, rewritten answer", "a new version of my
# reply", "the revision". Not "the short version" (no word of revising) nor "the corrected formula" (not the response).
_THE_RESPONSE = (
    rf"(?:(?:a|an|the|my|your)\s+)?(?:"
    rf"(?:{_ADJ}){{0,2}}?\w*{_REVISION_WORD}\w*,?\s+(?:and\s+)?(?:{_ADJ}){{0,2}}?{_NOUN}(?:{_OF_MINE})?"
    rf"|(?:{_ADJ}){{0,2}}?(?:revision|rewrite)(?:{_OF_MINE})?"
    rf"|(?:{_ADJ}){{0,2}}?version{_OF_MINE})"
)
_PREAMBLE = re.compile(
    rf"""^\s*{_OPENER}(?:
        {_INTRO}[^\n]{{0,80}}?{_REVISION_WORD}[^\n]{{0,80}}:[ \t]*\n                   # a line of its own
      | {_INTRO}\s+{_THE_RESPONSE}\s*:                                             # a sentence naming the response
      | (?:i've|i\ have|i)\s+\w*{_REVISION_WORD}\w*\s+(?:my|the)\s+(?:(?:previous|original|earlier|last|first)\s+)?
            (?:response|reply|answer)\b[^\n:.!?]{{0,80}}[:.]                          # a sentence about revising it
      | (?:revised|rewritten|updated|improved|edited|corrected|new|safer)\s+{_NOUN}\s*:  # a label
      | revision\s*:
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)


def clean_output(text: str) -> str:
    """Strip the lead-in the model puts before a revision ("Sure, here is a revised response:") and stray quotes."""
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
