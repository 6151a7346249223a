"""Cheap stages for the runner's tests and bench (the fake engine is fakes/engine.py); `python tests/fakes/runner.py KIND IN OUT`
runs a stage as a process, to be killed with -9 at random points: `fanout` (below), `critique` (sampled) and
`label-prefs` (judged by a scripted scorer; --gold-field, --min-confidence, more than two candidates) on the fake engine."""

from __future__ import annotations

import sys
import time

from cai_cli.errors import RowFailure
from cai_cli.rows import check_conversation
from cai_cli.runner import Dropped, RunOptions, StageStats, run_stage
from cai_cli.stages.base import Stage


class FanOut(Stage):
    """Row n gives 0, 1 or 3 output rows (n % 3), plus a Dropped row when n % 5 == 0; slow on purpose."""

    name = "fanout"

    def __init__(self, factor: int = 1, delay: float = 0.0, crash_after_batches: int | None = None, fail_ns=()):
        self.factor = factor
        self.delay = delay
        self.crash_after = crash_after_batches
        self.fail_ns = set(fail_ns)
        self.stats = StageStats()
        self.processed: list[str] = []

    def settings(self) -> dict:
        return {"factor": self.factor}

    def check(self, row):
        check_conversation(row)

    def start(self):
        pass

    def check_loaded(self, row):
        pass

    def process(self, rows):
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise KeyboardInterrupt("simulated crash")
            self.crash_after -= 1
        out = []
        for row in rows:
            time.sleep(self.delay)
            self.processed.append(row["id"])
            n = row["n"]
            if n in self.fail_ns:
                out.append(RowFailure("server kept failing"))
                continue
            made = [{**row, "id": f"{row['id']}:{j}", "part": j, "value": n * self.factor} for j in range((0, 1, 3)[n % 3])]
            if n % 5 == 0:
                made.append(Dropped({**row, "value": n * self.factor}, "a tie: nothing to learn"))
            out.append(made)
        return out

    def summary(self):
        return ""


def prompts(count: int) -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"prompt {i}", "n": i} for i in range(count)]


class Forking(FanOut):
    """Starts a child process that outlives it (as an engine's worker may): the child holds the side file's lock."""

    name = "fanout"

    def __init__(self, pid_file: str):
        super().__init__(delay=0.05)
        self.pid_file = pid_file

    def start(self):
        import os

        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        with open(self.pid_file, "w") as fh:
            fh.write(str(child))


def critique_rows(count: int) -> list[dict]:
    return [{"id": f"c{i}", "prompt": f"How do I do thing {i}?", "response": f"Here is how to do thing {i}."} for i in range(count)]


def label_rows(count: int) -> list[dict]:
    """Three candidates each (best-worst compares all three pairs but writes one), some repeated (identical pairs)."""
    texts = ["Alpha answer", "Be brave", "A bit of both", "Basically no", "All good", "Certainly not"]
    return [{"id": f"p{i}", "prompt": f"question {i}", "candidates": [texts[i % 6], texts[(i * 5 + 1) % 6], texts[(i * i) % 6]], "best": i % 3}
            for i in range(count)]


def scripted_scorer(prompt: str, options) -> list[float]:
    """Log-probs that depend on the whole prompt (order included), the same in every process."""
    import hashlib
    import math

    p = 0.05 + 0.9 * int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return [math.log(p), math.log(1.0 - p)] + [-20.0] * (len(options) - 2)


def stage(kind: str):
    """The stage KIND on the fake engine, as a killed run and its rerun build it."""
    from cai_cli.constitution import load_constitution
    from cai_cli.engines import EngineOptions, Sampling

    from fakes.engine import FakeEngine

    if kind == "fanout":
        return FanOut(delay=0.02)
    if kind.startswith("forking:"):
        return Forking(kind.removeprefix("forking:"))
    if kind == "critique":
        from cai_cli.stages.critique import Critique

        return Critique(EngineOptions(engine="fake"), Sampling(temperature=1.0, seed=5), load_constitution(None), few_shot=1)
    from cai_cli.stages.label_prefs import LabelConfig, LabelPrefs

    FakeEngine.scorer = staticmethod(scripted_scorer)
    return LabelPrefs(EngineOptions(engine="fake"), Sampling(seed=3), load_constitution(None), LabelConfig(principles=2, gold="best", min_confidence=0.6))


if __name__ == "__main__":
    kind, src, out, *rest = sys.argv[1:]
    batch = int(rest[0]) if rest else 3
    run_stage(stage(kind), RunOptions(input=src, output=out, batch_size=batch, progress=False))
