"""Compute threads for torch on a CPU, set so that several cai processes on one machine share its cores.

torch runs each operation as OpenMP parallel regions, each ending in a barrier that waits for all of the process's
threads. By default libgomp's threads spin at a barrier (300,000 turns, a few milliseconds) before they sleep, and
torch starts one thread per core: two processes on the same cores then spin while the thread they wait for wants
the core they hold, and two `cai generate` runs took 2.3x to 19x one alone (issue 34). A thread that sleeps at once
(OMP_WAIT_POLICY=PASSIVE) gives the core back instead. What it costs a process alone: docs/engines.md, "Threads".

libgomp reads OMP_* when it loads, with torch, so `cai`'s entry point sets the default before any command imports
torch (set_defaults), never a library module at import; --threads N is applied as its command starts (use_threads).
The user's OMP_WAIT_POLICY and OMP_NUM_THREADS (or GOMP_SPINCOUNT) win; --threads wins over OMP_NUM_THREADS. vLLM's
CPU path picks its own thread count where neither is given (engines/vllm.py, cpu_threads).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Annotated

from .flags import MODEL_PANEL, Flag

WAIT_POLICY = "PASSIVE"


def set_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """cai's thread settings, where the user gave none; before torch loads (its OpenMP runtime reads them then)."""
    if "GOMP_SPINCOUNT" not in environ:  # the user's own spin count says how long to wait: libgomp's default policy with it
        environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def use_threads(count: int) -> None:
    """--threads COUNT: this process's compute threads, whatever OMP_NUM_THREADS says (torch too, where it is loaded)."""
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


@dataclass
class ThreadOptions:
    """--threads, on every command that may run torch (applied as the command starts, before it loads torch)."""

    threads: Annotated[int | None, Flag(
        min=1, show_default="OMP_NUM_THREADS, else one per core", panel=MODEL_PANEL,
        help="Compute threads for torch on a CPU (this process; wins over OMP_NUM_THREADS). Waiting threads sleep unless "
        "OMP_WAIT_POLICY says otherwise, so runs side by side share the cores (docs/engines.md, \"Threads\").",
    )] = None

    def apply(self) -> None:
        if self.threads is not None:
            use_threads(self.threads)
