"""Tests only: CAI_TEST_KILL_AT=POINT sends the training process SIGKILL at POINT, so a test can prove that a rerun
after a crash there ends as an uninterrupted run does.

POINT is step:N (mid-step N, before the optimizer step), save:N (right after checkpoint N is written), merge (once
the final model is merged) or install (when its first file is in DIR).
"""

from __future__ import annotations

import os
import signal

KILL_AT = "CAI_TEST_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
