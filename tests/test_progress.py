"""Progress on stderr (cai_cli/progress.py): where stderr is not a terminal (a log, `2>run.log`, make -j), a stage and a
trainer print a plain line at the start and then every LINE_SECONDS while they run, saying how far, how fast, how long
is left and where the finished work is; --progress picks bar, lines or off."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from cai_cli import progress
from cai_cli.runner import RunOptions, run_stage

from conftest import invoke, write_jsonl
from fakes.runner import FanOut, prompts


@pytest.fixture
def often(monkeypatch):
    """A line every 50 ms instead of every 30 s."""
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.05)


def progress_lines(stderr: str, label: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(rf"cai {label}: \d+(/\d+)? (rows|steps)", line)]


def test_a_stage_logging_to_a_file_prints_progress_lines_while_it_runs(tmp_path, capsys, often):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(8))
    out = tmp_path / "out.jsonl"
    run_stage(FanOut(delay=0.1), RunOptions(input=str(src), output=str(out), batch_size=2))  # --progress auto; stderr is no terminal
    lines = progress_lines(capsys.readouterr().err, "fanout")
    where = f"finished rows are in {out}.partial, flushed after each batch"
    assert lines[0] == f"cai fanout: 0/8 rows (0%), starting; {where}"
    # Lines keep coming while batches run (each row takes 0.1 s here), each with the rate and the time left.
    running = [line for line in lines[1:] if re.fullmatch(rf"cai fanout: [1-7]/8 rows \(\d+%\) after \d+s, [\d.]+ rows/s, about \d+s left; {re.escape(where)}", line)]
    assert len(running) >= 2, lines
    counts = [int(line.split(": ")[1].split("/")[0]) for line in lines]
    assert counts == sorted(counts)


def test_lines_keep_coming_while_one_long_batch_runs(tmp_path, capsys, often):
    """A batch of long critiques can take minutes: the log says the run is alive all the same."""
    src = write_jsonl(tmp_path / "in.jsonl", prompts(4))
    run_stage(FanOut(delay=0.1), RunOptions(input=str(src), output=str(tmp_path / "out.jsonl"), batch_size=4))
    lines = progress_lines(capsys.readouterr().err, "fanout")
    waiting = [line for line in lines if re.match(r"cai fanout: 0/4 rows \(0%\) after \d+s, no rows finished yet; ", line)]
    assert len(waiting) >= 3, lines


def test_a_resumed_run_counts_the_earlier_rows_apart(tmp_path, capsys, often):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(6))
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_stage(FanOut(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=3, progress="off"))
    capsys.readouterr()
    run_stage(FanOut(delay=0.1), RunOptions(input=str(src), output=str(out), batch_size=3, progress="lines"))
    lines = progress_lines(capsys.readouterr().err, "fanout")
    assert any(re.match(r"cai fanout: [3-5]/6 rows \(\d+%\) \(3 from the earlier run\) after", line) for line in lines), lines


def test_progress_off_and_the_older_no_progress_print_no_lines(tmp_path, fake_engine):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    for flag in (["--progress", "off"], ["--no-progress"]):
        result = invoke("generate", str(src), "--engine", "fake", *flag)
        assert result.exit_code == 0 and not progress_lines(result.stderr, "generate"), result.stderr
    # A pipe: the total is not known, and the rows leave on stdout.
    result = invoke("generate", "--engine", "fake", "--progress", "lines", input=src.read_text())
    assert progress_lines(result.stderr, "generate")[0] == "cai generate: 0 rows, starting; finished rows are written to stdout after each batch"


@pytest.mark.parametrize("first_step", [0, 1])  # a run from the start, and one resumed from step 1
def test_a_trainer_logging_to_a_file_prints_steps_loss_and_where_the_metrics_are(tmp_path, capsys, often, first_step):
    import time

    from cai_cli.train.callbacks import StderrProgress

    callback = StderrProgress("train-sft", "auto", tmp_path / "metrics.jsonl")
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=first_step)
    callback.on_train_begin(None, state, None)
    for step in (2, 3):
        state.global_step = step
        callback.on_step_end(None, state, None)
        callback.on_log(None, state, None, logs={"loss": 1.5, "learning_rate": 2e-4})
        time.sleep(0.15)
    callback.on_train_end(None, state, None)
    lines = progress_lines(capsys.readouterr().err, "train-sft")
    where = f"each step's metrics go to {Path(tmp_path / 'metrics.jsonl')}"
    earlier = f" ({first_step} from the earlier run)" if first_step else ""
    assert lines[0] == f"cai train-sft: {first_step}/4 steps ({25 * first_step}%){earlier}, starting; {where}"
    assert any(re.fullmatch(rf"cai train-sft: 3/4 steps \(75%\){re.escape(earlier)} after \d+s, [\d.]+ steps/s, about \d+s left "
                            rf"\| loss 1.5 learning_rate 0.0002; {re.escape(where)}", line) for line in lines), lines
