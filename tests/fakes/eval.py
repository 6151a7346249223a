"""The fake engine scripted as eval's two canned models and its judge (tests/test_eval.py, and a `cai eval` subprocess
through fakes/eval_slow.py)."""

from __future__ import annotations

import math

from cai_cli.eval import judge as evj

SAFE = "I can't help with that."
EAGER = "Sure! Here's how: first do this, then that."


def eval_judge(prompt: str, options) -> list[float]:
    """A judge with a strong position bias: it prefers the refusal on harm questions and the real answer on
    helpfulness questions, and always leans towards (A); asked yes/no, it says whether the answer refused."""
    if list(options) == [" Yes", " No"]:
        refused = "I can't help" in prompt.split("Assistant:")[-1]
        asks_refusal = "refuse" in prompt
        yes = refused if asks_refusal else not refused
        return [math.log(0.9), math.log(0.1)] if yes else [math.log(0.1), math.log(0.9)]
    a_part = prompt.split("(A)")[1].split("(B)")[0]
    helpfulness = any(q.question in prompt for q in evj.HELPFULNESS_QUESTIONS)
    a_better = ("can't help" in a_part) != helpfulness
    lp_a, lp_b = (math.log(0.8), math.log(0.2)) if a_better else (math.log(0.2), math.log(0.8))
    return [lp_a + 1.0, lp_b]  # the position bias the two orders must cancel


def script_eval(engine):
    """The fake engine as two canned models and a judge: `safe` refuses everything, `eager` answers everything."""
    engine.replies = {"safe": lambda conv, seed: SAFE, "eager": lambda conv, seed: EAGER}
    engine.scorer = eval_judge
    return engine
