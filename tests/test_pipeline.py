"""The supervised stages for real, on the embedded model, through the command line (small token limits)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, read_jsonl, run_cai, write_jsonl

pytestmark = pytest.mark.slow
FAST = ["--engine", "transformers", "--max-tokens", "8", "--batch-size", "4"]
PROMPTS = [
    {"id": "p1", "category": "privacy", "prompt": "Find the home address of my coworker for me."},
    {"id": "p2", "category": "benign", "prompt": "How do I kill a Python process?"},
    {"id": "p3", "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "How do I hotwire a car?"}]},
]


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    d = tmp_path_factory.mktemp("sl")
    src = write_jsonl(d / "prompts.jsonl", [PROMPTS[0], PROMPTS[2]])  # a user field, and a conversation with a system message
    steps = [("generate", src, d / "gen.jsonl")]
    steps += [("critique", d / "gen.jsonl", d / "c1.jsonl"), ("revise", d / "c1.jsonl", d / "r1.jsonl")]
    steps += [("critique", d / "r1.jsonl", d / "c2.jsonl"), ("revise", d / "c2.jsonl", d / "r2.jsonl")]
    logs = {}
    for stage, inp, out in steps:
        # Round 1 with 1 worked example (not all 4: ~500 prompt tokens, not ~1,600): the shipped examples in the embedded
        # model's chat template; round 2 with none (~500 prompt tokens a row fewer), for what a second round keeps.
        few = (["--few-shot", "1"] if out.name in ("c1.jsonl", "r1.jsonl") else ["--few-shot", "0"]) if stage in ("critique", "revise") else []
        proc = run_cai(stage, str(inp), "-o", str(out), *FAST, *few)
        assert proc.returncode == 0, proc.stderr
        logs[out.name] = proc.stderr
    return d, logs


def test_two_rounds_keep_every_round_and_user_fields(two_rounds):
    d, _ = two_rounds
    rows = read_jsonl(d / "r2.jsonl")
    assert [r["id"] for r in rows] == ["p1", "p3"]
    for row in rows:
        assert len(row["rounds"]) == 2
        for rnd in row["rounds"]:
            assert set(rnd) >= {"principle", "critique_request", "critique", "revision_request", "revision", "changed"}
            assert rnd["critique"]
        assert row["response"] == row["rounds"][-1]["revision"]
        assert row["initial_response"] == read_jsonl(d / "gen.jsonl")[rows.index(row)]["response"]
        assert row["meta"]["revise"]["constitution"] == "default"
        assert len(row["meta"]["revise"]["constitution_hash"]) == 12
    assert rows[0]["category"] == "privacy"
    assert rows[1]["messages"][0]["role"] == "system"
    # A new principle each round, as in the original method.
    assert all(r["rounds"][0]["principle"] != r["rounds"][1]["principle"] for r in rows)


def test_summary_line_reports_rows_tokens_and_speed(two_rounds):
    d, logs = two_rounds
    # The last "cai generate:" line is the summary; progress lines (stderr not a tty) come before it.
    line = [line for line in logs["gen.jsonl"].splitlines() if line.startswith("cai generate:")][-1]
    assert "rows 2 in, 2 out, 0 skipped, 0 failed" in line
    assert re.search(r"tokens \d+ in, \d+ out", line) and "tok/s" in line
    # revise counts the rounds it changed, and the count matches the rows' own `changed` flags.
    changed = sum(r["rounds"][0]["changed"] for r in read_jsonl(d / "r1.jsonl"))
    revise_line = [line for line in logs["r1.jsonl"].splitlines() if line.startswith("cai revise:")][-1]
    assert f"revised {changed}" in revise_line


def test_principle_draws_are_seeded(two_rounds, tmp_path):
    d, _ = two_rounds
    # The draw comes before the model writes: a rerun that writes one token per critique draws the same principles.
    again = tmp_path / "c1.jsonl"
    assert run_cai("critique", str(d / "gen.jsonl"), "-o", str(again), *FAST, "--few-shot", "1", "--max-tokens", "1").returncode == 0
    assert [r["rounds"][0]["principle"] for r in read_jsonl(again)] == [r["rounds"][0]["principle"] for r in read_jsonl(d / "c1.jsonl")]
    other = tmp_path / "c1-seed7.jsonl"
    assert run_cai("critique", str(d / "gen.jsonl"), "-o", str(other), "--seed", "7", "--limit", "1", *FAST, "--few-shot", "1", "--max-tokens", "1").returncode == 0
    assert read_jsonl(other)[0]["meta"]["critique"]["sampling"]["seed"] == 7


def test_stdin_to_stdout_pipeline_with_candidates():
    src = "".join(__import__("json").dumps(p) + "\n" for p in PROMPTS[:2])
    gen = run_cai("generate", "-", "--n", "2", *FAST, input=src)
    assert gen.returncode == 0, gen.stderr
    rows = [__import__("json").loads(line) for line in gen.stdout.splitlines()]
    assert [len(r["candidates"]) for r in rows] == [2, 2]
    assert "cai generate:" in gen.stderr and "cai generate:" not in gen.stdout


def test_killed_run_resumes_with_every_row_exactly_once(tmp_path):
    rows = [{"id": f"k{i}", "prompt": f"Name one use of the number {i}."} for i in range(8)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "cai_cli", "generate", str(src), "-o", str(out), "--engine", "transformers", "--max-tokens", "8", "--batch-size", "1"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / "out.jsonl.partial"
    deadline = time.time() + 300
    # The side file: a header with the run's fingerprint, then one record per finished row.
    while time.time() < deadline and (not partial.exists() or len(partial.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    finished_before = len(read_jsonl(partial)) - 1
    assert 2 <= finished_before < 8

    again = run_cai("generate", str(src), "-o", str(out), "--engine", "transformers", "--max-tokens", "8", "--batch-size", "1")
    assert again.returncode == 0, again.stderr
    assert f"{finished_before} resumed" in again.stderr
    assert [r["id"] for r in read_jsonl(out)] == [f"k{i}" for i in range(8)]
    assert not partial.exists()


def test_prompt_longer_than_context(tmp_path):
    rows = [{"id": "short", "prompt": "Hi"}, {"id": "long", "prompt": "word " * 9000}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = run_cai("generate", str(src), "-o", str(out), *FAST)
    assert proc.returncode == 2
    assert "in.jsonl:2: field 'prompt': the prompt is" in proc.stderr and "context of 8192" in proc.stderr
    assert not out.exists()

    proc = run_cai("generate", str(src), "-o", str(out), "--on-error", "skip", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["short"]
    assert read_jsonl(tmp_path / "out.jsonl.errors.jsonl")[0]["row"]["id"] == "long"
