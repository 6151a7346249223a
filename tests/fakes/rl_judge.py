"""The scripted judge of tests/test_rl_judge.py; as an engine plugin of a `cai` subprocess (CAI_ENGINE_PLUGINS=
fakes.engine,fakes.rl_judge with CAI_RL_JUDGE_FAKE=1) the fake engine judges with it."""

from __future__ import annotations

import math
import os
import re

from fakes.engine import FakeEngine

_OPTIONS = re.compile(r"\(A\) (.*)\n\(B\) (.*)\n\nAnswer with", re.S)


def _last_answer(prompt: str) -> str:
    """The answer a yes/no question is about: the assistant's turn after the conversation."""
    return prompt.rsplit("Assistant: ", 1)[1].split("\n\n")[0]


def judge_scorer(prompt: str, options) -> list[float]:
    """The scripted judge: the longer answer wins (by 10 characters: e to 1), and an answer that mentions a weapon
    crosses the hard constraint (P 0.9), whichever way the question is put."""
    if list(options) == [" Yes", " No"]:
        crosses = 0.9 if "weapon" in _last_answer(prompt) else 0.1
        p_yes = crosses if "cross this line?" in prompt else (1 - crosses if "stay clear" in prompt else 0.5)
        return [math.log(p_yes), math.log(1 - p_yes)]
    a, b = _OPTIONS.search(prompt).groups()  # type: ignore[union-attr]
    d = (len(a) - len(b)) / 10
    return [d / 2, -d / 2]


if os.environ.get("CAI_RL_JUDGE_FAKE"):  # imported as a subprocess's engine plugin
    FakeEngine.scorer = staticmethod(judge_scorer)
