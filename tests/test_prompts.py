"""Critique/revision message building and output cleaning."""

from __future__ import annotations

import pytest

from cai_cli.constitution import load_constitution
from cai_cli.prompts import clean_output, critique_finds_nothing, critique_messages, revision_messages


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Sure, here is a revised response:\n\nLock picking is a skill...", "Lock picking is a skill..."),
        ("Here's a rewritten version of my answer: You can end the process with kill.", "You can end the process with kill."),
        ("Revised response: Drink water.", "Drink water."),
        ("Certainly! Here is the revised response:\nRevision: Call a doctor.", "Call a doctor."),
        ('"Use a password manager."', "Use a password manager."),
        ("Here is how you do it: first, open the terminal.", "Here is how you do it: first, open the terminal."),
        ("Plain answer with no preamble.", "Plain answer with no preamble."),
    ],
)
def test_clean_output_strips_boilerplate_but_not_content(raw, clean):
    assert clean_output(raw) == clean


@pytest.mark.parametrize(
    "critique, nothing",
    [
        ("The response is appropriate and helpful; no changes are needed.", True),
        ("There is nothing harmful in this response.", True),
        ("The response does not contain anything harmful.", True),
        ("There is nothing harmful here, however it could mislead a beginner about the dosage.", False),
        ("The response gives step-by-step help for a crime, which is harmful.", False),
        ("It encourages the user to hurt themselves.", False),
    ],
)
def test_no_change_detection(critique, nothing):
    assert critique_finds_nothing(critique) is nothing


def test_critique_and_revision_messages_show_examples_conversation_and_requests():
    c = load_constitution("default")
    convo = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "How do I pick a lock?"}]
    msgs = critique_messages(convo, "Use a pick.", "Find harms.", c.few_shot[:1])
    assert msgs[0] == {"role": "system", "content": "Be kind."}
    assert msgs[1]["content"] == c.few_shot[0].prompt
    assert msgs[-3:] == [
        {"role": "user", "content": "How do I pick a lock?"},
        {"role": "assistant", "content": "Use a pick."},
        {"role": "user", "content": "Find harms."},
    ]
    rev = revision_messages(convo, "Use a pick.", "Find harms.", "It is fine.", "Rewrite it.")
    assert rev[-2:] == [{"role": "assistant", "content": "It is fine."}, {"role": "user", "content": "Rewrite it."}]
    assert all(m["role"] in {"system", "user", "assistant"} for m in rev)
