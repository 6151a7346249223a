"""Hostile outputs: where a run writes never destroys what the user has (issue 19's output side, issue 18's leaks).

Each case asserts the exit code, the one line the user reads, and that every input and unrelated file is
byte-identical afterwards. Cases that need a full or read-only disk run `cai` in a private mount namespace
(`unshare -rm`, a tmpfs or a read-only bind mount) and are skipped where that is not allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cai_cli.errors import CaiError
from cai_cli.runner import RunOptions, StageStats, run_stage
from cai_cli.stages.base import Stage

from conftest import FAKE_ENV, NOISE_ENV, ROOT, CaiResult, read_jsonl, run_cai, run_cai_process, without_progress, write_jsonl
from fakes.runner import FanOut, prompts

TESTS = Path(__file__).resolve().parent
CONSTITUTION = ROOT / "cai_cli" / "constitutions" / "default.yaml"


def cai(*args: str, stdin=None, stdout=None, env: dict | None = None, cwd: Path = ROOT) -> CaiResult:
    """`cai ARGS` on the fake engine, as a user runs it in CWD (stdin/stdout: open files, or None for pipes), in this
    process."""
    return run_cai(*args, stdin=stdin, stdout=stdout, env={**FAKE_ENV, **(env or {})}, cwd=cwd)


def cai_process(*args: str, env: dict | None = None, timeout: float = 900):
    """`cai ARGS` on the fake engine in a process of its own: for what reaches descriptor 1 from C and at exit."""
    return run_cai_process(*args, stdin=subprocess.DEVNULL, env={**FAKE_ENV, **(env or {})}, timeout=timeout)


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under FOLDER: a file's bytes, a link's target, another node's kind."""
    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        key = str(path.relative_to(folder))
        if stat.S_ISLNK(st.st_mode):
            out[key] = ("link", os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            out[key] = path.read_bytes()
        else:
            out[key] = ("node", stat.S_IFMT(st.st_mode))
    return out


def refused(proc, *words: str) -> str:
    """The run stopped with exit code 2 and one line holding WORDS; returns it."""
    lines = without_progress(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def user_files(tmp_path: Path) -> Path:
    """A folder as a user has it: prompts, revised rows, notes, a constitution of their own."""
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "prompt": f"question {i}", "mine": i} for i in range(4)])
    write_jsonl(tmp_path / "r2.jsonl", [{"id": f"r{i}", "prompt": f"question {i}", "initial_response": "a", "response": f"better {i}",
                                         "rounds": [{"principle": "harm", "critique": "c", "revision": f"better {i}"}]} for i in range(4)])
    (tmp_path / "mynotes.jsonl").write_text('{"note": "mine, keep it"}\n')
    shutil.copy(CONSTITUTION, tmp_path / "mine.yaml")
    return tmp_path


# --------------------------------------------------------------------------- refused before any work


@pytest.mark.parametrize("args, words", [
    (["generate", "in.jsonl", "--limit", "2", "-o", "in.jsonl"], "-o in.jsonl: is the input of this run (in.jsonl)"),
    (["export", "r2.jsonl", "--format", "sft", "-o", "r2.jsonl"], "-o r2.jsonl: is the input of this run (r2.jsonl)"),
    (["generate", "in.jsonl", "-o", "out.jsonl", "--errors", "in.jsonl"], "--errors in.jsonl: is the input of this run"),
    (["generate", "in.jsonl", "--errors", "in.jsonl"], "--errors in.jsonl: is the input of this run"),
    (["generate", "in.jsonl", "-o", "out.jsonl", "--dropped", "in.jsonl"], "--dropped in.jsonl: is the input of this run"),
    (["generate", "in.jsonl", "-o", "out.jsonl", "--errors", "out.jsonl"], "-o and --errors are the same file (out.jsonl)"),
    (["generate", "in.jsonl", "-o", "out.jsonl", "--errors", "out.jsonl.partial"], "the side file and --errors are the same file"),
    (["generate", "in.jsonl", "-o", "out.jsonl", "--dropped", "mynotes.jsonl", "--errors", "mynotes.jsonl"], "--errors and --dropped are the same file"),
    (["label-prefs", "in.jsonl", "-o", "p.jsonl", "--dropped", "p.summary.json"], "--dropped and the summary are the same file"),
    (["critique", "in.jsonl", "-c", "mine.yaml", "-o", "mine.yaml"], "-o mine.yaml: is the constitution of this run"),
    (["generate", "in.jsonl", "-o", "folder"], "-o folder: is a folder"),
    (["generate", "in.jsonl", "-o", "in.jsonl/out.jsonl"], "-o in.jsonl/out.jsonl: a part of this path is a file"),
])
def test_an_output_that_would_destroy_an_input_or_another_output_is_refused(tmp_path, args, words):
    folder = user_files(tmp_path)
    (folder / "folder").mkdir()
    before = snapshot(folder)
    refused(cai(*args, *(["--engine", "fake"] if args[0] != "export" else []), cwd=folder), words)
    assert snapshot(folder) == before


def test_an_output_that_is_the_input_under_another_name_is_refused(tmp_path):
    folder = user_files(tmp_path)
    os.link(folder / "in.jsonl", folder / "hard.jsonl")
    os.symlink(folder / "in.jsonl", folder / "soft.jsonl")
    before = snapshot(folder)
    for other in ("hard.jsonl", "soft.jsonl"):
        refused(cai("generate", str(folder / "in.jsonl"), "-o", str(folder / other), "--engine", "fake"), "is the input of this run")
    with open(folder / "in.jsonl", "rb") as stdin:  # cai generate -o in.jsonl < in.jsonl
        refused(cai("generate", "-o", str(folder / "in.jsonl"), "--engine", "fake", stdin=stdin), "is the input of this run (stdin)")
    with open(folder / "in.jsonl", "ab") as stdout:  # cai generate in.jsonl >> in.jsonl: rows read back as input, forever
        refused(cai("generate", str(folder / "in.jsonl"), "--engine", "fake", stdout=stdout), "stdout: is the input of this run")
    with open(folder / "mynotes.jsonl", "ab") as stdout:  # rows and errors into one file
        refused(cai("generate", str(folder / "in.jsonl"), "--errors", str(folder / "mynotes.jsonl"), "--engine", "fake", stdout=stdout),
                "stdout and --errors are the same file")
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- files the user named


def test_errors_file_of_the_users_is_never_emptied_or_deleted(tmp_path):
    folder = user_files(tmp_path)
    notes = folder / "mynotes.jsonl"
    mine = notes.read_bytes()
    for on_error in ("fail", "skip"):  # no bad row: the notes stay as they are
        proc = cai("generate", str(folder / "in.jsonl"), "-o", str(folder / f"out-{on_error}.jsonl"), "--errors", str(notes), "--on-error", on_error, "--engine", "fake")
        assert proc.returncode == 0, proc.stderr
        assert notes.read_bytes() == mine
    bad = folder / "bad.jsonl"
    bad.write_text('{"id": "b", "prompt": 5}\n' + (folder / "in.jsonl").read_text())
    before = snapshot(folder)
    # Two stages sharing one errors file: each one's bad rows are appended after the user's own lines.
    assert cai("generate", str(bad), "-o", str(folder / "g.jsonl"), "--errors", str(notes), "--on-error", "skip", "--engine", "fake").returncode == 0
    assert cai("export", str(bad), "--format", "sft", "--errors", str(notes), "--on-error", "skip").returncode == 0
    assert notes.read_bytes().startswith(mine)
    added = [json.loads(line) for line in notes.read_bytes()[len(mine):].splitlines()]
    assert [(e["stage"], e["line"]) for e in added] == [("generate", 1), ("export", 1), ("export", 2), ("export", 3), ("export", 4), ("export", 5)]
    changed = {k for k in snapshot(folder) if snapshot(folder).get(k) != before.get(k)}
    assert changed == {"mynotes.jsonl", "g.jsonl"}


def test_a_resume_takes_back_only_what_its_own_earlier_attempt_appended(tmp_path):
    rows = prompts(9)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]) + "not json\n" + "".join(json.dumps(r) + "\n" for r in rows[4:]))
    notes = tmp_path / "mynotes.jsonl"
    notes.write_text('{"note": "mine"}\n')
    out = tmp_path / "out.jsonl"
    opts = {"input": str(src), "output": str(out), "on_error": "skip", "errors": str(notes), "progress": False}
    with pytest.raises(KeyboardInterrupt):  # the bad line and the failed row 1 are written, then the run is killed
        run_stage(FanOut(fail_ns={1}, crash_after_batches=2), RunOptions(batch_size=2, **opts))
    assert [json.loads(line).get("line") for line in notes.read_text().splitlines()] == [None, 5, 2]
    run_stage(FanOut(fail_ns={1}), RunOptions(batch_size=3, **opts))  # row 1 fails again: said once, not twice
    assert [json.loads(line).get("line") for line in notes.read_text().splitlines()] == [None, 5, 2]
    run_stage(FanOut(), RunOptions(batch_size=3, **opts))  # fixed: only the bad line remains, and the user's own
    assert [json.loads(line).get("line") for line in notes.read_text().splitlines()] == [None, 5]


def test_dropped_rows_are_kept_when_writing_to_stdout(tmp_path, fake_engine):
    from fakes.runner import label_rows

    src = write_jsonl(tmp_path / "in.jsonl", label_rows(6))
    args = ["label-prefs", str(src), "--engine", "fake", "--principles", "1"]
    proc = cai(*args)
    dropped = [line for line in proc.stderr.splitlines() if line.startswith("cai: dropped ")]
    assert proc.returncode == 0 and dropped, proc.stderr  # identical candidates: named, one line each
    assert "add --dropped PATH to keep them" in proc.stderr
    kept = tmp_path / "dropped.jsonl"
    proc = cai(*args, "--dropped", str(kept))
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(kept)) == len(dropped) and all(r["dropped"] for r in read_jsonl(kept))
    assert all(json.loads(line) for line in proc.stdout.splitlines())


# --------------------------------------------------------------------------- links, devices, FIFOs


def test_a_link_is_written_through_and_stays_a_link(tmp_path):
    folder = user_files(tmp_path)
    (folder / "data").mkdir()
    target = folder / "data" / "gen.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    (folder / "gen.jsonl").symlink_to(Path("data") / "gen.jsonl")
    proc = cai("generate", str(folder / "in.jsonl"), "-o", str(folder / "gen.jsonl"), "--engine", "fake")
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(folder / "gen.jsonl") == str(Path("data") / "gen.jsonl")
    assert [r["id"] for r in read_jsonl(target)] == ["r0", "r1", "r2", "r3"] and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["gen.jsonl"]


def test_a_device_or_fifo_is_written_to_not_replaced(tmp_path):
    folder = user_files(tmp_path)
    null = folder / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        null = Path("/dev/null")
    fifo = folder / "rows.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        for out in (null, fifo):
            proc = cai("generate", str(folder / "in.jsonl"), "-o", str(out), "--engine", "fake")
            assert proc.returncode == 0, proc.stderr
    finally:
        if reader.is_alive():
            fifo.open("w").close()
        reader.join(timeout=30)
    assert stat.S_ISCHR(os.stat(null).st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [json.loads(line)["id"] for line in got[0].splitlines()] == ["r0", "r1", "r2", "r3"]
    assert not list(folder.glob("*.partial")) and not list(folder.glob("*.tmp"))


def test_a_full_device_is_one_line(tmp_path):
    folder = user_files(tmp_path)
    before = snapshot(folder)
    refused(cai("generate", str(folder / "in.jsonl"), "-o", "/dev/full", "--engine", "fake"), "-o /dev/full", "no space left", "nothing was written")
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- one writer per output


def test_a_second_run_on_the_same_output_stops_at_once_naming_the_first(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(40)])
    out = tmp_path / "out.jsonl"
    first = subprocess.Popen([sys.executable, "-m", "cai_cli", "generate", str(src), "-o", str(out), "--engine", "fake", "--batch-size", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, **FAKE_ENV, "CAI_FAKE_DELAY": "0.2"})
    try:
        partial = tmp_path / "out.jsonl.partial"
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = snapshot(tmp_path)
        started = time.monotonic()
        refused(cai("generate", str(src), "-o", str(out), "--engine", "fake"), f"(pid {first.pid})", "is writing this output")
        assert time.monotonic() - started < 30 and first.poll() is None
        assert snapshot(tmp_path)["in.jsonl"] == before["in.jsonl"] and not out.exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    proc = cai("generate", str(src), "-o", str(out), "--engine", "fake")  # the killed run's lock is gone with it
    assert proc.returncode == 0 and "resumed" in proc.stderr, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == [f"q{i}" for i in range(40)]


def test_a_lock_kept_by_a_child_of_a_killed_run_does_not_block_the_resume(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(40))
    out = tmp_path / "out.jsonl"
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}
    first = subprocess.Popen([sys.executable, "-m", "fakes.runner", f"forking:{pid_file}", str(src), str(out), "2"],
                             stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out.with_name("out.jsonl.partial").stat().st_size if out.with_name("out.jsonl.partial").exists() else 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        proc = subprocess.run([sys.executable, "-m", "fakes.runner", "fanout", str(src), str(out), "3"],
                              stderr=subprocess.PIPE, cwd=ROOT, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        assert read_jsonl(out) and not out.with_name("out.jsonl.partial").exists()
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# --------------------------------------------------------------------------- the disk


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="needs a private mount namespace (unshare -rm)")


def _in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """SCRIPT in a private mount namespace; `$CAI` runs cai on the fake engine."""
    env = {**os.environ, **FAKE_ENV, "CAI": f"{sys.executable} -m cai_cli"}
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, cwd=tmp_path, env=env, timeout=300)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


@needs_unshare
def test_a_read_only_output_folder_is_one_line_before_any_work(tmp_path):
    folder = user_files(tmp_path)
    (folder / "ro").mkdir()
    before = snapshot(folder)
    proc = _in_namespace("mount --bind ro ro && mount -o remount,bind,ro ro && $CAI generate in.jsonl -o ro/out.jsonl --engine fake", folder)
    refused(proc, "ro: cannot write there (Read-only file system)")
    assert snapshot(folder) == before


@needs_unshare
def test_a_full_disk_is_one_line_at_the_start_and_mid_run_keeps_the_finished_rows(tmp_path):
    src = write_jsonl(tmp_path / "fat.jsonl", [{"id": f"q{i}", "prompt": "word " * 2000} for i in range(300)])  # 3 MB
    (tmp_path / "disk").mkdir()
    (tmp_path / "kept").mkdir()
    script = (
        "mount -t tmpfs -o size=64k none disk && $CAI generate fat.jsonl -o disk/out.jsonl --engine fake; echo start=$? >&2; "
        "mount -o remount,size=2m disk && $CAI generate fat.jsonl -o disk/out.jsonl --engine fake --batch-size 8; echo mid=$? >&2; "
        "ls disk >&2; "
        "mount -o remount,size=64m disk && $CAI generate fat.jsonl -o disk/out.jsonl --engine fake --batch-size 8; echo end=$? >&2; "
        "ls disk >&2; cp disk/out.jsonl kept/"
    )
    before = snapshot(tmp_path)
    err = without_progress(_in_namespace(script, tmp_path).stderr)
    assert err[:2] == [err[0], "start=2"] and err[0].startswith("cai: error: disk: only 64 KiB free on its disk"), err
    # Mid-run: one line, the finished rows kept for a resume, no temporary file.
    assert err[2].startswith("cai: error: ") and "no space left on the disk" in err[2] and "kept in disk/out.jsonl.partial" in err[2], err
    assert err[3:5] == ["mid=2", "out.jsonl.partial"], err
    # Room again: the rerun resumes and finishes.
    assert "resumed" in err[5] and err[6:8] == ["end=0", "out.jsonl"], err
    assert [r["id"] for r in read_jsonl(tmp_path / "kept" / "out.jsonl")] == [f"q{i}" for i in range(300)]
    unrelated = lambda files: {k: v for k, v in files.items() if not k.startswith("kept")}  # noqa: E731
    assert unrelated(snapshot(tmp_path)) == unrelated(before) and src.exists()


# --------------------------------------------------------------------------- strict JSON, stdout


class NotANumber(Stage):
    name = "nan"

    def __init__(self):
        self.stats = StageStats()

    def check(self, row):
        pass

    def start(self):
        pass

    def check_loaded(self, row):
        pass

    def process(self, rows):
        return [{**r, "score": float("nan") if r["id"] == "r2" else 1.0} for r in rows]

    def summary(self):
        return ""


def test_a_number_json_cannot_carry_stops_the_run_in_one_line(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(4))
    with pytest.raises(CaiError, match=r"row 'r2': holds a number JSON cannot carry") as err:
        run_stage(NotANumber(), RunOptions(input=str(src), output=str(tmp_path / "out.jsonl"), batch_size=1, progress=False))
    assert "\n" not in str(err.value) and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("stage_args", [
    ["generate", "--n", "2"],
    ["critique"],
    ["label-prefs", "--principles", "1"],
])
def test_stdout_carries_rows_and_nothing_else_whatever_the_engine_prints(tmp_path, stage_args):
    """The fake engine prints while loading and working, as vLLM's logging and C libraries do: through print, a write
    to file descriptor 1, C's printf, and at exit. A JSON parser reads stdout line by line."""
    from fakes.runner import critique_rows, label_rows

    rows = label_rows(4) if stage_args[0] == "label-prefs" else critique_rows(4)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    proc = cai_process(*stage_args, str(src), "--engine", "fake", "--batch-size", "2", env={NOISE_ENV: "1"})
    assert proc.returncode == 0, proc.stderr
    parsed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert parsed and all(isinstance(r, dict) for r in parsed)
    for noise in ("fake engine: loading", "fake engine (fd 1)", "fake engine (C printf)", "fake engine: shutting down"):
        assert noise in proc.stderr, noise


@pytest.mark.slow
def test_stdout_carries_rows_and_nothing_else_with_transformers_on_the_embedded_model(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Say hi."}, {"id": "b", "prompt": "Count to three."}])
    proc = cai_process("generate", str(src), "--engine", "transformers", "--max-tokens", "4")  # torch's and its libraries' own output
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["a", "b"]


# --------------------------------------------------------------------------- issue 28: every command through output/
# Each numbered finding of issue 28, run as written: one line and exit code 2 (or the documented behaviour), and every
# input and unrelated file byte-identical. In this process where no process boundary is the point.

EVAL = ["--engine", "fake", "--max-tokens", "8", "--no-progress"]


def eval_files(tmp_path: Path) -> Path:
    """user_files, plus benign prompts and rows that hold answers."""
    folder = user_files(tmp_path)
    write_jsonl(folder / "benign.jsonl", [{"id": f"b{i}", "prompt": f"benign {i}", "risky_looking": True} for i in range(2)])
    write_jsonl(folder / "answers.jsonl", [{"id": f"a{i}", "prompt": f"question {i}", "response": "I can't help with that."} for i in range(2)])
    return folder


def here(folder: Path, *args: str):
    """`cai ARGS` in this process, names in ARGS taken in FOLDER (`@name`)."""
    from conftest import invoke

    return invoke(*[str(folder / a[1:]) if a.startswith("@") else a for a in args])


def refused_here(folder: Path, args: list[str], *words: str) -> str:
    """`cai ARGS` here stops with exit code 2 and one line holding WORDS, and changes no file under FOLDER."""
    before = snapshot(folder)
    result = here(folder, *args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("cai: error: "), (result.exit_code, result.stderr)
    assert all(w in lines[0] for w in words), lines[0]
    assert snapshot(folder) == before, "a refused run changed or wrote files"
    return lines[0]


@pytest.mark.parametrize("args, words", [
    # 1. eval's outputs onto what it reads
    (["-p", "@in.jsonl", "-o", "@in.jsonl"], ["in.jsonl: is an input of this run"]),
    (["-p", "@in.jsonl", "--benign", "@benign.jsonl", "-o", "@benign.jsonl"], ["benign.jsonl: is an input of this run"]),
    (["--answers", "@answers.jsonl", "-o", "@answers.jsonl"], ["answers.jsonl: is an input of this run"]),
    (["-p", "@in.jsonl", "-o", "@link.jsonl"], ["in.jsonl: is an input of this run"]),
    (["-p", "@in.jsonl", "-o", "@out.jsonl", "--summary", "@in.jsonl"], ["--summary", "in.jsonl: is an input of this run"]),
    (["-p", "@in.jsonl", "-c", "@mine.yaml", "-o", "@out.jsonl", "--summary", "@mine.yaml"], ["mine.yaml: is the constitution of this run"]),
    (["-p", "@in.jsonl", "-o", "@out.jsonl", "--summary", "@out.jsonl"], ["-o and --summary are the same file"]),
    # 2. --errors onto the prompt file
    (["-p", "@in.jsonl", "-o", "@out.jsonl", "--errors", "@in.jsonl"], ["--errors", "in.jsonl: is an input of this run"]),
    # 9. a path through a file, a folder
    (["-p", "@in.jsonl", "-o", "@in.jsonl/x.jsonl"], ["a part of this path is a file"]),
    (["-p", "@in.jsonl", "-o", "@out.jsonl", "--summary", "@folder"], ["--summary", "is a folder"]),
])
def test_eval_never_writes_over_what_it_reads_or_another_of_its_outputs(tmp_path, fake_engine, args, words):
    folder = eval_files(tmp_path)
    (folder / "folder").mkdir()
    (folder / "link.jsonl").symlink_to(folder / "in.jsonl")
    refused_here(folder, ["eval", *args, *EVAL], *words)
    assert fake_engine.log["started"] == []  # before any model


def test_eval_with_stdin_redirected_from_its_output_is_refused(tmp_path):
    folder = eval_files(tmp_path)
    before = snapshot(folder)
    with open(folder / "in.jsonl", "rb") as stdin:  # cai eval -o in.jsonl < in.jsonl
        refused(cai("eval", "-o", str(folder / "in.jsonl"), *EVAL, stdin=stdin), "in.jsonl: is an input of this run (stdin)")
    assert snapshot(folder) == before


def test_eval_writes_to_a_device_or_fifo_directly_and_no_summary_beside_it(tmp_path, fake_engine):
    folder = eval_files(tmp_path)
    null = folder / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null, in a folder of the test's own
    except PermissionError:
        null = Path("/dev/null")
    fifo = folder / "rows.fifo"
    os.mkfifo(fifo)
    before = snapshot(folder)
    assert here(folder, "eval", "-p", "@in.jsonl", "-o", str(null), *EVAL).exit_code == 0
    assert stat.S_ISCHR(os.stat(null).st_mode) and not null.with_name("null.summary.json").exists() and not null.with_name("null.work").exists()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        result = here(folder, "eval", "-p", "@in.jsonl", "-o", "@rows.fifo", *EVAL)
    finally:
        if reader.is_alive():
            fifo.open("w").close()
        reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in got[0].splitlines()] == ["r0", "r1", "r2", "r3"]
    assert snapshot(folder) == before  # the device and the FIFO as they were; no null.summary.json, no work folder


def test_eval_errors_file_of_the_users_is_kept_and_only_appended_to(tmp_path, fake_engine):
    folder = eval_files(tmp_path)
    notes = folder / "mynotes.jsonl"
    mine = notes.read_bytes()
    ok = here(folder, "eval", "-p", "@in.jsonl", "-o", "@out.jsonl", "--errors", "@mynotes.jsonl", *EVAL)
    assert ok.exit_code == 0, ok.stderr
    assert notes.read_bytes() == mine  # no bad row: the user's file as it was, not deleted
    (folder / "bad.jsonl").write_bytes((folder / "in.jsonl").read_bytes() + b'{"id": "b", "prompt": 5}\n')
    skip = here(folder, "eval", "-p", "@bad.jsonl", "-o", "@out2.jsonl", "--errors", "@mynotes.jsonl", "--on-error", "skip", *EVAL)
    assert skip.exit_code == 0, skip.stderr
    assert notes.read_bytes().startswith(mine)
    [added] = [json.loads(line) for line in notes.read_bytes()[len(mine):].splitlines()]
    assert (added["stage"], added["line"], added["field"]) == ("eval", 5, "prompt")


def test_a_second_eval_on_the_same_output_stops_at_once_and_leaves_the_first_its_own_prompts(tmp_path):
    write_jsonl(tmp_path / "first.jsonl", [{"id": f"f{i}", "prompt": f"first {i}"} for i in range(12)])
    write_jsonl(tmp_path / "second.jsonl", [{"id": f"s{i}", "prompt": f"second {i}"} for i in range(12)])
    out = tmp_path / "out.jsonl"
    args = ["-m", "cai_cli", "eval", "-p", str(tmp_path / "first.jsonl"), "-o", str(out), "--batch-size", "2", *EVAL]
    first = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, **FAKE_ENV, "CAI_FAKE_DELAY": "0.2"})
    try:
        partial = tmp_path / "out.jsonl.work" / "answers.jsonl.partial"
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = cai("eval", "-p", str(tmp_path / "second.jsonl"), "-o", str(out), *EVAL)
        refused(second, f"(pid {first.pid})", "is writing this output")
        assert first.wait(timeout=120) == 0, first.stderr.read().decode() if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"f{i}" for i in range(12)]
    assert all(r["response"].endswith(r["prompt"]) for r in rows)  # each answer is to its own prompt
    assert not (tmp_path / "out.jsonl.work").exists()


def test_repeated_ids_never_mix_answers(tmp_path, fake_engine):
    folder = eval_files(tmp_path)
    write_jsonl(folder / "ids.jsonl", [{"id": "x", "prompt": "alpha"}, {"id": "x", "prompt": "beta"}, {"id": "x#1", "prompt": "gamma"}])
    refused_here(folder, ["eval", "-p", "@ids.jsonl", "-o", "@out.jsonl", *EVAL], "ids.jsonl:2: field 'id': 'x' is the id of", "ids.jsonl:1 too")
    result = here(folder, "eval", "-p", "@ids.jsonl", "-o", "@out.jsonl", "--on-error", "skip", *EVAL)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(folder / "out.jsonl")
    assert [(r["id"], r["prompt"]) for r in rows] == [("x", "alpha"), ("x#1", "gamma")]
    assert all(r["response"].endswith(r["prompt"]) for r in rows)
    [error] = read_jsonl(folder / "out.jsonl.errors.jsonl")
    assert (error["line"], error["field"], error["row"]["prompt"]) == (2, "id", "beta")


def test_eval_stdout_carries_rows_and_nothing_else_whatever_the_engine_prints(tmp_path):
    folder = eval_files(tmp_path)
    proc = cai_process("eval", "-p", str(folder / "in.jsonl"), *EVAL, env={NOISE_ENV: "1"})
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["r0", "r1", "r2", "r3"]
    for noise in ("fake engine: loading", "fake engine (fd 1)", "fake engine (C printf)"):
        assert noise in proc.stderr, noise


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_eval_to_stdout_stopped_says_nothing_was_kept_and_leaves_no_temporary_folder(tmp_path, sig):
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(20)])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "cai_cli", "eval", "-p", str(tmp_path / "in.jsonl"), "--batch-size", "2", *EVAL],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, **FAKE_ENV, "CAI_FAKE_DELAY": "0.2", "TMPDIR": str(tmp)})
    try:
        deadline = time.monotonic() + 60
        while not list(tmp.glob("cai-eval-*/answers.jsonl.partial")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130 and lines[-1].startswith("cai: error: interrupted: eval writes its rows to stdout, so none of its work was kept"), lines
    assert list(tmp.iterdir()) == []


# 6. show and report onto their own inputs


@pytest.mark.parametrize("args, words", [
    (["show", "@r2.jsonl", "--html", "@r2.jsonl"], ["--html", "r2.jsonl: is the input of this run"]),
    (["show", "@r2.jsonl", "--html", "@soft.jsonl"], ["r2.jsonl: is the input of this run"]),
    (["show", "@r2.jsonl", "--html", "@hard.jsonl"], ["hard.jsonl: is the input of this run"]),
    (["show", "@r2.jsonl", "--html", "@r2.jsonl/page.html"], ["a part of this path is a file"]),
    (["report", "@eval.jsonl", "-o", "@eval.jsonl"], ["eval.jsonl: the report is written as .png, .svg, .pdf or .html"]),
    (["report", "@eval.summary.json", "-o", "@eval.summary.html", "--json-out", "@eval.summary.json"], ["--json-out", "is a results file of this run"]),
    (["report", "@page.html", "-o", "@page.html"], ["-o", "page.html: is a results file of this run"]),
])
def test_show_and_report_never_write_over_what_they_read(tmp_path, args, words):
    folder = user_files(tmp_path)
    os.link(folder / "r2.jsonl", folder / "hard.jsonl")
    (folder / "soft.jsonl").symlink_to(folder / "r2.jsonl")
    (folder / "eval.jsonl").write_text("{}\n")
    (folder / "eval.summary.json").write_text("{}\n")
    (folder / "page.html").write_text("<p>mine</p>\n")
    refused_here(folder, args, *words)


def test_show_html_from_stdin_redirected_from_its_target_is_refused(tmp_path):
    folder = user_files(tmp_path)
    before = snapshot(folder)
    with open(folder / "r2.jsonl", "rb") as stdin:  # cai show - --html r2.jsonl < r2.jsonl
        refused(cai("show", "-", "--html", str(folder / "r2.jsonl"), stdin=stdin), "r2.jsonl: is the input of this run (stdin)")
    assert snapshot(folder) == before


def test_report_and_show_write_through_a_link(tmp_path, fake_engine):
    folder = eval_files(tmp_path)
    assert here(folder, "eval", "-p", "@in.jsonl", "-o", "@eval.jsonl", *EVAL).exit_code == 0
    (folder / "pages").mkdir()
    for name in ("report.html", "show.html"):
        (folder / "pages" / name).write_text("old\n")
        (folder / name).symlink_to(Path("pages") / name)
    assert here(folder, "report", "@eval.jsonl", "-o", "@report.html").exit_code == 0
    assert here(folder, "show", "@eval.jsonl", "--html", "@show.html").exit_code == 0
    for name in ("report.html", "show.html"):
        assert os.readlink(folder / name) == str(Path("pages") / name)
        assert (folder / "pages" / name).read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in (folder / "pages").iterdir()) == ["report.html", "show.html"]


@needs_unshare
def test_every_command_refuses_a_read_only_folder_before_any_work(tmp_path):
    """9. eval -o and --summary, show --html, report -o, plan --json-out, constitution import --sidecar into a read-only
    folder: one line each, before any work (eval's answers are not generated first)."""
    folder = eval_files(tmp_path)
    (folder / "ro").mkdir()
    (folder / "ro" / "doc.md").write_text("# Rules\n\n## Safety\n\nDo no harm.\n")
    (folder / "eval.jsonl").write_text("{}\n")
    commands = [
        f"$CAI eval -p in.jsonl -o ro/out.jsonl {' '.join(EVAL)}",
        f"$CAI eval -p in.jsonl -o out.jsonl --summary ro/s.json {' '.join(EVAL)}",
        "$CAI show r2.jsonl --html ro/page.html",
        "$CAI report eval.jsonl -o ro/r.png",
        "$CAI plan in.jsonl --json-out ro/plan.json",
        "$CAI constitution import ro/doc.md --sidecar",
    ]
    script = "mount --bind ro ro && mount -o remount,bind,ro ro && " + " ; ".join(f"{c}; echo rc=$? >&2" for c in commands)
    before = snapshot(folder)
    err = _in_namespace(script, folder).stderr.splitlines()
    assert err[1::2] == ["rc=2"] * len(commands), err
    assert all(line.startswith("cai: error: ") and "Read-only file system" in line for line in err[0::2]), err
    assert snapshot(folder) == before
