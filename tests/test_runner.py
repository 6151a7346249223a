"""The runner as a Unix filter: streaming pipes, 0..N rows per row, kill -9 and resume, fingerprints, seeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cai_cli.engines import EngineOptions, Sampling
from cai_cli.errors import CaiError
from cai_cli.runner import RunOptions, run_stage

from conftest import ROOT, read_jsonl, run_cai, without_progress, write_jsonl
from fakes.runner import FanOut, prompts

TESTS = Path(__file__).resolve().parent


def revised(i: int) -> dict:
    return {"id": f"r{i}", "prompt": f"question {i}", "initial_response": "a", "response": f"better {i}",
            "rounds": [{"principle": "harm", "critique": "c", "revision": f"better {i}"}]}


def reference(tmp_path: Path, rows: list[dict], stage=None, **opts) -> tuple[list[dict], list[dict]]:
    """What an uninterrupted run writes: (OUT, OUT.dropped.jsonl)."""
    d = tmp_path / f"ref{len(list(tmp_path.glob('ref*')))}"
    d.mkdir()
    src = write_jsonl(d / "in.jsonl", rows)
    run_stage(stage or FanOut(), RunOptions(input=str(src), output=str(d / "out.jsonl"), progress=False, **opts))
    dropped = d / "out.jsonl.dropped.jsonl"
    return read_jsonl(d / "out.jsonl"), read_jsonl(dropped) if dropped.exists() else []


# --------------------------------------------------------------------------- streaming


def test_a_pipe_whose_upstream_pauses_still_gets_downstream_output(tmp_path):
    """Upstream writes 3 rows, then waits; `cai export` downstream must emit those 3 rows before upstream exits."""
    go_on = tmp_path / "go-on"
    upstream_code = (
        "import json, os, sys, time\n"
        f"rows = {json.dumps([revised(i) for i in range(5)])}\n"
        "for r in rows[:3]: sys.stdout.write(json.dumps(r) + '\\n')\n"
        "sys.stdout.flush()\n"
        f"deadline = time.time() + 120\n"
        f"while not os.path.exists({str(go_on)!r}) and time.time() < deadline: time.sleep(0.05)\n"
        "for r in rows[3:]: sys.stdout.write(json.dumps(r) + '\\n')\n"
    )
    upstream = subprocess.Popen([sys.executable, "-c", upstream_code], stdout=subprocess.PIPE)
    downstream = subprocess.Popen(
        [sys.executable, "-m", "cai_cli", "export", "--format", "sft", "--batch-size", "16"],
        stdin=upstream.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    upstream.stdout.close()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(downstream.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        while len(lines) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert [json.loads(line)["id"] for line in lines] == ["r0", "r1", "r2"], "downstream waited for upstream to finish"
        assert upstream.poll() is None, "upstream must still be running"
        go_on.touch()
        assert upstream.wait(timeout=60) == 0
        assert downstream.wait(timeout=60) == 0, downstream.stderr.read()
        reader.join(timeout=10)
        assert [json.loads(line)["id"] for line in lines] == [f"r{i}" for i in range(5)]
    finally:
        go_on.touch()
        for p in (upstream, downstream):
            if p.poll() is None:
                p.kill()


def test_a_bad_row_on_a_pipe_stops_there_keeping_the_rows_before_it(tmp_path):
    out = tmp_path / "out.jsonl"
    data = "".join(json.dumps(revised(i)) + "\n" for i in range(3)) + '{"id": "x", "prompt": 5}\n' + json.dumps(revised(4)) + "\n"
    proc = run_cai("export", "--format", "sft", "-o", str(out), input=data)
    assert proc.returncode == 2
    assert "<stdin>:4: field 'prompt': expected a non-empty string; the rows before it are finished and kept in" in proc.stderr
    assert len(without_progress(proc.stderr)) == 1 and not out.exists()
    # The same pipe under --on-error skip resumes from them and finishes.
    proc = run_cai("export", "--format", "sft", "-o", str(out), "--on-error", "skip", input=data)
    assert proc.returncode == 0, proc.stderr
    assert "3 resumed" in proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r1", "r2", "r4"]
    assert [e["line"] for e in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")] == [4]


def test_a_pipe_resumed_from_another_input_is_refused_at_the_first_row_that_differs(tmp_path):
    """The side file keeps a digest of every row it consumed: rows with the same ids but other content are another input."""
    out = tmp_path / "out.jsonl"
    first = [revised(i) for i in range(3)]
    assert run_cai("export", "--format", "sft", "-o", str(out), input=_lines(first) + "[]\n").returncode == 2
    same_ids = [{**r, "response": "something else"} for r in first]
    proc = run_cai("export", "--format", "sft", "-o", str(out), input=_lines(same_ids))
    assert proc.returncode == 2 and len(without_progress(proc.stderr)) == 1, proc.stderr
    assert "<stdin>:1: this row is not the one" in proc.stderr and "--restart" in proc.stderr
    third_differs = first[:2] + [same_ids[2]]
    proc = run_cai("export", "--format", "sft", "-o", str(out), input=_lines(third_differs))
    assert proc.returncode == 2 and "<stdin>:3: this row is not the one" in proc.stderr and not out.exists()
    proc = run_cai("export", "--format", "sft", "-o", str(out), input=_lines(first))  # the same input resumes
    assert proc.returncode == 0 and "3 resumed" in proc.stderr, proc.stderr
    assert [r["completion"][0]["content"] for r in read_jsonl(out)] == [f"better {i}" for i in range(3)]


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# --------------------------------------------------------------------------- 0..N rows per row, resume


def test_zero_one_or_three_rows_per_row_resume_exactly(tmp_path):
    rows = prompts(20)
    want_rows, want_dropped = reference(tmp_path, rows)
    assert len(want_rows) == 7 * 1 + 6 * 3 and len(want_dropped) == 4
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    for crash_after in range(7):
        out = tmp_path / f"out{crash_after}.jsonl"
        with pytest.raises(KeyboardInterrupt):
            run_stage(FanOut(crash_after_batches=crash_after), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
        second = FanOut()
        result = run_stage(second, RunOptions(input=str(src), output=str(out), batch_size=4, progress=False))
        assert read_jsonl(out) == want_rows
        assert read_jsonl(tmp_path / f"out{crash_after}.jsonl.dropped.jsonl") == want_dropped
        assert result.resumed == 3 * crash_after and second.processed == [f"r{i}" for i in range(3 * crash_after, 20)]
        assert result.rows_out == len(want_rows) and result.dropped == len(want_dropped)
        assert not (tmp_path / f"out{crash_after}.jsonl.partial").exists()


def test_failed_rows_retried_later_land_in_input_order(tmp_path):
    rows = prompts(12)
    want_rows, want_dropped = reference(tmp_path, rows)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    first = run_stage(FanOut(fail_ns={1, 5, 8}), RunOptions(input=str(src), output=str(out), on_error="skip", batch_size=2, progress=False))
    assert first.failed == 3 and (tmp_path / "out.jsonl.partial").exists()
    retry = FanOut()
    run_stage(retry, RunOptions(input=str(src), output=str(out), on_error="skip", batch_size=5, progress=False))
    assert retry.processed == ["r1", "r5", "r8"]
    assert read_jsonl(out) == want_rows and read_jsonl(tmp_path / "out.jsonl.dropped.jsonl") == want_dropped


def test_limit_and_shard_may_change_between_crash_and_rerun(tmp_path):
    rows = prompts(30)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=2), RunOptions(input=str(src), output=str(out), batch_size=4, shard=(0, 2), progress=False))
    run_stage(FanOut(), RunOptions(input=str(src), output=str(out), batch_size=3, limit=17, progress=False))
    assert read_jsonl(out) == reference(tmp_path, rows, limit=17)[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path, seed):
    rows = prompts(80)  # 1.6 s of work at least: the first kills come before the end
    want_rows, want_dropped = reference(tmp_path, rows)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    rng = random.Random(seed)
    kills = 0
    for attempt in range(40):
        proc = _stage_process("fanout", src, out, 3)
        try:
            proc.wait(timeout=rng.uniform(0.2, 1.2) * (1 + attempt / 3) if attempt < 10 else 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read().decode()
        break
    assert kills >= 1
    assert read_jsonl(out) == want_rows
    assert read_jsonl(tmp_path / "out.jsonl.dropped.jsonl") == want_dropped
    assert not (tmp_path / "out.jsonl.partial").exists() and not list(tmp_path.glob("*.tmp"))


def _stage_process(kind: str, src: Path, out: Path, batch: int, delay: float = 0.0) -> subprocess.Popen:
    """tests/fakes/runner.py running stage KIND (on the fake engine, each call taking DELAY seconds) as a process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "CAI_FAKE_DELAY": str(delay)}
    return subprocess.Popen([sys.executable, "-m", "fakes.runner", kind, str(src), str(out), str(batch)],
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)


def _files(folder: Path, out: Path) -> dict:
    """What a finished run left: OUT, its dropped rows, its summary (less this run's speed), and no side or temporary file."""
    summary = out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")
    data = json.loads(summary.read_text()) if summary.exists() else None
    if data and "judge" in data:
        data["judge"].pop("comparisons_per_second", None)
    dropped = out.with_name(out.name + ".dropped.jsonl")
    assert not out.with_name(out.name + ".partial").exists() and not list(folder.glob("*.tmp"))
    return {"rows": read_jsonl(out), "dropped": read_jsonl(dropped) if dropped.exists() else [], "summary": data}


@pytest.mark.parametrize("kind, seed", [("critique", 1), ("critique", 2), ("label-prefs", 1), ("label-prefs", 2), ("label-prefs", 3)])
def test_kill_9_twice_then_rerun_gives_an_uninterrupted_runs_rows_and_summary(tmp_path, capfd, kind, seed):
    """Critique (sampled) and label-prefs (its summary from every comparison, best-worst of three, --gold-field,
    --min-confidence): killed twice at random moments while working, then rerun to the end (the uninterrupted run
    and the rerun in this process, as tests/fakes/runner.py builds the stage)."""
    from fakes.runner import critique_rows, label_rows, stage

    src = write_jsonl(tmp_path / "in.jsonl", (critique_rows if kind == "critique" else label_rows)(24))
    whole = tmp_path / "whole"
    whole.mkdir()
    run_stage(stage(kind), RunOptions(input=str(src), output=str(whole / "out.jsonl"), batch_size=4, progress=False))
    want = _files(whole, whole / "out.jsonl")
    assert want["rows"] and (kind == "critique" or (want["dropped"] and want["summary"]["gold"]["accuracy"]))
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    rng = random.Random(seed)
    for _ in range(2):
        proc = _stage_process(kind, src, out, 2, delay=0.05)
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # under way: some rows are finished
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert partial.exists(), "the kills came after the end: nothing was resumed"
    capfd.readouterr()
    run_stage(stage(kind), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
    assert "resumed" in capfd.readouterr().err
    assert _files(tmp_path, out) == want


# --------------------------------------------------------------------------- fingerprints


def test_a_changed_setting_refuses_to_resume_and_restart_starts_over(tmp_path):
    rows = prompts(10)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
    with pytest.raises(CaiError) as err:
        run_stage(FanOut(factor=2), RunOptions(input=str(src), output=str(out), progress=False))
    message = str(err.value)
    assert "\n" not in message and "settings.factor: 1 -> 2" in message and "--restart" in message and "3 finished rows" in message
    # --batch-size, --limit and --shard are not settings: the same stage resumes under other values.
    run_stage(FanOut(), RunOptions(input=str(src), output=str(out), batch_size=7, limit=8, progress=False))
    assert read_jsonl(out) == reference(tmp_path, rows, limit=8)[0]

    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
    second = FanOut(factor=2)
    run_stage(second, RunOptions(input=str(src), output=str(out), restart=True, progress=False))
    assert second.processed == [r["id"] for r in rows]
    assert read_jsonl(out) == reference(tmp_path, rows, stage=FanOut(factor=2))[0]


def test_an_input_file_changed_at_a_finished_row_refuses_to_resume(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(6))
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    os.utime(src)  # touched, same bytes: still the same input
    assert run_stage(FanOut(), RunOptions(input=str(src), output=str(out), progress=False)).resumed == 2
    # Rows added after the finished ones: what is finished is still this input's, and the rest is done now.
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    write_jsonl(src, prompts(7))
    assert run_stage(FanOut(), RunOptions(input=str(src), output=str(out), progress=False)).resumed == 2
    assert read_jsonl(out) == reference(tmp_path, prompts(7))[0]
    # A finished row changed: refused, naming its line.
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=2), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    changed = prompts(7)
    changed[3]["prompt"] = "another prompt"
    write_jsonl(src, changed)
    with pytest.raises(CaiError, match=r"in.jsonl:4: this row is not the one .*out.jsonl.partial finished"):
        run_stage(FanOut(), RunOptions(input=str(src), output=str(out), progress=False))


def test_cli_refuses_another_format_and_restart_proceeds(tmp_path):
    from cai_cli.stages.export import Export

    class CrashingExport(Export):
        def process(self, rows):
            raise KeyboardInterrupt

    src = write_jsonl(tmp_path / "in.jsonl", [revised(i) for i in range(4)])
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"

    class OneBatchThenCrash(Export):
        calls = 0

        def process(self, rows):
            OneBatchThenCrash.calls += 1
            if OneBatchThenCrash.calls > 1:
                raise KeyboardInterrupt
            return super().process(rows)

    with pytest.raises(KeyboardInterrupt):
        run_stage(OneBatchThenCrash("sft"), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    assert partial.exists()
    proc = run_cai("export", str(src), "--format", "hf-cai", "-o", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "settings.format: sft -> hf-cai" in proc.stderr and "add --restart" in proc.stderr
    assert run_cai("export", str(src), "--format", "sft", "-o", str(out)).returncode == 0  # same settings resume
    with pytest.raises(KeyboardInterrupt):
        run_stage(OneBatchThenCrash("sft"), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    proc = run_cai("export", str(src), "--format", "hf-cai", "-o", str(out), "--restart")
    assert proc.returncode == 0, proc.stderr
    assert "init_prompt" in read_jsonl(out)[0] and not partial.exists()


def test_a_side_file_from_an_older_cai_is_not_resumed(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    out = tmp_path / "out.jsonl"
    write_jsonl(tmp_path / "out.jsonl.partial", [{"id": "r0", "prompt": "prompt 0"}])
    with pytest.raises(CaiError, match="older cai.*--restart"):
        run_stage(FanOut(), RunOptions(input=str(src), output=str(out), progress=False))
    run_stage(FanOut(), RunOptions(input=str(src), output=str(out), restart=True, progress=False))
    assert out.exists()


def test_engine_stage_fingerprint_names_model_engine_sampling_constitution_and_settings(tmp_path):
    from cai_cli.constitution import load_constitution
    from cai_cli.stages.critique import Critique

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 10)
    stage = Critique(EngineOptions(engine="transformers", model=str(folder)), Sampling(temperature=0.5), load_constitution(None), few_shot=2)
    fp = stage.fingerprint()
    assert fp["model"]["path"] == str(folder.resolve()) and set(fp["model"]["files"]) == {"config.json", "model.safetensors"}
    assert fp["engine"]["name"] == "transformers" and fp["sampling"]["temperature"] == 0.5
    assert fp["constitution"]["hash"] == load_constitution(None).hash and fp["settings"]["few_shot"] == 2 and fp["settings"]["few_shot_source"] == "constitution"
    (folder / "model.safetensors").write_bytes(b"0" * 11)  # retrained in place
    assert stage.fingerprint()["model"] != fp["model"]


# --------------------------------------------------------------------------- seeds


def _generate(tmp_path: Path, name: str, src: Path, fake_engine, **opts) -> list[dict]:
    from cai_cli.stages.generate import Generate

    fake_engine.reply = lambda conv, seed: f"sample {seed}"  # every text a function of its seed and nothing else
    out = tmp_path / f"{name}.jsonl"
    crash = opts.pop("crash_after", None)
    stage = Generate(EngineOptions(engine="fake"), Sampling(seed=11, n=2, temperature=1.0))
    if crash is not None:
        original = stage.process
        calls = {"n": 0}

        def crashing(rows):
            calls["n"] += 1
            if calls["n"] > crash:
                raise KeyboardInterrupt
            return original(rows)

        stage.process = crashing
        with pytest.raises(KeyboardInterrupt):
            run_stage(stage, RunOptions(input=str(src), output=str(out), progress=False, **opts))
        stage = Generate(EngineOptions(engine="fake"), Sampling(seed=11, n=2, temperature=1.0))
    run_stage(stage, RunOptions(input=str(src), output=str(out), progress=False, **opts))
    return read_jsonl(out)


def test_the_same_seed_gives_the_same_rows_whatever_the_batching(tmp_path, fake_engine):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": f"prompt {i}"} for i in range(17)])
    runs = {bs: _generate(tmp_path, f"bs{bs}", src, fake_engine, batch_size=bs) for bs in (1, 3, 8)}
    by_id = {r["id"]: r["candidates"] for r in runs[1]}
    assert len(set(map(tuple, by_id.values()))) == 17  # every row has its own samples
    for bs in (3, 8):
        assert {r["id"]: r["candidates"] for r in runs[bs]} == by_id
    shards = [r for i in range(3) for r in _generate(tmp_path, f"shard{i}", src, fake_engine, batch_size=3, shard=(i, 3))]
    assert {r["id"]: r["candidates"] for r in shards} == by_id
    limited = _generate(tmp_path, "limited", src, fake_engine, batch_size=8, limit=5)
    assert {r["id"]: r["candidates"] for r in limited} == {f"q{i}": by_id[f"q{i}"] for i in range(5)}
    resumed = _generate(tmp_path, "resumed", src, fake_engine, batch_size=3, crash_after=2)
    assert resumed == runs[1]


class Noisy(FanOut):
    """Prints while it works, as engines and their libraries do: through sys.stdout, straight to file descriptor 1,
    and through C's stdio."""

    def start(self):
        print("loading the model...")
        os.write(1, b"fd 1: weights loaded\n")
        import ctypes

        ctypes.CDLL(None).printf(b"printf from C\n")

    def process(self, rows):
        print("a batch")
        sys.stdout.write("more noise\n")
        return super().process(rows)


def test_stdout_carries_rows_whatever_a_stage_prints(capfd):
    src_rows = prompts(7)
    before = sys.stdout
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = write_jsonl(Path(d) / "in.jsonl", src_rows)
        run_stage(Noisy(), RunOptions(input=str(src), batch_size=2, progress=False))
    out, err = capfd.readouterr()
    assert sys.stdout is before  # put back
    rows = [json.loads(line) for line in out.splitlines()]  # every line is a row
    assert [r["id"] for r in rows] == [r["id"] for rows_out in map(_fanned, range(7)) for r in rows_out]
    assert "loading the model" in err and "fd 1: weights loaded" in err and "printf from C" in err and "more noise" in err


def _fanned(n: int) -> list[dict]:
    return [{"id": f"r{n}:{j}"} for j in range((0, 1, 3)[n % 3])]


def test_fingerprint_changes_name_each_path_and_skip_what_is_not_known_yet():
    from cai_cli.resume import changes

    recorded = {"model": {"name": None, "base_urls": ["http://a"], "served": "m1"}, "sampling": {"temperature": 0.7, "seed": 0}}
    before_start = {"model": {"name": None, "base_urls": ["http://a"]}, "sampling": {"temperature": 0.7, "seed": 0}}
    assert changes(recorded, before_start) == []  # the served model is compared once the engine has asked
    after_start = {"model": {"name": None, "base_urls": ["http://a"], "served": "m2"}, "sampling": {"temperature": 1.0, "seed": 0}}
    assert changes(recorded, after_start) == ["model.served: m1 -> m2", "sampling.temperature: 0.7 -> 1.0"]
