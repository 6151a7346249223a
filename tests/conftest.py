"""Shared fixtures: the `cai` command in this process (run_cai, the `cai` fixture) or, where the process boundary is
the point, in a new one (run_cai_process, FAKE_ENV): tests/runs.py; and the fake engine (tests/fakes/engine.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fakes.engine import DELAY_ENV, NOISE_ENV, FakeEngine, reset_fake_engine, yes_no_scorer
from runs import FAKE_ENV, ROOT, TESTS, CaiResult, run_cai, run_cai_process

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
