"""The stage I/O contract, on a fake stage: order, resume, atomic finish, error rows, shards, limit."""

from __future__ import annotations

import json

import pytest

from cai_cli.errors import CaiError, RowFailure
from cai_cli.output import AppendLog
from cai_cli.resume import scan_side_file, side_records
from cai_cli.rows import FieldProblem, check_conversation, in_shard
from cai_cli.runner import RunOptions, StageStats, run_stage
from cai_cli.stages.base import Stage

from conftest import read_jsonl, write_jsonl


class Upper(Stage):
    """Upper-cases the prompt; can crash after a number of batches, or fail chosen rows."""

    name = "upper"

    def __init__(self, crash_after_batches=None, fail_ids=(), too_long_ids=()):
        self.stats = StageStats()
        self.crash_after = crash_after_batches
        self.fail_ids = set(fail_ids)
        self.too_long = set(too_long_ids)
        self.processed: list[str] = []
        self.started = False

    def check(self, row):
        check_conversation(row)

    def start(self):
        self.started = True

    def check_loaded(self, row):
        if row["id"] in self.too_long:
            raise RowFailure("the prompt is longer than the context", field="prompt")

    def process(self, rows):
        if self.crash_after is not None and self.crash_after == 0:
            raise KeyboardInterrupt("simulated crash")
        if self.crash_after is not None:
            self.crash_after -= 1
        out = []
        for r in rows:
            self.processed.append(r["id"])
            if r["id"] in self.fail_ids:
                out.append(RowFailure("server kept failing"))
            else:
                r["response"] = r["prompt"].upper()
                self.stats.tokens_out += 1
                out.append(r)
        return out

    def summary(self):
        return ""


def finished_ids(partial) -> list[str]:
    """The ids of the input rows a side file holds as finished, in input order."""
    return [rec["id"] for rec in side_records(scan_side_file(partial))]


def rows(n):
    return [{"id": f"r{i}", "prompt": f"prompt {i}", "mine": i} for i in range(n)]


def test_output_keeps_order_and_passes_unknown_fields(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(7))
    out = tmp_path / "out.jsonl"
    run_stage(Upper(), RunOptions(input=str(src), output=str(out), batch_size=3))
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [f"r{i}" for i in range(7)]
    assert [r["mine"] for r in got] == list(range(7))
    assert got[3]["response"] == "PROMPT 3"
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_crash_then_rerun_resumes_without_recomputing(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(10))
    out = tmp_path / "out.jsonl"
    crashing = Upper(crash_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        run_stage(crashing, RunOptions(input=str(src), output=str(out), batch_size=3))
    assert not out.exists(), "the output must not appear before the stage finishes"
    assert finished_ids(tmp_path / "out.jsonl.partial") == [f"r{i}" for i in range(6)]

    second = Upper()
    result = run_stage(second, RunOptions(input=str(src), output=str(out), batch_size=3))
    assert second.processed == ["r6", "r7", "r8", "r9"]
    assert result.resumed == 6
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [f"r{i}" for i in range(10)]


def test_torn_last_line_of_side_file_is_recomputed(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(4))
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    # A first run that finished r0 and was killed while writing r1.
    with pytest.raises(KeyboardInterrupt):
        run_stage(Upper(crash_after_batches=1), RunOptions(input=str(src), output=str(out), batch_size=1))
    header, done = partial.read_text().splitlines()
    record = json.loads(done)
    record["rows"][0]["response"] = "done before"
    partial.write_text(header + "\n" + json.dumps(record) + "\n" + '{"line": 2, "id": "r1", "rows": [{"id": "r1", "prom')
    stage = Upper()
    run_stage(stage, RunOptions(input=str(src), output=str(out), batch_size=2))
    assert stage.processed == ["r1", "r2", "r3"]
    got = read_jsonl(out)
    assert got[0]["response"] == "done before"
    assert len(got) == 4


def test_bad_rows_stop_before_any_work_and_name_file_line_field(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "fine"}\n{"id": "b", "prompt": 3}\n')
    stage = Upper()
    with pytest.raises(CaiError) as err:
        run_stage(stage, RunOptions(input=str(src), output=str(tmp_path / "out.jsonl")))
    assert f"{src}:2: field 'prompt': expected a non-empty string" in str(err.value)
    assert not stage.started
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_skip_processes_every_valid_row_and_writes_errors_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "a", "prompt": "one"}\n'
        b"not json\n"
        b'{"id": "b", "prompt": "tw\xff"}\n'
        b"[1, 2]\n"
        b'{"id": "c", "text": "no prompt"}\n'
        b'{"id": "d", "prompt": "four"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = run_stage(Upper(), RunOptions(input=str(src), output=str(out), on_error="skip"))
    assert [r["id"] for r in read_jsonl(out)] == ["a", "d"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3, 4, 5]
    assert "not valid JSON" in errors[0]["error"]
    assert "UTF-8" in errors[1]["error"]
    assert "JSON object" in errors[2]["error"]
    assert errors[3]["field"] == "prompt" and errors[3]["row"]["text"] == "no prompt"
    assert result.skipped == 4


def test_empty_input_is_an_error(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n\n")
    with pytest.raises(CaiError, match="no rows"):
        run_stage(Upper(), RunOptions(input=str(src), output=str(tmp_path / "out.jsonl")))


def test_row_failures_fail_fast_by_default_keeping_finished_rows(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(6))
    out = tmp_path / "out.jsonl"
    with pytest.raises(CaiError, match=r"in.jsonl:5: server kept failing"):
        run_stage(Upper(fail_ids={"r4"}), RunOptions(input=str(src), output=str(out), batch_size=2))
    assert not out.exists()
    assert finished_ids(tmp_path / "out.jsonl.partial") == ["r0", "r1", "r2", "r3"]


def test_row_failures_under_skip_are_retried_by_a_rerun(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(5))
    out = tmp_path / "out.jsonl"
    first = run_stage(Upper(fail_ids={"r2"}), RunOptions(input=str(src), output=str(out), on_error="skip", batch_size=2))
    assert first.failed == 1
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r1", "r3", "r4"]
    assert read_jsonl(tmp_path / "out.jsonl.errors.jsonl")[0]["row"]["id"] == "r2"

    retry = Upper()
    second = run_stage(retry, RunOptions(input=str(src), output=str(out), on_error="skip", batch_size=2))
    assert retry.processed == ["r2"]
    assert second.failed == 0
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}" for i in range(5)]
    assert not (tmp_path / "out.jsonl.errors.jsonl").exists()
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_too_long_rows_fail_before_work(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(3))
    stage = Upper(too_long_ids={"r1"})
    with pytest.raises(CaiError, match=r"in.jsonl:2: field 'prompt': the prompt is longer"):
        run_stage(stage, RunOptions(input=str(src), output=str(tmp_path / "out.jsonl")))
    assert stage.processed == []


def test_shards_partition_the_rows_and_limit_caps_them(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(40))
    seen = []
    for i in range(3):
        out = tmp_path / f"s{i}.jsonl"
        run_stage(Upper(), RunOptions(input=str(src), output=str(out), shard=(i, 3)))
        seen += [r["id"] for r in read_jsonl(out)]
    assert sorted(seen) == sorted(f"r{i}" for i in range(40))
    assert len(set(seen)) == 40
    assert sum(in_shard("r5", (k, 3)) for k in range(3)) == 1

    out = tmp_path / "limited.jsonl"
    run_stage(Upper(), RunOptions(input=str(src), output=str(out), limit=5))
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}" for i in range(5)]


def test_rows_without_id_get_a_stable_one(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "same"}, {"prompt": "other"}])
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run_stage(Upper(), RunOptions(input=str(src), output=str(out1)))
    run_stage(Upper(), RunOptions(input=str(src), output=str(out2)))
    ids = [r["id"] for r in read_jsonl(out1)]
    assert ids == [r["id"] for r in read_jsonl(out2)]
    assert ids[0] != ids[1]


def test_duplicate_ids_are_each_kept(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}])
    out = tmp_path / "out.jsonl"
    run_stage(Upper(), RunOptions(input=str(src), output=str(out)))
    assert [r["response"] for r in read_jsonl(out)] == ["A", "B"]


def test_append_log_repairs_a_torn_line_before_appending(tmp_path):
    path = tmp_path / "side.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "tor')
    log = AppendLog(path)
    log.write([{"id": "c"}])
    log.close()
    assert [r["id"] for r in read_jsonl(path)] == ["a", "c"]


@pytest.mark.parametrize(
    "row, field",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages[1].role"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "ok", "id": [1]}, "id"),
        ({"prompt": "ok", "id": True}, "id"),  # an integer to Python, not to JSON
        ({}, "prompt"),
    ],
)
def test_conversation_checks_name_the_field(row, field):
    with pytest.raises(FieldProblem) as err:
        check_conversation(row)
    assert err.value.field == field
