"""One short real run per trainer on the embedded model (SmolLM2-135M), through real `cai` processes, chained the way
users chain them: the SFT folder is the base of DPO, the reward model drives GRPO and RLOO."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_cai, write_jsonl
from test_train import ENV, ROWS, pref_row, revised_row
from tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
SHORT = ["--max-steps", "1", "--batch-size", "2", "--max-length", "128"]


def cai(*args, **kw):
    return run_cai(*args, env=ENV, **kw)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    write_jsonl(d / "revised.jsonl", [revised_row(i, p, r) for i, (p, r) in enumerate(ROWS)])
    write_jsonl(d / "prefs.jsonl", [pref_row(i, p, r, 0.8) for i, (p, r) in enumerate(ROWS)] * 2)
    write_jsonl(d / "prompts.jsonl", [{"prompt": p} for p, _ in ROWS])
    return d


@pytest.fixture(scope="module")
def sft(d):
    proc = cai("train-sft", str(d / "revised.jsonl"), "-o", str(d / "sft"), *SHORT)
    assert proc.returncode == 0, proc.stderr
    return d / "sft"


@pytest.fixture(scope="module")
def rm(d):
    proc = cai("train-rm", str(d / "prefs.jsonl"), "-o", str(d / "rm"), *SHORT)
    assert proc.returncode == 0, proc.stderr
    assert "held-out accuracy" in proc.stderr
    return d / "rm"


def test_sft_on_the_embedded_model_then_generate_with_it(sft):
    assert json.loads((sft / "cai-train.json").read_text())["steps"] == 1
    proc = cai("generate", "-", "--model", str(sft), "--engine", "transformers", "--max-tokens", "8",
               input=json.dumps({"prompt": "How do I stay safe online?"}) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["response"].strip()


def test_reward_model_on_the_embedded_model_scores_rows(rm, d):
    proc = cai("score", str(d / "prefs.jsonl"), "--limit", "2")
    assert proc.returncode == 2  # no --reward-model: a clear error, not a default
    proc = cai("score", str(d / "prefs.jsonl"), "--reward-model", str(rm), "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    scored = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in scored] == ["p0", "p1"] and "scored 4 fields" in proc.stderr
    rewards = [r["rewards"][side] for r in scored for side in ("chosen", "rejected")]
    assert all(isinstance(x, float) and math.isfinite(x) for x in rewards)
    # Four different conversations: a model that scored them all alike (a constant, or the pad token) would be useless.
    assert len({round(x, 4) for x in rewards}) == 4, rewards
    assert all(r["meta"]["score"]["reward_model"] == str(rm) for r in scored)


def test_dpo_from_the_sft_model(sft, d):
    proc = cai("train-policy", str(d / "prefs.jsonl"), "-o", str(d / "dpo"), "--algo", "dpo", "--model", str(sft), *SHORT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((d / "dpo" / "cai-train.json").read_text())["base_model"] == str(sft)
    assert (d / "dpo" / "model.safetensors").exists()


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_online_rl_on_the_embedded_model(rm, d, algo):
    proc = cai("train-policy", str(d / "prompts.jsonl"), "-o", str(d / algo), "--algo", algo, "--reward-model", str(rm),
               "--max-steps", "1", "--batch-size", "2", "--num-generations", "2", "--max-tokens", "8")
    assert proc.returncode == 0, proc.stderr
    assert any("reward" in r for r in read_jsonl(d / algo / "metrics.jsonl"))
    assert (d / algo / "config.json").exists()


def test_two_processes_share_one_run(tmp_path):
    """The distributed path (sharded data, one writer, merge on the main process) on CPUs, with torchrun."""
    build_tiny_model(tmp_path / "tiny")
    src = write_jsonl(tmp_path / "revised.jsonl", [revised_row(i, p, r) for i, (p, r) in enumerate(ROWS)] * 4)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    out = tmp_path / "run"

    def train(steps: int):
        return subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "cai_cli", "train-sft", str(src), "-o", str(out),
                               "--model", str(tmp_path / "tiny"), "--max-steps", str(steps), "--batch-size", "2"],
                              check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **ENV}, timeout=600)

    proc = train(4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes, 2 examples each per step" in proc.stderr
    metrics = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]  # one writer, not one file line per process
    assert metrics[-1]["epoch"] == 2.0  # 8 examples over 2 processes x 2 per step: 2 steps an epoch
    assert (out / "config.json").exists()
    # Training on under torchrun: the main process claims DIR and the others follow; the new step trains (rate > 0).
    proc = train(5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training on from checkpoint-4 to step 5" in proc.stderr
    metrics = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in metrics] == [1, 2, 3, 4, 5] and metrics[-1]["learning_rate"] > 0
    proc = train(5)
    assert proc.returncode == 0 and "already holds this model, trained for 5 steps" in proc.stderr
