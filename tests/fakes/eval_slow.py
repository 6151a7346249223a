"""`cai eval` in a subprocess on the fake engine scripted as in test_eval (two canned models and a judge), each answer
and each judge's score a little slow, so a test can kill the run with -9 part-way: CAI_ENGINE_PLUGINS=fakes.eval_slow
(a subprocess's plugin only: importing it scripts the fake engine of the process that imports it)."""

from __future__ import annotations

import time

from fakes.engine import FakeEngine  # registers --engine fake
from fakes.eval import script_eval

DELAY = 0.01  # seconds per answer and per scored prompt


def _slow(fn):
    def slow(*args):
        time.sleep(DELAY)
        return fn(*args)

    return slow


engine = script_eval(FakeEngine)
engine.replies = {model: _slow(reply) for model, reply in engine.replies.items()}
engine.scorer = _slow(engine.scorer)
