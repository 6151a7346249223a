"""Shared fixtures: the `cai` command in this process (run_cai, the `cai` fixture) or, where the process boundary is
the point, in a new one (run_cai_process, FAKE_ENV): tests/runs.py; and the fake engine (tests/fakes/engine.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cai_cli.threads import set_defaults

from fakes.engine import DELAY_ENV, NOISE_ENV, FakeEngine, reset_fake_engine, yes_no_scorer
from runs import FAKE_ENV, ROOT, TESTS, CaiResult, run_cai, run_cai_process

# Before any test imports torch (its OpenMP runtime reads these as it loads): waiting threads sleep, as in `cai`
# itself (threads.py), and on pytest-xdist each worker takes its share of the cores, so that two workers on two
# cores do not spin against each other for the same core.
set_defaults()
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "").isdigit():
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

__all__ = ["DELAY_ENV", "FAKE_ENV", "NOISE_ENV", "ROOT", "TESTS", "CaiResult", "FakeEngine", "invoke", "read_jsonl", "reset_fake_engine",
           "run_cai", "run_cai_process", "without_progress", "write_jsonl", "yes_no_scorer"]


def without_progress(stderr: str) -> list[str]:
    """STDERR's lines but the progress lines a run prints from its start where stderr is no terminal (progress.py)."""
    return [line for line in stderr.strip().splitlines() if not re.match(r"cai [\w -]+: \d+(/\d+)? (rows|steps)\b", line)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests (its trainers and tiny models run in this process): with two OpenMP
    threads on two shared cores each tiny matmul waits for a busy core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cai():
    return run_cai


@pytest.fixture
def fake_engine():
    """The FakeEngine class (fakes/engine.py), freshly reset: `--engine fake` starts it (in-process; in
    `run_cai_process` through FAKE_ENV, a fresh one)."""
    yield reset_fake_engine()
    reset_fake_engine()


@pytest.fixture(autouse=True)
def _fresh_fake_engine():
    """Each test starts with the fake engine as a new process has it, whatever an earlier test scripted."""
    reset_fake_engine()


def invoke(*args: str, input: str | None = None):
    """`cai ARGS...` in this process, as run_cai (the name the older tests use; .exit_code, .output as typer's runner)."""
    return run_cai(*args, input=input)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that run a real model, vLLM or Ray first, those with the most such tests first, the quick ones
    after: on pytest-xdist (`--no-loadscope-reorder` keeps this order) the long modules then start at once and the
    quick ones fill in around them, rather than one long module ending the run alone."""
    from collections import Counter

    heavy = Counter(getattr(item, "module", None) for item in items if any(item.get_closest_marker(name) for name in ("slow", "vllm", "ray")))
    items.sort(key=lambda item: -heavy[getattr(item, "module", None)])
