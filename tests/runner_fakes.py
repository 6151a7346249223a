"""Cheap stages for the runner's tests and bench (the fake engine is conftest's); `python tests/runner_fakes.py fanout IN OUT`
runs the fan-out stage as a process (to be killed with -9 at random points)."""

from __future__ import annotations

import sys
import time

from cai_cli.errors import RowFailure
from cai_cli.rows import check_conversation
from cai_cli.runner import Dropped, RunOptions, StageStats, run_stage


class FanOut:
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


if __name__ == "__main__":
    kind, src, out, *rest = sys.argv[1:]
    batch = int(rest[0]) if rest else 3
    delay = float(rest[1]) if len(rest) > 1 else 0.01
    if kind == "fanout":
        run_stage(FanOut(delay=delay), RunOptions(input=src, output=out, batch_size=batch, progress=False))
