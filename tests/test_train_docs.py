"""Every command and config in docs/training.md runs, as printed, on a tiny model at one step.

What the test adds to a printed command only makes it small: `--max-steps 1` and `--batch-size 2` (unless the
command gives them), the tiny model where the command names none (or a placeholder such as my-7b), two samples of four
tokens for grpo/rloo, `--limit 2`, and the fake engine for `generate` and `label-prefs` without a trained `--model`
and for the judge of `--reward judge` and `score --reward judge` (the embedded model would take minutes). `out/` is a fresh folder holding the inputs the commands expect; `examples/`
is the repository's. Under `accelerate launch` or `torchrun` the cai command itself runs in this process: the
launchers need GPUs or several processes (tests/test_train_slow.py runs torchrun with two).
"""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from conftest import ROOT, write_jsonl
from test_train import FAST, ROWS, cai, pref_row, revised_row
from tiny_model import build_tiny_model

DOC = ROOT / "docs" / "training.md"
LAUNCHED = re.compile(r"(?:-m cai_cli|\$\(which cai\)) (.*)$")


# Two cores shared with other jobs: each tiny matmul on one torch thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs-inputs")
    build_tiny_model(d / "tiny")
    write_jsonl(d / "revised.jsonl", [revised_row(i, p, r) for i, (p, r) in enumerate(ROWS)] * 2)
    write_jsonl(d / "prefs.jsonl", [pref_row(i, p, r, 0.8) for i, (p, r) in enumerate(ROWS)] * 2)
    return d


def fresh_out(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("revised.jsonl", "prefs.jsonl"):
        shutil.copy(inputs / name, out / name)
    return out


def small(argv: list[str], out, tiny) -> list[str]:
    """The printed command with its paths pointing at OUT and the repository, made small (see the module docstring)."""
    def path(arg: str) -> str:
        if arg.startswith("out/"):
            return str(out.parent / arg)
        if arg.startswith("examples/"):
            return str(ROOT / arg)
        return arg

    argv = [path(a) for a in argv]
    command, trained = argv[0], "--model" in argv and argv[argv.index("--model") + 1].startswith(str(out))
    if "--model" in argv and not trained:
        argv[argv.index("--model") + 1] = str(tiny)  # a placeholder such as my-7b
    if command == "generate":
        argv += ["--limit", "2"] + (["--engine", "transformers", "--max-tokens", "4"] if trained else ["--engine", "fake"])
    elif command == "label-prefs":
        argv += ["--engine", "fake"]
    elif command.startswith("train-"):
        argv += [] if "--model" in argv else ["--model", str(tiny)]
        argv += [] if "--max-steps" in argv else ["--max-steps", "1"]
        argv += [] if "--batch-size" in argv else ["--batch-size", "2"]
        if "grpo" in argv or "rloo" in argv:
            argv += ["--num-generations", "2", "--max-tokens", "4"]
    if "judge" in argv:
        argv += ["--judge-engine", "fake"]
    return argv


def run_line(line: str, out, tiny) -> str:
    """One printed line: cai commands joined by pipes; returns the last one's stdout."""
    stdout = None
    for segment in line.split(" | "):
        argv = shlex.split(segment, comments=True)
        assert argv[0] == "cai", line
        proc = cai(*small(argv[1:], out, tiny), input=stdout)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        stdout = proc.stdout
    return stdout or ""


def test_the_docs_have_what_this_test_runs():
    assert len(fenced("sh")) == 6 and len(fenced("yaml")) == 1


def test_the_pipeline_runs_as_printed(inputs, tmp_path):
    out = fresh_out(inputs, tmp_path)
    lines = [line for line in fenced("sh")[0].splitlines() if line.strip()]
    assert len(lines) == 7
    for line in lines:
        stdout = run_line(line, out, inputs / "tiny")
    assert (out / "rl-grpo" / "config.json").exists() and '"rewards"' in stdout  # the last line scores what rl-grpo wrote


def test_restart_then_train_on_runs_as_printed(inputs, tmp_path):
    out = fresh_out(inputs, tmp_path)
    first, then = [line for line in fenced("sh")[1].splitlines() if line.strip()]
    run_line(first, out, inputs / "tiny")
    run_line(first, out, inputs / "tiny")  # --restart: trains the 4 steps again from scratch
    run_line(then, out, inputs / "tiny")
    import json

    assert json.loads((out / "sl-cai" / "cai-train.json").read_text())["steps"] == 6


def test_the_example_config_is_accepted_and_used(inputs, tmp_path):
    out = fresh_out(inputs, tmp_path)
    (tmp_path / "train.yaml").write_text(fenced("yaml")[0])
    proc = cai("train-sft", out / "revised.jsonl", "-o", out / "yaml", "--config", tmp_path / "train.yaml",
               "--model", inputs / "tiny", "--max-steps", "1", "--lora", *FAST)  # --lora: a GPU might pick --full
    assert proc.returncode == 0, proc.stderr
    assert "LoRA r=64 alpha=128" in proc.stderr


def test_the_judge_in_the_loop_runs_as_printed(inputs, tmp_path, fake_engine):
    out = fresh_out(inputs, tmp_path)
    shutil.copytree(inputs / "tiny", out / "sl-cai")  # the SL-CAI model of the first block
    train, rescore = [line for line in fenced("sh")[2].splitlines() if line.strip()]
    run_line(train, out, inputs / "tiny")
    import json

    rows = [json.loads(line) for line in run_line(rescore, out, inputs / "tiny").splitlines()]
    samples = [json.loads(line) for line in (out / "rl-judge" / "samples.jsonl").read_text().splitlines()]
    assert [r["rewards"] for r in rows] == [s["rewards"] for s in samples] and rows


def test_the_judge_gate_runs_as_printed(inputs, tmp_path, fake_engine):
    """The fake judge is at chance on the gold pairs: the run stops before training, as the docs say a judge below the
    floor does."""
    out = fresh_out(inputs, tmp_path)
    [line] = [line for line in fenced("sh")[3].splitlines() if line.strip()]
    proc = cai(*small(shlex.split(line, comments=True)[1:], out, inputs / "tiny"))
    assert proc.returncode == 3 and "nothing was trained" in proc.stderr, proc.stderr
    assert (out / "rl-judge" / "judge-gate.json").exists()


def test_the_monitor_runs_as_printed(inputs, tmp_path, fake_engine):
    out = fresh_out(inputs, tmp_path)
    train, _report = [line for line in fenced("sh")[4].splitlines() if line.strip()]
    run_line(train, out, inputs / "tiny")
    import json

    lines = [json.loads(x) for x in (out / "rl-watched" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "monitor/train_reward" in x] == [0]


def launched_lines() -> list[str]:
    return [line for line in fenced("sh")[5].splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("line", launched_lines())
def test_every_launched_command_runs(inputs, tmp_path, line):
    if line.rstrip().endswith("..."):
        pytest.skip("an elided command: the launcher's flags for several machines")
    out = fresh_out(inputs, tmp_path)
    found = LAUNCHED.search(line)
    assert found, line
    if "--model out/sl-cai" in line and "-o out/sl-cai" not in line:
        shutil.copytree(inputs / "tiny", out / "sl-cai")  # an earlier line's model
    run_line("cai " + found.group(1), out, inputs / "tiny")
