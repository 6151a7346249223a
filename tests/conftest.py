"""Shared fixtures: the `cai` command in a subprocess (as a user runs it) or in this process, and the fake engine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from cai_cli.engines import register_engine

ROOT = Path(__file__).resolve().parent.parent


def run_cai(*args: str, input: str | bytes | None = None, cwd: Path | None = None, env: dict | None = None, timeout: float = 900):
    """`cai ARGS...` in a subprocess; returns the CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [sys.executable, "-m", "cai_cli", *args],
        input=data,
        capture_output=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=timeout,
    )
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def cai():
    return run_cai


# ---- the fake engine: `--engine fake`, selected like a real back end --------------------------------


class FakeEngine:
    """A scripted model, for tests that exercise stages and the CLI without a real one.

    chat: each reply is `reply(conversation, seed)`: by default "fake reply <seed> to: <last message>",
    so a row's text depends on its own seed and prompt alone, as the Engine contract asks; replies longer
    than --max-tokens words are cut and report finish_reason "length".
    score_options: `scorer(prompt, options)` -> log-probs; by default the option whose text last appears
    in the prompt wins (ties: the first), so a judge prompt that quotes one answer more often prefers it.
    Tests change `reply`/`scorer` through the `fake_engine` fixture; `calls` counts what was asked.
    """

    name = "fake"
    max_context = 4096
    reply: ClassVar[Callable[[list[dict], int], str]]
    scorer: ClassVar[Callable[[str, Sequence[str]], list[float]]]
    calls: ClassVar[dict[str, int]] = {}

    def __init__(self, opts):
        self.model = opts.model or "fake-model"

    @staticmethod
    def default_reply(conversation: list[dict], seed: int) -> str:
        return f"fake reply {seed} to: {conversation[-1]['content'].splitlines()[-1][:60]}"

    @staticmethod
    def default_scorer(prompt: str, options: Sequence[str]) -> list[float]:
        best = max(range(len(options)), key=lambda i: (prompt.rfind(options[i].strip()), -i))
        return [math.log(0.8) if i == best else math.log(0.2 / max(1, len(options) - 1)) for i in range(len(options))]

    def chat(self, conversations, sampling, seeds=None):
        from cai_cli.engines.base import Completion, seeds_or_default

        FakeEngine.calls["chat"] = FakeEngine.calls.get("chat", 0) + len(conversations)
        out = []
        for conv, seed in zip(conversations, seeds_or_default(seeds, sampling, len(conversations))):
            texts, reasons = [], []
            for i in range(sampling.n):
                words = type(self).reply(conv, seed * 1000 + i).split()
                texts.append(" ".join(words[: sampling.max_tokens]))
                reasons.append("length" if len(words) > sampling.max_tokens else "stop")
            prompt_tokens = sum(len(m["content"].split()) for m in conv)
            out.append(Completion(texts, prompt_tokens, sum(len(t.split()) for t in texts), finish_reasons=reasons))
        return out

    def score_options(self, prompts, options):
        FakeEngine.calls["score"] = FakeEngine.calls.get("score", 0) + len(prompts)
        return [list(type(self).scorer(p, options)) for p in prompts]

    def render_chat(self, conversation, add_generation_prompt=True):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>\n" for m in conversation)
        return text + ("<assistant>" if add_generation_prompt else "")

    def count_tokens(self, conversation):
        return len(self.render_chat(conversation).split())

    def close(self):
        pass


def reset_fake_engine() -> type[FakeEngine]:
    FakeEngine.reply = staticmethod(FakeEngine.default_reply)
    FakeEngine.scorer = staticmethod(FakeEngine.default_scorer)
    FakeEngine.calls = {}
    return FakeEngine


reset_fake_engine()
register_engine("fake", FakeEngine)


@pytest.fixture
def fake_engine():
    """The FakeEngine class, freshly reset: `--engine fake` starts it (in-process, or in `run_cai` via FAKE_ENV)."""
    yield reset_fake_engine()
    reset_fake_engine()


# `run_cai(..., env=FAKE_ENV)`: a subprocess registers the fake engine by importing this module.
FAKE_ENV = {"CAI_ENGINE_PLUGINS": "conftest", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}


def invoke(*args: str, input: str | None = None):
    """`cai ARGS...` in this process (typer's CliRunner): fast, and the fake engine is already registered."""
    from typer.testing import CliRunner

    from cai_cli.cli import app

    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
