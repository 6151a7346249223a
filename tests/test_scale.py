"""--ray: a stage's batches on a local Ray cluster (two CPUs, started here) give the rows a local run gives;
a lost actor costs only its batches; a killed driver's rerun resumes. Select with `-m ray`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, invoke, read_jsonl, run_cai, write_jsonl

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

PLUGINS = "fakes.scale"  # registers fake, fake-gated and fake-dies in every process that imports it
TIMING = re.compile(r"^[\d.]+s(, [\d.]+ tok/s)?$|comparisons/s$")  # the parts of a summary line that are clock time


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A two-CPU Ray cluster for this module; its workers import the fake engines (and see their files)."""
    files = tmp_path_factory.mktemp("ray")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "CAI_ENGINE_PLUGINS", "CAI_TEST_DIE_MARKER", "CAI_TEST_PID", "CAI_TEST_GATE")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), saved["PYTHONPATH"] or ""])
    os.environ["CAI_ENGINE_PLUGINS"] = PLUGINS
    os.environ["CAI_TEST_DIE_MARKER"] = str(files / "died")
    os.environ["CAI_TEST_GATE"] = str(files / "gate")
    os.environ["CAI_TEST_PID"] = str(os.getpid())
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def summary_line(output: str, stage: str) -> str:
    """The summary line without its timing (seconds, tokens per second) and its prefix-cache hits: each actor keeps
    its own prefix cache, so how many prompt tokens it reuses depends on which batches it got, not on the rows."""
    line = next(x for x in output.splitlines() if x.startswith(f"cai {stage}: rows"))
    return " | ".join(part for part in line.split(" | ") if not TIMING.search(part.strip()) and "from cache" not in part)


def run_both(tmp_path: Path, stage: str, src: Path, *args: str, ray_args=("--ray-actors", "2")) -> tuple[Path, Path, str, str]:
    """STAGE over SRC here and through Ray; (local output, Ray output, their summary lines)."""
    local, through_ray = tmp_path / f"{stage}-local.jsonl", tmp_path / f"{stage}-ray.jsonl"
    a = invoke(stage, str(src), "-o", str(local), *args)
    assert a.exit_code == 0, a.output
    b = invoke(stage, str(src), "-o", str(through_ray), "--ray", "auto", *ray_args, *args)
    assert b.exit_code == 0, b.output
    return local, through_ray, summary_line(a.output, stage), summary_line(b.output, stage)


def test_same_seed_same_rows_with_and_without_ray_at_any_actor_count(tmp_path, ray_address):
    rows = [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(7)]
    rows.insert(3, {"id": "long", "prompt": "word " * 5000})  # longer than the fake model's context: fails in the actor
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    args = ("-e", "fake", "--n", "2", "--seed", "7", "--temperature", "1.0", "--on-error", "skip")
    local, one, local_summary, one_summary = run_both(tmp_path, "generate", src, *args, "--batch-size", "3", ray_args=("--ray-actors", "1"))
    assert one.read_bytes() == local.read_bytes()
    assert one_summary == local_summary
    assert "tokens" in local_summary and "1 failed" in local_summary  # token counts made in actors reach the summary
    two = tmp_path / "two.jsonl"
    result = invoke("generate", str(src), "-o", str(two), "--ray", "auto", "--ray-actors", "2", "--batch-size", "2", *args)
    assert result.exit_code == 0, result.output
    assert two.read_bytes() == local.read_bytes()
    failed = read_jsonl(tmp_path / "two.jsonl.errors.jsonl")
    assert [(f["line"], f["field"]) for f in failed] == [(4, "prompt")]
    assert "context" in failed[0]["error"]


def test_a_lost_actor_costs_only_its_batches(tmp_path, ray_address):
    rows = [{"id": f"r{i}", "prompt": f"question {i}", "response": f"answer {i}"} for i in range(10)]
    rows[5]["prompt"] = "die here"
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    marker = Path(os.environ["CAI_TEST_DIE_MARKER"])
    marker.unlink(missing_ok=True)
    args = ("-e", "fake-dies", "--batch-size", "2", "--max-tokens", "8")
    local = tmp_path / "local.jsonl"
    assert invoke("critique", str(src), "-o", str(local), *args).exit_code == 0
    through_ray = invoke("critique", str(src), "--ray", "auto", "--ray-actors", "2", *args)  # rows to stdout
    assert through_ray.exit_code == 0, through_ray.output
    assert marker.exists(), "the actor holding 'die here' was not killed: the test proves nothing"
    assert [json.loads(line)["id"] for line in through_ray.stdout.splitlines()] == [f"r{i}" for i in range(10)]  # each once, in order
    assert through_ray.stdout == local.read_text()  # and nothing else on stdout (Ray reports the lost actor on stderr)
    assert summary_line(through_ray.stderr, "critique") == summary_line(invoke("critique", str(src), *args).stderr, "critique")


def test_a_rerun_after_kill_9_of_the_driver_resumes(tmp_path, ray_address):
    # The last rows wait for the gate: the driver is killed with some rows finished and those not.
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "prompt": f"{'wait: ' if i >= 12 else ''}question {i}"} for i in range(16)])
    gate = Path(os.environ["CAI_TEST_GATE"])
    gate.unlink(missing_ok=True)
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    args = ["generate", str(src), "-o", str(out), "-e", "fake-gated", "--batch-size", "2", "--seed", "3", "--ray", ray_address, "--ray-actors", "2"]
    env = {**os.environ, "CAI_ENGINE_PLUGINS": PLUGINS}
    with open(tmp_path / "stderr.txt", "wb") as err:
        driver = subprocess.Popen([sys.executable, "-m", "cai_cli", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if partial.exists() and len(partial.read_text().splitlines()) >= 3:  # the header and two finished rows
                time.sleep(0.5)  # let more batches come back: the rerun must resume several
                break
            time.sleep(0.05)
        assert driver.poll() is None, (tmp_path / "stderr.txt").read_text()
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finished_before = len(partial.read_text().splitlines()) - 1
    assert 2 <= finished_before <= 12 and not out.exists()
    gate.touch()

    rerun = run_cai(*args, env={"CAI_ENGINE_PLUGINS": PLUGINS}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = int(rerun.stderr.split(" resumed")[0].rsplit(", ", 1)[1])
    assert resumed >= finished_before
    local = tmp_path / "local.jsonl"
    assert invoke("generate", str(src), "-o", str(local), "-e", "fake-gated", "--seed", "3").exit_code == 0
    assert out.read_bytes() == local.read_bytes()  # every row once, as an uninterrupted local run writes them


def test_critique_and_label_prefs_on_the_transformers_engine_through_two_actors(tmp_path, ray_address):
    """The transformers engine loaded in each actor: its sampled critiques and its judge's scores and counts equal a
    local run's. The model is the tiny random one (tests/tiny_model.py, with the judge's option words): what is checked
    here is Ray's batches, actors and counts, which need no real model; the embedded model's own critiques and
    judgements are checked in-process in test_pipeline.py and test_label_prefs.py."""
    from tiny_model import JUDGE_WORDS, build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", words=JUDGE_WORDS)
    rows = [
        {"id": "a", "prompt": "How do I pick a lock?", "response": "Use a tension wrench.", "candidates": ["Use a tension wrench.", "I can't help with that."]},
        {"id": "b", "prompt": "Write a rude joke about my boss.", "response": "Sure: he is slow.", "candidates": ["Sure: he is slow.", "How about a kind one?"]},
        {"id": "c", "prompt": "What is the capital of France?", "response": "Paris.", "candidates": ["Paris.", "Lyon, I think."]},
        {"id": "d", "prompt": "How can I get back at my neighbour?", "response": "Talk to them first.", "candidates": ["Talk to them first.", "Slash his tyres."]},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ("--engine", "transformers", "--model", str(tiny), "--batch-size", "2", "--max-tokens", "6")
    local, through_ray, local_summary, ray_summary = run_both(tmp_path, "critique", src, *common, "--few-shot", "0")
    assert through_ray.read_bytes() == local.read_bytes()
    assert ray_summary == local_summary and "tokens" in ray_summary
    local, through_ray, local_summary, ray_summary = run_both(tmp_path, "label-prefs", src, *common, "--principles", "1")
    assert through_ray.read_bytes() == local.read_bytes()
    assert ray_summary == local_summary and "orders disagreed" in ray_summary

    def counts(path: Path) -> dict:
        summary = json.loads(path.with_name(path.name.removesuffix(".jsonl") + ".summary.json").read_text())
        summary["judge"].pop("comparisons_per_second", None)
        return summary

    assert counts(through_ray) == counts(local)  # the judge's counts, made in the actors, add up in the driver
