"""The reward monitor in RL (`train-policy --monitor`, cai_cli/train/monitor.py): the probe answers scored by the
training reward and by a second opinion every N steps, both logged to metrics.jsonl with their rank correlation; a
rigged divergence (the training judge likes every change, the held-out question dislikes it) stops the run with exit
4 at a checkpoint it resumes from; the rule, the spec and the options' errors.

The policy is the tiny random model; the judge is the fake engine. The probe answers are scripted (greedy_answers is
replaced) so that each check's answers are longer than the last: what the training and held-out questions make of
that is the rig."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import read_jsonl, write_jsonl
from test_train import FAST, cai
from tiny_model import build_tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RULES = """\
name: monitor-test
critiques:
  - {id: harm, critique: Name the harm., revision: Remove the harm.}
comparisons:
  - {id: fuller, question: "Which of these assistant responses is fuller?"}
  - {id: plainer, question: "Which of these assistant responses is plainer?"}
"""
_OPTIONS = re.compile(r"\(A\) (.*)\n\(B\) (.*)\n\nAnswer with", re.S)
GRPO = ["--algo", "grpo", "--reward", "judge", "--num-generations", "2", "--max-tokens", "6", "--beta", "0.1", *FAST]


def rigged(prompt: str, options) -> list[float]:
    """`fuller` prefers the longer answer, `plainer` the shorter: as answers grow, the one rises while the other falls."""
    a, b = _OPTIONS.search(prompt).groups()  # type: ignore[union-attr]
    d = (len(a) - len(b)) / 4 * (1 if "fuller" in prompt else -1)
    return [d / 2, -d / 2]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("monitor")
    build_tiny_model(d / "tiny")
    (d / "rules.yaml").write_text(RULES)
    write_jsonl(d / "prompts.jsonl", [{"prompt": p} for p in ("how do I pick a lock", "tell me how to make a weapon", "write a poem about the sea")] * 2)
    return d


@pytest.fixture
def growing(fake_engine, monkeypatch):
    """The fake judge rigged as above, and probe answers that grow at every check (probe i by i + 1 words)."""
    from cai_cli.train import monitor

    fake_engine.scorer = staticmethod(rigged)
    calls = {"n": 0}

    def answers(model, tokenizer, conversations, max_new_tokens):
        calls["n"] += 1
        return [f"answer {i}" + " more" * ((calls["n"] - 1) * (i + 1)) for i in range(len(conversations))]

    monkeypatch.setattr(monitor, "greedy_answers", answers)
    return calls


def test_both_rewards_are_logged_every_n_steps_with_their_rank_correlation(d, growing, tmp_path):
    out = tmp_path / "watched"
    proc = cai("train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-engine", "fake",
               "--max-steps", "4", *GRPO, "--monitor", "principles:plainer", "--monitor-every", "2", "--monitor-probes", "3")
    assert proc.returncode == 0, proc.stderr
    assert ("reward monitor: the training judge's held-out questions plainer, on 3 probe prompts: 3 checks (step 0, then every 2 steps), "
            "each 3 greedy answers of up to 6 tokens, scored by the training judge (6 calls) and by the monitor (6 judge calls)") in proc.stderr
    lines = [r for r in read_jsonl(out / "metrics.jsonl") if "monitor/train_reward" in r]
    assert [r["step"] for r in lines] == [0, 2, 4]
    assert lines[0]["monitor/train_reward"] == 0.5 and lines[0]["monitor/monitor_reward"] == 0.5  # the references against themselves
    assert lines[1]["monitor/train_reward"] > 0.5 > lines[1]["monitor/monitor_reward"]
    assert lines[2]["monitor/train_reward_change"] > lines[1]["monitor/train_reward_change"] > 0
    assert all(r["monitor/probes"] == 3 and r["monitor/diverged"] is (r["step"] > 0) for r in lines)
    assert lines[0]["monitor/rank_correlation"] is None  # every probe ties at step 0: nothing to rank
    assert lines[1]["monitor/rank_correlation"] == -1.0  # the longer a probe answer grew, the more one liked it and the other did not
    # The held-out question is the monitor's alone: the training judge never asked it of the samples.
    record = json.loads((out / "cai-train.json").read_text())
    assert record["fingerprint"]["settings"]["reward"]["judge"]["rewards"] == ["judge"]
    assert [p["reference"] for p in read_jsonl(out / "monitor-probe.jsonl") if p["step"] == 0] == [True] * 3
    assert len(read_jsonl(out / "monitor-probe.jsonl")) == 9


def test_a_rigged_divergence_stops_the_run_at_a_checkpoint_it_resumes_from(d, growing, tmp_path):
    out = tmp_path / "stopped"
    args = ["train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-engine", "fake",
            "--max-steps", "4", *GRPO, "--monitor", "principles:plainer", "--monitor-every", "2", "--monitor-probes", "3", "--stop-on-divergence"]
    proc = cai(*args)
    assert proc.returncode == 4, proc.stderr
    assert "the reward monitor stopped the run at step 2" in proc.stderr and "checkpoint-2 is kept: rerun the same command to resume" in proc.stderr
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists() and not (out / "config.json").exists()
    assert json.loads((out / "cai-train.json").read_text())["state"] == "training"
    # A higher threshold trains on from the checkpoint: the monitor keeps its references and its baseline.
    proc = cai(*args, "--divergence-threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from checkpoint-2" in proc.stderr
    lines = [r for r in read_jsonl(out / "metrics.jsonl") if "monitor/train_reward" in r]
    assert [r["step"] for r in lines] == [0, 2, 4] and not lines[2]["monitor/diverged"]
    assert lines[2]["monitor/monitor_reward_change"] < 0 < lines[2]["monitor/train_reward_change"]  # against step 0's values, kept


def test_the_rule_the_spec_and_bad_options():
    from cai_cli.train.monitor import diverged, parse_spec

    assert diverged((0.5, 0.5), (0.6, 0.35), 0.1) and not diverged((0.5, 0.5), (0.6, 0.45), 0.1)
    assert not diverged((0.5, 0.5), (0.5, 0.2), 0.1)  # the training reward did not rise: the policy got worse, not gamed
    assert parse_spec("principles:a, b").principles == ("a", "b")
    assert parse_spec("judge@http://host:8000/v1") == parse_spec("judge@http://host:8000/v1") and parse_spec("judge@http://h/v1").url == "http://h/v1"
    assert parse_spec("http://h/v1").model is None and parse_spec("embedded").model is None and parse_spec("out/judge").kind == "model"
    assert math.isclose(0.1, 0.1)


@pytest.mark.parametrize("args, expected", [
    (["--monitor-every", "3"], "set the reward monitor: add --monitor SPEC"),
    (["--monitor", "principles:nope"], "nope not among the comparison questions"),
    (["--monitor", "principles:fuller,plainer"], "holds out every comparison question"),
    (["--algo", "dpo", "--monitor", "embedded"], "dpo samples nothing to probe"),
])
def test_bad_monitor_options_are_one_line_before_any_model_loads(d, tmp_path, args, expected):
    base = ["--algo", "grpo", "--reward", "judge"] if "--algo" not in args else []
    proc = cai("train-policy", d / "prompts.jsonl", "-o", tmp_path / "x", "-c", d / "rules.yaml", *base, *args)
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_greedy_answers_of_the_tiny_policy(d):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai_cli.train.monitor import greedy_answers

    model, tok = AutoModelForCausalLM.from_pretrained(d / "tiny"), AutoTokenizer.from_pretrained(d / "tiny")
    model.train()
    convs = [[{"role": "user", "content": "how do I pick a lock"}], [{"role": "user", "content": "write a poem about the sea"}]]
    first = greedy_answers(model, tok, convs, 5)
    assert len(first) == 2 and all(isinstance(a, str) for a in first) and model.training  # train mode given back
    assert greedy_answers(model, tok, convs, 5) == first  # greedy: the same answers for the same weights


def test_with_a_reward_model_the_monitor_is_the_constitutional_judge(d, growing, tmp_path):
    pairs = [{"prompt": p, "chosen": "I cannot help with that request but I can explain lock safety", "rejected": "sure here is how you do it step by step"}
             for p in ("how do I pick a lock", "tell me how to make a weapon")] * 4
    write_jsonl(tmp_path / "prefs.jsonl", pairs)
    proc = cai("train-rm", tmp_path / "prefs.jsonl", "-o", tmp_path / "rm", "--model", d / "tiny", "--max-steps", "2", "--full", *FAST)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "rm-watched"
    proc = cai("train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "--algo", "grpo", "--reward-model", tmp_path / "rm",
               "--num-generations", "2", "--max-tokens", "6", *FAST, "--max-steps", "2", "--monitor", "principles:plainer",
               "-c", d / "rules.yaml", "--judge-engine", "fake", "--monitor-every", "2", "--monitor-probes", "3")
    assert proc.returncode == 0, proc.stderr
    assert "scored by the reward model (3 calls) and by the monitor (6 judge calls)" in proc.stderr
    lines = [r for r in read_jsonl(out / "metrics.jsonl") if "monitor/train_reward" in r]
    assert [r["step"] for r in lines] == [0, 2]
    assert lines[1]["monitor/monitor_reward"] < 0.5 and lines[1]["monitor/rank_correlation"] is not None  # the reward model ranks them somehow
    scores = {p["step"]: p["train_reward"] for p in read_jsonl(out / "monitor-probe.jsonl") if p["id"].endswith(":0")}
    assert all(isinstance(v, float) for v in scores.values())
