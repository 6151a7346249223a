"""Fake engines for the Ray tests, registered in every process that imports this module (CAI_ENGINE_PLUGINS):
`fake-gated` holds a row whose prompt says "wait" until the gate file exists (so a run can be killed with
some rows finished and others not, whatever the machine's load); `fake-dies` kills its own process, once,
in the middle of the batch holding a row whose prompt says "die here" (a worker lost mid-run), but never the
test's own process (a run without Ray there makes the rows to compare with)."""

from __future__ import annotations

import os
import signal
import time

from cai_cli.engines import register_engine

from fakes.engine import FakeEngine

DIE_MARKER_ENV = "CAI_TEST_DIE_MARKER"  # a file made just before the kill, so it happens once per run
TEST_PID_ENV = "CAI_TEST_PID"  # the test's own process, which is never killed
GATE_ENV = "CAI_TEST_GATE"  # rows that say "wait" wait for this file


class GatedEngine(FakeEngine):
    name = "fake-gated"

    def chat(self, conversations, sampling, seeds=None):
        if any("wait" in conv[-1]["content"] for conv in conversations):
            deadline = time.monotonic() + 120
            while not os.path.exists(os.environ[GATE_ENV]) and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().chat(conversations, sampling, seeds)


class DyingEngine(FakeEngine):
    name = "fake-dies"

    def chat(self, conversations, sampling, seeds=None):
        in_worker = str(os.getpid()) != os.environ.get(TEST_PID_ENV)
        if in_worker and any("die here" in m["content"] for conv in conversations for m in conv):
            try:
                os.close(os.open(os.environ[DIE_MARKER_ENV], os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # killed once already: this time the batch goes through
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().chat(conversations, sampling, seeds)


register_engine("fake-gated", GatedEngine)
register_engine("fake-dies", DyingEngine)
