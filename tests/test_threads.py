"""Compute threads (cai_cli/threads.py): a `cai` process started with no thread settings runs torch with cai's (its
waiting threads sleep, so processes side by side share the cores), the user's settings win, and runs side by side
write the same rows. Processes, because the point is what the OpenMP runtime reads as it loads with torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cai_cli.threads import WAIT_POLICY, set_defaults

from conftest import ROOT, write_jsonl

THREAD_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
# Runs `cai ARGS` as the `cai` script does, then says on stderr what torch and the environment hold at the end.
AT_THE_END = (
    "import os, sys\n"
    "from cai_cli.cli import main\n"
    "sys.argv = ['cai', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    import torch\n"
    "    print(f'at the end: threads {torch.get_num_threads()}, OMP_WAIT_POLICY {os.environ.get(\"OMP_WAIT_POLICY\")}', file=sys.stderr)\n"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def start_cai(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """`cai ARGS` in a process of its own with ENV's thread settings only (none of this test process's own);
    OMP_DISPLAY_ENV has each OpenMP runtime print, as it loads, the settings it took."""
    full = {k: v for k, v in os.environ.items() if k not in THREAD_SETTINGS}
    full.update({"OMP_DISPLAY_ENV": "VERBOSE", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env})
    return subprocess.Popen([sys.executable, "-c", AT_THE_END, *args], cwd=ROOT, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def runtime_settings(stderr: str, name: str) -> set[str]:
    """The values every OpenMP runtime the process loaded printed for NAME (`  OMP_WAIT_POLICY = 'PASSIVE'`)."""
    values = {line.split("=", 1)[1].strip().strip("'") for line in stderr.splitlines() if line.strip().startswith(f"{name} =")}
    assert values, f"no OpenMP runtime printed {name}:\n{stderr[-2000:]}"
    return values


def generate(tiny: str, src: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return start_cai("generate", str(src), "--model", tiny, "--engine", "transformers", "--max-tokens", "8", "--batch-size", "2",
                     "-o", str(out), *extra, env=env or {})


def test_two_lone_runs_with_no_thread_settings_wait_passively_and_write_the_same_rows(tiny, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"tell me about thing {i}"} for i in range(4)])
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    procs = [generate(tiny, src, out) for out in outs]  # side by side, on the same cores
    for proc in procs:
        err = finish(proc)
        # Every OpenMP runtime took cai's policy as it loaded (libgomp: a spin count of 0), with one thread per core.
        assert runtime_settings(err, "OMP_WAIT_POLICY") == {WAIT_POLICY}
        assert runtime_settings(err, "GOMP_SPINCOUNT") == {"0"}
        cores = len(os.sched_getaffinity(0))
        assert runtime_settings(err, "OMP_NUM_THREADS") == {str(cores)}
        assert f"at the end: threads {cores}, OMP_WAIT_POLICY {WAIT_POLICY}" in err
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_the_user_s_settings_win(tiny, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hello"}])
    err = finish(generate(tiny, src, tmp_path / "out.jsonl", "--threads", "1", env={"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}))
    assert runtime_settings(err, "OMP_WAIT_POLICY") == {"ACTIVE"}
    assert runtime_settings(err, "OMP_NUM_THREADS") == {"1"}  # --threads over OMP_NUM_THREADS
    assert "at the end: threads 1, OMP_WAIT_POLICY ACTIVE" in err


def test_the_defaults_leave_what_the_user_set():
    env: dict[str, str] = {}
    set_defaults(env)
    assert env == {"OMP_WAIT_POLICY": WAIT_POLICY}
    env = {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "3"}
    set_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "3"}
    env = {"GOMP_SPINCOUNT": "10000"}  # a spin count of the user's own: libgomp's default policy goes with it
    set_defaults(env)
    assert env == {"GOMP_SPINCOUNT": "10000"}
