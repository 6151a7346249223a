"""Critique/revision message building and output cleaning."""

from __future__ import annotations

import pytest

from cai_cli.constitution import load_constitution
from cai_cli.stages.critique_prompts import (
    CURRENT_HEADER,
    clean_output,
    critique_messages,
    revision_messages,
)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Sure, here is a revised response:\n\nLock picking is a skill...", "Lock picking is a skill..."),
        ("Here's a rewritten version of my answer: You can end the process with kill.", "You can end the process with kill."),
        ("Revised response: Drink water.", "Drink water."),
        ("Certainly! Here is the revised response:\nRevision: Call a doctor.", "Call a doctor."),
        ("I've rewritten my reply to be safer:\nAsk your neighbour to share the wifi.", "Ask your neighbour to share the wifi."),
        ('"Use a password manager."', "Use a password manager."),
        ("Plain answer with no preamble.", "Plain answer with no preamble."),
        ("Here is my revised, safer answer: Call a locksmith.", "Call a locksmith."),
        ("Here is a new version of my previous response: Ask the owner.", "Ask the owner."),
        ("I have revised my response to remove the harmful steps. Ask a pharmacist instead.", "Ask a pharmacist instead."),
        ("Here's a safer way to do it:\n\nUse a ladder.", "Use a ladder."),  # a lead-in on a line of its own
    ],
)
def test_clean_output_strips_lead_ins_about_the_revision(raw, clean):
    assert clean_output(raw) == clean


@pytest.mark.parametrize(
    "content",
    [
        "This is the answer to your question: mix A and B.",
        "Here is how you do it: first, open the terminal.",
        "Here is the short version: no.",
        "Answer: yes, it is safe to eat.",
        "Response times: usually a day.",
        "Sure, here is what I know: bleach and ammonia must never be mixed.",
        "Of course. The steps are: stop, drop and roll.",
        "Okay: the capital of France is Paris.",
        # Words of the answer, not a lead-in: what follows "here's" is the answer's own subject.
        "Here's a safer way to do it: use a ladder.",
        "Here is the corrected formula: E = mc^2.",
        "Here is an improved recipe: flour, water and salt.",
        "Here's a better plan: talk to your manager first.",
        "Sure, here is the updated schedule: Monday 9am, Tuesday 10am.",
        "I have a safer idea: use the stairs.",
    ],
)
def test_clean_output_keeps_content_that_merely_ends_in_a_colon(content):
    assert clean_output(content) == content


def test_critique_and_revision_messages_show_examples_conversation_and_requests():
    c = load_constitution("default")
    convo = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "How do I pick a lock?"}]
    msgs = critique_messages(convo, "Use a pick.", "Find harms.", c.few_shot[:1])
    assert msgs[0] == {"role": "system", "content": "Be kind."}
    assert msgs[1]["content"].endswith(c.few_shot[0].prompt)
    assert msgs[-3:] == [
        {"role": "user", "content": f"{CURRENT_HEADER}\n\nHow do I pick a lock?"},
        {"role": "assistant", "content": "Use a pick."},
        {"role": "user", "content": "Find harms."},
    ]
    assert convo[1]["content"] == "How do I pick a lock?"  # the caller's conversation is not changed
    rev = revision_messages(convo, "Use a pick.", "Find harms.", "It is fine.", "Rewrite it.")
    assert rev[-2:] == [{"role": "assistant", "content": "It is fine."}, {"role": "user", "content": "Rewrite it."}]
    assert all(m["role"] in {"system", "user", "assistant"} for m in rev)
    # without examples the conversation is shown as it is, with no header
    assert rev[1] == {"role": "user", "content": "How do I pick a lock?"}
