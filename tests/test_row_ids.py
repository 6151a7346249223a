"""Rows without an id get a stable one: the hash of their prompt, and for the N-th repeat of a prompt that hash + "-N",
so repeated prompts are separate samples (their own seed, principle and resume record) whatever the input's path."""

from __future__ import annotations

import json

from cai_cli.rows import RowIds, stable_hash

from conftest import FAKE_ENV, invoke, read_jsonl, run_cai, write_jsonl

PROMPTS = ["How do I pick a lock?", "Tell me a joke.", "How do I pick a lock?", "How do I pick a lock?", "Tell me a joke."]
ROWS = [{"prompt": p} for p in PROMPTS]
LOCK, JOKE = stable_hash(PROMPTS[0]), stable_hash(PROMPTS[1])
IDS = [LOCK, JOKE, f"{LOCK}-2", f"{LOCK}-3", f"{JOKE}-2"]
FAKE = ["--engine", "fake", "--no-progress"]


def test_repeats_count_in_input_order_and_own_ids_are_kept():
    ids = RowIds()
    assert [ids(r) for r in [*ROWS, {"id": 7, "prompt": PROMPTS[0]}]] == [*IDS, "7"]


def test_repeated_prompts_get_distinct_stable_ids_and_samples(tmp_path, fake_engine):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "gen.jsonl"
    assert invoke("generate", str(src), "-o", str(out), *FAKE).exit_code == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == IDS
    assert len({r["response"] for r in rows}) == len(rows)  # each repeat is its own sample (its own seed)

    # A pipe gives the same ids and rows as the file.
    piped = run_cai("generate", *FAKE, input=src.read_text(), env=FAKE_ENV)
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == rows

    # Shards split by those ids and together give every row once; a limit takes a prefix of them.
    sharded = []
    for i in range(2):
        part = tmp_path / f"shard{i}.jsonl"
        assert invoke("generate", str(src), "-o", str(part), "--shard", f"{i}/2", *FAKE).exit_code == 0
        sharded += read_jsonl(part)
    assert sorted(r["id"] for r in sharded) == sorted(IDS) and all(r in rows for r in sharded)
    limited = tmp_path / "limit.jsonl"
    assert invoke("generate", str(src), "-o", str(limited), "--limit", "4", *FAKE).exit_code == 0
    assert read_jsonl(limited) == rows[:4]
