"""The output folder's record (cai_cli/train/record.py) on a tiny model: a rerun resumes, trains on, finds the work
done, or stops naming what changed; a crash at any phase ends as an uninterrupted run does; a folder cai did not make
is left as it was.

Crashes are real: a forked copy of this process (torch already imported, so it starts in no time) runs the command
with CAI_TEST_KILL_AT set and dies of SIGKILL at that point (a fresh process where CUDA is in use).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import pytest

from conftest import read_jsonl, run_cai, write_jsonl
from test_train import ENV, FAST, ROWS, cai, pref_row, revised_row
from tiny_model import build_tiny_model

# Two cores shared with other jobs: each tiny matmul on one torch thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("record")
    build_tiny_model(d / "tiny")
    build_tiny_model(d / "tiny-other", seed=1)
    write_jsonl(d / "revised.jsonl", [revised_row(i, p, r) for i, (p, r) in enumerate(ROWS)] * 4)
    write_jsonl(d / "helpful.jsonl", [{"prompt": "write a poem about the sea", "response": "the sea is wide and blue and calm"}])
    write_jsonl(d / "prefs.jsonl", [pref_row(i, p, r, 0.9) for i, (p, r) in enumerate(ROWS)] * 3)
    (d / "save2.yaml").write_text("save_steps: 2\n")  # checkpoints at steps 2 and 4: crashes before, between and after
    (d / "warmup.yaml").write_text("warmup_steps: 1\n")
    return d


def sft_args(d, out, *flags, steps: int | None = 3) -> list:
    length = ["--max-steps", str(steps)] if steps is not None else []
    return ["train-sft", d / "revised.jsonl", "-o", out, "--model", d / "tiny", *length, *FAST, *flags]


def sft(d, out, *flags, steps: int | None = 3):
    return cai(*sft_args(d, out, *flags, steps=steps))


def weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def record(folder) -> dict:
    return json.loads((folder / "cai-train.json").read_text())


def logged(folder) -> list[dict]:
    return [r for r in read_jsonl(folder / "metrics.jsonl") if "loss" in r]


def killed_at(point: str, argv: list) -> int | None:
    """`cai ARGV` dying of SIGKILL at POINT; its exit code. A forked copy of this process starts at once (torch is
    imported); CUDA does not survive a fork, so where this process has used it, a fresh process runs instead."""
    import torch

    if torch.cuda.is_initialized():
        return run_cai(*map(str, argv), env={**ENV, "CAI_TEST_KILL_AT": point}).returncode

    def child():
        os.environ["CAI_TEST_KILL_AT"] = point
        cai(*argv)
        os._exit(0)  # the point was never reached

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(300)
    return proc.exitcode


def one_line_error(proc, expected: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("cai: error")]) == 1


# --- a longer run trains on --------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, short, long, steps", [("--max-steps", "3", "5", 5), ("--epochs", "1", "2", 4)])
def test_a_longer_run_trains_on_at_learning_rates_above_zero(d, tmp_path, option, short, long, steps):
    """8 examples, 4 a step: --epochs 1 is 2 steps, --epochs 2 is 4. The schedule is extended to the new length."""
    out = tmp_path / "run"
    assert sft(d, out, option, short, steps=None).returncode == 0
    before = weights(out)
    first = logged(out)
    proc = sft(d, out, option, long, steps=None)
    assert proc.returncode == 0, proc.stderr
    assert "training on from checkpoint-" in proc.stderr and "schedule is extended" in proc.stderr
    metrics = logged(out)
    assert [r["step"] for r in metrics] == list(range(1, steps + 1))  # each step once
    assert metrics[: len(first)] == first  # the steps trained before are kept as they were logged
    rates = [r["learning_rate"] for r in metrics]
    assert all(lr > 0 for lr in rates), rates  # trl's linear decay reached 0 at the end of the shorter run
    # The new steps follow trl's linear decay as built for the whole new length: lr * (N - k + 1) / N at step k.
    assert rates[len(first):] == pytest.approx([1e-2 * (steps - k + 1) / steps for k in range(len(first) + 1, steps + 1)])
    after = weights(out)
    assert max((after[k] - before[k]).abs().max().item() for k in before) > 0  # the new steps changed the model
    tokens = [r["num_tokens"] for r in metrics]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)  # trl's token counter goes on, not from 0
    rec = record(out)
    assert rec["state"] == "done" and rec["steps"] == steps and rec["planned_steps"] == steps
    assert rec["train_loss"] == pytest.approx(sum(r["loss"] for r in metrics) / steps)  # the whole run, not the last part


# --- a rerun with other settings ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(d):
    out = d / "finished"
    proc = sft(d, out, "--lora", steps=2)  # LoRA on any hardware (a GPU that holds the model would pick --full)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--lr", "1e-3"], "(trl.learning_rate: 0.01 -> 0.001)"),
        (["--mix", "{helpful}"], "data.mix.path: null -> "),
        (["--keep-truncated"], "settings.keep_truncated: false -> true"),
        (["--full"], "method: lora -> full"),
        (["--model", "{other}"], "model.name: "),
        (["--config", "{warmup}"], "trl.warmup_steps: 0 -> 1"),
        (["--seed", "1"], "trl.seed: 0 -> 1"),
        (["--max-steps", "1"], "holds a model trained for 2 steps (--max-steps 2), more than --max-steps 1"),
        (["--command", "train-rm", "{prefs}"], "holds a model made by `cai train-sft`, not `cai train-rm`"),
        (["--command", "train-policy", "{prefs}", "--algo", "dpo"], "made by `cai train-sft`, not `cai train-policy`"),
    ],
)
def test_a_rerun_with_other_settings_stops_before_any_model_loads(d, finished, monkeypatch, args, expected):
    from transformers import PreTrainedModel

    def no_loading(*_, **__):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_loading))
    before, rec = weights(finished), record(finished)
    names = {"helpful": d / "helpful.jsonl", "other": d / "tiny-other", "warmup": d / "warmup.yaml", "prefs": d / "prefs.jsonl"}
    args = [a.format(**names) for a in args]
    if args[0] == "--command":
        proc = cai(args[1], args[2], "-o", finished, "--model", d / "tiny", "--max-steps", "2", *FAST, *args[3:])
    else:
        length = [] if "--max-steps" in args else ["--max-steps", "2"]
        method = [] if "--full" in args else ["--lora"]
        proc = cai("train-sft", d / "revised.jsonl", "-o", finished, "--model", d / "tiny", *length, *method, *FAST, *args)
    one_line_error(proc, expected)
    assert "--restart" in proc.stderr
    assert weights(finished).keys() == before.keys() and all((weights(finished)[k] == before[k]).all() for k in before)
    assert record(finished) == rec


def test_the_same_length_asked_another_way_is_already_done(d, finished):
    """--max-steps 2 and --epochs 1 are the same two steps (8 examples, 4 a step)."""
    proc = sft(d, finished, "--epochs", "1", "--lora", steps=None)
    assert proc.returncode == 0 and "already holds this model, trained for 2 steps" in proc.stderr


def test_a_crashed_run_resumes_only_with_its_own_settings(d, tmp_path):
    out = tmp_path / "run"
    assert killed_at("save:2", sft_args(d, out, "--config", d / "save2.yaml", steps=4)) == -signal.SIGKILL
    proc = sft(d, out, "--config", d / "save2.yaml", "--lr", "1e-3", "--keep-truncated", steps=4)
    one_line_error(proc, "holds a run stopped at step 2 with other settings (trl.learning_rate: 0.01 -> 0.001; "
                         "settings.keep_truncated: false -> true")
    proc = sft(d, out, "--config", d / "save2.yaml", steps=4)
    assert proc.returncode == 0 and "resuming from checkpoint-2 (step 2 of 4)" in proc.stderr
    assert [r["step"] for r in logged(out)] == [1, 2, 3, 4]


# --- a crash at any phase ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(d):
    out = d / "uninterrupted"
    assert sft(d, out, "--config", d / "save2.yaml", steps=4).returncode == 0
    return out


VOLATILE = ("seconds", "finished")  # wall-clock facts of the last invocation


@pytest.mark.parametrize("point", [
    "step:2",  # mid-step, before the first checkpoint: the rerun starts over
    "step:4",  # mid-step, with step 3 logged after checkpoint-2
    "save:2",  # right after a checkpoint
    "merge",  # trained to the end, the merged model written, nothing installed
    "install",  # the first final file in DIR, config.json not yet
])
def test_a_crash_at_any_phase_then_a_rerun_ends_as_an_uninterrupted_run(d, tmp_path, uninterrupted, point):
    out = tmp_path / "run"
    assert killed_at(point, sft_args(d, out, "--config", d / "save2.yaml", steps=4)) == -signal.SIGKILL
    assert record(out)["state"] == "training"  # never "done" before the final model is
    proc = sft(d, out, "--config", d / "save2.yaml", steps=4)
    assert proc.returncode == 0, proc.stderr
    assert "already holds" not in proc.stderr
    want, got = weights(uninterrupted), weights(out)
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in want)
    strip = lambda r: {k: v for k, v in r.items() if k not in VOLATILE}  # noqa: E731
    assert strip(record(out)) == strip(record(uninterrupted))
    fields = ("step", "epoch", "loss", "learning_rate", "num_tokens", "grad_norm")
    assert [[r.get(k) for k in fields] for r in logged(out)] == [[r.get(k) for k in fields] for r in logged(uninterrupted)]
    assert not (out / ".final.tmp").exists() and not (out / ".merged.tmp").exists()


def test_a_crash_while_a_longer_run_installs_its_model_is_resumed_not_taken_for_done(d, tmp_path):
    """3 steps, then on to 5, killed while the 5-step model moves in: the rerun finishes the 5-step model."""
    for name in ("whole", "run"):
        assert sft(d, tmp_path / name, steps=3).returncode == 0
    assert sft(d, tmp_path / "whole", steps=5).returncode == 0
    assert killed_at("install", sft_args(d, tmp_path / "run", steps=5)) == -signal.SIGKILL
    assert record(tmp_path / "run")["state"] == "training"
    proc = sft(d, tmp_path / "run", steps=3)  # the old length: a run planned for 5 is not cut back to 3
    one_line_error(proc, "holds a run planned for 5 steps (--max-steps 5), more than --max-steps 3")
    proc = sft(d, tmp_path / "run", steps=5)
    assert proc.returncode == 0 and "checkpoint-5 reached step 5 of 5; writing the final model" in proc.stderr, proc.stderr
    want, got = weights(tmp_path / "whole"), weights(tmp_path / "run")
    assert all((got[k] == want[k]).all() for k in want)
    strip = lambda r: {k: v for k, v in r.items() if k not in (*VOLATILE, "fingerprint")}  # noqa: E731 - another -o path
    assert strip(record(tmp_path / "run")) == strip(record(tmp_path / "whole")) and record(tmp_path / "run")["steps"] == 5


def test_a_reward_model_crashed_while_merging_is_finished_and_evaluated_on_rerun(d, tmp_path):
    def rm(out):  # full fine-tuning: the weights come back from the checkpoint itself, not from a LoRA adapter
        return ["train-rm", d / "prefs.jsonl", "-o", out, "--model", d / "tiny", "--max-steps", "3", "--eval-fraction", "0.3", "--full", *FAST]

    assert cai(*rm(tmp_path / "whole")).returncode == 0
    assert killed_at("install", rm(tmp_path / "run")) == -signal.SIGKILL
    proc = cai(*rm(tmp_path / "run"))
    assert proc.returncode == 0 and "held-out accuracy" in proc.stderr, proc.stderr
    want, got = weights(tmp_path / "whole"), weights(tmp_path / "run")
    assert all((got[k] == want[k]).all() for k in want)
    strip = lambda r: {k: v for k, v in r.items() if k not in (*VOLATILE, "fingerprint")}  # noqa: E731 - another -o path
    assert strip(record(tmp_path / "run")) == strip(record(tmp_path / "whole"))
    assert "eval_accuracy" in record(tmp_path / "run")
    # The held-out evaluation at the end is logged once, as in the uninterrupted run.
    shape = lambda r: [r["step"], r["epoch"], sorted(set(r) - {"time", "eval_model_preparation_time"})]  # noqa: E731
    assert [shape(r) for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [shape(r) for r in read_jsonl(tmp_path / "whole" / "metrics.jsonl")]
    assert sum("eval_loss" in r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 1


# --- folders cai did not make, and files it did not write ---------------------------------------------------------


@pytest.mark.parametrize("theirs", [
    {"checkpoints/checkpoint-5/state.txt": "another tool's", "notes.txt": "mine"},
    {"metrics.jsonl": '{"step": 1, "loss": 9}\n', "results.jsonl": "{}\n"},
    {"cai-train.json": '{"made_by": "someone else"}\n', "notes.txt": "mine"},
])
def test_a_folder_cai_did_not_make_is_refused_and_left_as_it_was(d, tmp_path, theirs):
    for name, text in theirs.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for extra in ([], ["--restart"]):
        proc = sft(d, tmp_path, *extra)
        one_line_error(proc, "holds no cai-train.json of cai's, so `cai train-*` did not make it")
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()} == set(theirs)
    assert all((tmp_path / name).read_text() == text for name, text in theirs.items())


def test_cai_replaces_and_restarts_only_what_it_wrote(d, tmp_path):
    out = tmp_path / "run"
    assert sft(d, out, steps=2).returncode == 0
    (out / "notes.txt").write_text("mine")
    assert sft(d, out, steps=3).returncode == 0  # trains on and installs a new model beside the notes
    proc = sft(d, out, "--lr", "1e-3", "--restart", steps=2)
    assert proc.returncode == 0, proc.stderr
    assert "--restart: deleted checkpoints, metrics.jsonl" in proc.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert [r["step"] for r in logged(out)] == [1, 2]  # nothing of the earlier run is left
    rec = record(out)
    assert rec["fingerprint"]["trl"]["learning_rate"] == 0.001 and rec["steps"] == 2 and "notes.txt" not in rec["files"]


def test_a_folder_of_an_older_cai_is_refused_until_restart(d, tmp_path):
    """An older cai's record has no fingerprint: nothing to compare, so only --restart goes on, and it replaces the
    model files that cai wrote there."""
    out = tmp_path / "run"
    assert sft(d, out, steps=2).returncode == 0
    old = {k: v for k, v in record(out).items() if k in ("command", "base_model", "lora", "steps", "train_loss")}
    (out / "cai-train.json").write_text(json.dumps(old))
    (out / "notes.txt").write_text("mine")
    one_line_error(sft(d, out, steps=2), "cai-train.json was written by an older cai, without the settings it trained with")
    proc = sft(d, out, "--restart", steps=2)
    assert proc.returncode == 0, proc.stderr
    assert record(out)["state"] == "done" and (out / "notes.txt").read_text() == "mine"
