"""The Makefiles as a user runs them: `make bench` fails when any benchmark fails, and `make -j2 -C examples`, the whole
method as Make targets, runs to the end with the rows of one target at a time, and a second `make` does nothing (at the smallest sizes: the fake engine for
every generating stage, a tiny model built on the spot for the trainers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAKE_ENV, ROOT, read_jsonl
from tiny_model import build_tiny_model

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_make_bench_fails_when_any_benchmark_fails(tmp_path):
    # The project's Makefile over stand-in benchmarks, with its setup already done (the stamp is newer than its inputs).
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    stamp = tmp_path / ".venv" / ".cai-setup"
    stamp.touch()
    os.utime(tmp_path / "pyproject.toml", (1, 1))
    os.utime(tmp_path / "Makefile", (1, 1))
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_generate.py").write_text("print('generate ran')\n")
    (bench / "bench_a.py").write_text("raise SystemExit('a: below the floor')\n")
    (bench / "bench_z.py").write_text("print('z ran')\n")
    proc = make("bench", cwd=tmp_path)
    # A failure in the middle is not hidden by the last benchmark passing, and the rest still run.
    assert proc.returncode != 0 and "make bench: failed: bench/bench_a.py" in proc.stderr
    assert proc.stdout.index("generate ran") < proc.stdout.index("z ran")
    (bench / "bench_a.py").write_text("print('a ran')\n")
    proc = make("bench", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "generate ran" in proc.stdout and "a ran" in proc.stdout and "z ran" in proc.stdout


@pytest.mark.slow
def test_make_examples_runs_to_the_end_and_a_second_make_does_nothing(tmp_path):
    tiny = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    env = {**FAKE_ENV, "OMP_NUM_THREADS": "1"}
    common = [f"CAI={sys.executable} -m cai_cli", f"MODEL={tiny}", "ENGINE=fake", "N=2", "EVAL_N=1", "STEPS=1",
              "MAX_TOKENS=16", "MAX_LENGTH=64", "POLICY_FLAGS=--algo grpo --num-generations 2 --max-tokens 4"]
    sizes = [f"OUT={out}", *common]
    proc = make("-j2", "-C", "examples", *sizes, env=env)  # two targets at a time wherever the dependencies allow
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The rows are those of one target at a time (here the targets that need no trained model).
    one = tmp_path / "one"
    rows = ["sl-gen.jsonl", "sl-critique1.jsonl", "sl-revise1.jsonl", "sl-critique2.jsonl", "sl-revise2.jsonl", "helpful.jsonl", "eval-base.jsonl"]
    serial = make("-C", "examples", f"OUT={one}", *common, "sl", f"{one}/helpful.jsonl", f"{one}/eval-base.summary.json", env=env)
    assert serial.returncode == 0, serial.stderr[-3000:]
    assert [(one / name).read_bytes() for name in rows] == [(out / name).read_bytes() for name in rows]
    for made in ("sl-revise2.jsonl", "sl-cai/config.json", "prefs.jsonl", "rm/config.json", "rl-cai/config.json",
                 "eval-rl-cai.summary.json", "report.png"):
        assert (out / made).exists(), made
    assert [len(r["rounds"]) for r in read_jsonl(out / "sl-revise2.jsonl")] == [2, 2]
    # Up to date: `make -q` answers 0, and a plain `make` runs no command.
    assert make("-q", "-C", "examples", *sizes, env=env).returncode == 0
    again = make("-C", "examples", *sizes, env=env)
    assert again.returncode == 0 and "cai_cli" not in again.stdout, again.stdout
