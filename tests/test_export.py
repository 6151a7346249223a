"""cai export: files that datasets.load_dataset("json") reads and trl's trainers take as they are."""

from __future__ import annotations

import json

import pytest

from conftest import read_jsonl, write_jsonl
from test_train import ROWS, cai, pref_row, revised_row
from tiny_model import build_tiny_model

HF_CAI_COLUMNS = ["init_prompt", "init_response", "critic_prompt", "critic_response", "revision_prompt", "revision_response",
                  "prompt", "messages", "chosen", "rejected"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    build_tiny_model(d / "tiny")
    revised = write_jsonl(d / "revised.jsonl", [dict(revised_row(i, p, r), category="harm") for i, (p, r) in enumerate(ROWS)] * 2)
    prefs = write_jsonl(d / "prefs.jsonl", [pref_row(i, p, r, 0.8) for i, (p, r) in enumerate(ROWS)] * 2)
    out = {}
    for fmt, src in (("sft", revised), ("prefs", prefs), ("hf-cai", revised)):
        out[fmt] = d / f"export-{fmt}.jsonl"
        proc = cai("export", str(src), "--format", fmt, "-o", str(out[fmt]))
        assert proc.returncode == 0, proc.stderr
        assert f"format {fmt}" in proc.stderr
    return d, out


def _load(path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train")


def test_sft_export_is_prompt_completion_with_the_final_revision(files):
    _, out = files
    rows = read_jsonl(out["sft"])
    assert set(rows[0]) == {"id", "prompt", "completion"}
    assert rows[0]["prompt"] == [{"role": "user", "content": ROWS[0][0]}]
    assert rows[0]["completion"] == [{"role": "assistant", "content": ROWS[0][1]}]
    assert _load(out["sft"]).num_rows == 4


def test_prefs_export_keeps_the_soft_label(files):
    _, out = files
    row = read_jsonl(out["prefs"])[0]
    assert set(row) == {"id", "prompt", "chosen", "rejected", "p_chosen"}
    assert row["p_chosen"] == 0.8 and row["chosen"][0]["role"] == "assistant"


def test_hf_cai_export_matches_the_hugging_face_layout(files):
    _, out = files
    ds = _load(out["hf-cai"])
    assert ds.column_names == HF_CAI_COLUMNS
    row = ds[0]
    assert row["init_prompt"] == row["prompt"] == ROWS[0][0]
    assert row["init_response"] == "sure here is how you do it step by step"
    assert row["revision_response"] == row["chosen"][-1]["content"] == row["messages"][-1]["content"] == ROWS[0][1]
    assert row["rejected"][-1]["content"] == row["init_response"]
    assert row["critic_prompt"] == "find harm" and row["critic_response"] == "it is harmful"


def test_trl_trainers_take_the_exports_as_they_are(files, tmp_path):
    import torch
    from trl import (
        DPOConfig,
        DPOTrainer,
        RewardConfig,
        RewardTrainer,
        SFTConfig,
        SFTTrainer,
    )

    d, out = files
    model = str(d / "tiny")
    torch.set_num_threads(1)
    common = {"max_steps": 1, "per_device_train_batch_size": 2, "report_to": [], "bf16": False, "save_strategy": "no",
              "disable_tqdm": True, "gradient_checkpointing": False, "dataloader_pin_memory": False}
    runs = [
        (SFTTrainer, SFTConfig, out["sft"], None),
        (DPOTrainer, DPOConfig, out["prefs"], None),
        (RewardTrainer, RewardConfig, out["prefs"], None),
        (SFTTrainer, SFTConfig, out["hf-cai"], ["messages"]),
        (DPOTrainer, DPOConfig, out["hf-cai"], ["chosen", "rejected"]),
    ]
    for i, (trainer_cls, config_cls, path, columns) in enumerate(runs):
        data = _load(path)
        if columns:  # the HF layout carries both recipes' columns; each trainer takes its own, as the HF recipe does
            data = data.select_columns(columns)
        trainer = trainer_cls(model=model, args=config_cls(output_dir=str(tmp_path / str(i)), **common), train_dataset=data)
        assert trainer.train().training_loss > 0


def test_export_reads_stdin_and_writes_stdout(files):
    d, _ = files
    proc = cai("export", "--format", "sft", input=(d / "revised.jsonl").read_text())
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 4 and json.loads(proc.stdout.splitlines()[1])["id"] == "r1"


@pytest.mark.parametrize(
    "fmt, row, expected",
    [
        ("csv", None, "'csv' is not one of 'sft', 'prefs', 'hf-cai'"),
        ("prefs", "revised", "in.jsonl:1: field 'chosen': missing"),
        ("sft", {"prompt": "hi", "response": "hello"}, "in.jsonl:1: field 'rounds': missing"),
        ("hf-cai", "no-initial", "in.jsonl:1: field 'initial_response': missing"),
    ],
)
def test_bad_export_input_is_one_line_and_exit_2(tmp_path, fmt, row, expected):
    if row == "revised":
        row = revised_row(0, *ROWS[0])
    elif row == "no-initial":
        row = {k: v for k, v in revised_row(0, *ROWS[0]).items() if k != "initial_response"}
    src = write_jsonl(tmp_path / "in.jsonl", [row or {"prompt": "x"}])
    out = tmp_path / "out.jsonl"
    proc = cai("export", str(src), "--format", fmt, "-o", str(out))
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def _export(tmp_path, rows, fmt, *flags):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / f"{fmt}.jsonl"
    proc = cai("export", str(src), "--format", fmt, "-o", str(out), *flags)
    assert proc.returncode == 0, proc.stderr
    return read_jsonl(out), proc.stderr


def _left_out(tmp_path, fmt) -> list[tuple[str, str]]:
    """(id, reason) of every row the export left out, from its dropped file."""
    return [(r["id"], r["dropped"]) for r in read_jsonl(tmp_path / f"{fmt}.jsonl.dropped.jsonl")]


def test_sft_export_leaves_out_cut_revisions_and_counts_them(tmp_path):
    rows = [revised_row(i, *ROWS[i % 2]) for i in range(4)]
    rows[1]["rounds"][-1]["revision_finish_reason"] = "length"  # as `cai revise` records it, in the round
    rows[2]["rounds"][-1]["revision_finish_reason"] = "stop"
    rows[3]["rounds"][0]["revision_finish_reason"] = "length"  # an earlier round's cut text is not the final one
    exported, log = _export(tmp_path, rows, "sft")
    assert [r["id"] for r in exported] == ["r0", "r2", "r3"]
    assert "rows 4 in, 3 out" in log and "1 left out (revision cut at --max-tokens)" in log
    assert _left_out(tmp_path, "sft") == [("r1", "revision cut at --max-tokens")]
    exported, log = _export(tmp_path, rows, "sft", "--keep-truncated")
    assert [r["id"] for r in exported] == ["r0", "r1", "r2", "r3"] and "left out" not in log
    assert not (tmp_path / "sft.jsonl.dropped.jsonl").exists()  # the earlier run's, now stale


def test_hf_cai_export_never_writes_a_pair_of_one_text(tmp_path):
    rows = [revised_row(i, *ROWS[i % 2]) for i in range(3)]
    for r in rows[1]["rounds"]:  # no round changed the first reply: chosen would equal rejected
        r["revision"] = rows[1]["initial_response"]
    rows[2]["rounds"][-1]["revision_finish_reason"] = "length"
    exported, log = _export(tmp_path, rows, "hf-cai")
    assert len(exported) == 1 and exported[0]["chosen"] != exported[0]["rejected"]
    assert "1 left out (chosen and rejected are the same text)" in log
    assert "1 left out (revision cut at --max-tokens)" in log and "rows 3 in, 1 out" in log
    assert _left_out(tmp_path, "hf-cai") == [("r1", "chosen and rejected are the same text"), ("r2", "revision cut at --max-tokens")]


def test_hf_cai_export_leaves_out_a_cut_critique(tmp_path):
    rows = [revised_row(i, *ROWS[i % 2]) for i in range(3)]
    rows[1]["rounds"][-1]["critique_finish_reason"] = "length"  # hf-cai exports the last critique as critic_response
    rows[2]["rounds"][0]["critique_finish_reason"] = "length"  # an earlier round's critique is not exported
    exported, log = _export(tmp_path, rows, "hf-cai")
    assert [r["critic_response"] for r in exported] == ["it is harmful"] * 2
    assert "1 left out (critique cut at --max-tokens)" in log and "--keep-truncated keeps cut texts" in log
    assert _left_out(tmp_path, "hf-cai") == [("r1", "critique cut at --max-tokens")]
    exported, log = _export(tmp_path, rows, "hf-cai", "--keep-truncated")
    assert len(exported) == 3 and "left out" not in log


def test_prefs_export_never_writes_a_pair_of_one_text(tmp_path):
    rows = [pref_row(i, *ROWS[i % 2], 0.7) for i in range(7)]
    for i in (0, 2, 3, 4, 5, 6):
        rows[i]["rejected"] = rows[i]["chosen"]
    exported, log = _export(tmp_path, rows, "prefs")
    assert [r["id"] for r in exported] == ["p1"]
    assert "6 left out (chosen and rejected are the same text)" in log
    assert [i for i, _ in _left_out(tmp_path, "prefs")] == ["p0", "p2", "p3", "p4", "p5", "p6"]  # every one, not the first five


def test_left_out_rows_after_a_resume_are_counted_and_kept_whichever_run_met_them(tmp_path, capsys):
    from cai_cli.runner import RunOptions, run_stage
    from cai_cli.stages.export import Export

    class CrashAfterOneBatch(Export):
        def process(self, rows):
            if getattr(self, "done", False):
                raise KeyboardInterrupt
            self.done = True
            return super().process(rows)

    rows = [revised_row(i, *ROWS[i % 2]) for i in range(6)]
    for i in (0, 1, 4):
        rows[i]["meta"] = {"revise": {"finish_reason": "length"}}
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "sft.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_stage(CrashAfterOneBatch("sft"), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
    capsys.readouterr()
    result = run_stage(Export("sft"), RunOptions(input=str(src), output=str(out), batch_size=3, progress=False))
    assert result.resumed == 3 and result.dropped == 3
    assert "3 left out (revision cut at --max-tokens)" in capsys.readouterr().err
    assert [i for i, _ in _left_out(tmp_path, "sft")] == ["r0", "r1", "r4"]
