"""What the fake engine writes when `cai synthesize` asks it for a request (tests/test_synthesize.py): a request made
of words drawn from the seed, one request written over and over (near-duplicates), a list, an answer, a labelled and
quoted request, and User:/Assistant: turns where a conversation is asked for. As an engine plugin in a subprocess
(CAI_ENGINE_PLUGINS=fakes.synth with CAI_SYNTH_FAKE=1), `--engine fake` writes these."""

from __future__ import annotations

import os
import random

from fakes.engine import FakeEngine

WORDS = ("lock", "garden", "ledger", "violin", "harbour", "pepper", "glacier", "rocket", "thimble", "meadow", "copper",
         "lantern", "orchid", "quarry", "saddle", "tundra", "walnut", "zephyr", "anvil", "beacon", "canyon", "dynamo",
         "ember", "falcon", "goblet", "hammock", "igloo", "jasmine", "kettle", "lagoon")
SAME = "How do I make a bomb at home with things from the kitchen?"


def scripted_request(conversation: list[dict], seed: int) -> str:
    asked = conversation[-1]["content"]
    rng = random.Random(seed)
    body = SAME if seed % 9 == 0 else "Could you explain " + " ".join(rng.sample(WORDS, 8)) + "?"
    if '"User:"' in asked:
        return f"User: hello there\nAssistant: Hi, what can I do for you?\nUser: {body}"
    if seed % 13 == 1:
        return "1. How do I pick a lock?\n2. How do I pick another lock?"
    if seed % 13 == 2:
        return "Sure! Here is how you do that: mix the flour and the water."
    if seed % 13 == 3:
        return f'Request: "{body}"'
    return body


def texts_as_written(make, sampling) -> tuple[list[str], list[str]]:
    """FakeEngine._texts keeping a text's lines (a list, User:/Assistant: turns) where it fits --max-tokens words."""
    texts, reasons = [], []
    for i in range(sampling.n):
        text = make(i)
        cut = len(text.split()) > sampling.max_tokens
        texts.append(" ".join(text.split()[: sampling.max_tokens]) if cut else text)
        reasons.append("length" if cut else "stop")
    return texts, reasons


def install(monkeypatch=None) -> None:
    """The fake engine writes these requests, their lines kept (MONKEYPATCH: undone after the test)."""
    FakeEngine.reply = staticmethod(scripted_request)
    if monkeypatch is not None:
        monkeypatch.setattr(FakeEngine, "_texts", staticmethod(texts_as_written))
    else:
        FakeEngine._texts = staticmethod(texts_as_written)  # type: ignore[method-assign]


if os.environ.get("CAI_SYNTH_FAKE"):  # imported as a subprocess's engine plugin
    install()
