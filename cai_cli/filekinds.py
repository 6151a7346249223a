"""What a file cai wrote is, told from its content: each JSON document's `kind` (declared here, written by its
stage), and the shapes of JSONL rows (stage rows, exports, errors, dropped rows, side files, training metrics).
Readers use it to name a file they cannot use in one line ("a label-prefs summary, not JSONL rows") rather than
fail on its first line. Pure functions over parsed data: no I/O."""

from __future__ import annotations

from typing import Any

# The `kind` field of each JSON document cai writes; the writers take these names from here.
LABEL_PREFS_SUMMARY = "cai-label-prefs-summary"
EVAL_SUMMARY = "cai-eval-summary"
EVAL_REPORT = "cai-eval-report"
TRAINING_CURVES = "cai-training-curves"
JUDGE_GATE = "cai-judge-gate"
JUDGE_SENSITIVITY = "cai-judge-sensitivity"
EVAL_FRONTIER = "cai-eval-frontier"

DOCUMENTS = {
    LABEL_PREFS_SUMMARY: "a label-prefs summary (the JSON `cai label-prefs` writes beside its rows)",
    EVAL_SUMMARY: "an eval summary (the JSON `cai eval` writes beside its rows)",
    EVAL_REPORT: "a merged report (`cai report --json-out`)",
    TRAINING_CURVES: "training curves (`cai report TRAIN_DIR --json-out`)",
    JUDGE_GATE: "a judge's measurement on gold pairs (what --gold writes beside a run's output)",
    JUDGE_SENSITIVITY: "a judge's sensitivity to the constitution (`cai judge check -o`)",
    EVAL_FRONTIER: "a harm / over-refusal frontier (the summary `cai eval --checkpoints` writes)",
}

SIDE_FILE_KEY = "cai_side_file"  # the first line of OUT.partial (resume.py): {"cai_side_file": version, "fingerprint": ...}

# meta.<name> is provenance written by these; the last one a row records is the stage that wrote the file.
STAGES = ("generate", "critique", "revise", "label-prefs", "score", "eval", "eval-frontier")


def describe_document(value: Any) -> str:
    """What a JSON document (a whole file that is one JSON value) is."""
    if isinstance(value, dict) and value.get("kind") in DOCUMENTS:
        return DOCUMENTS[value["kind"]]
    if isinstance(value, list):
        return "a JSON array"
    return "one JSON document"


def _conversation_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def is_training_metrics(row: dict) -> bool:
    """A row of the metrics.jsonl `cai train-*` writes (one per logged step)."""
    return "step" in row and "epoch" in row


def describe_rows(rows: list[dict]) -> str:
    """What JSONL rows are, from their first row: which cai stage or side file wrote them."""
    if not rows:
        return "empty"
    row = rows[0]
    if SIDE_FILE_KEY in row:
        return "the side file of an unfinished run (OUT.partial: rerun the stage to finish it)"
    if {"file", "line", "error"} <= row.keys():
        return "an errors file (the rows a stage could not use, with the reason)"
    if is_training_metrics(row):
        return "training metrics (metrics.jsonl of `cai train-*`)"
    if "init_prompt" in row and "revision_response" in row:
        return "rows from `cai export --format hf-cai`"
    if "completion" in row and _conversation_list(row.get("prompt")):
        return "rows from `cai export --format sft`"
    if "chosen" in row and "rejected" in row and _conversation_list(row.get("prompt")):
        return "rows from `cai export --format prefs`"
    if "dropped" in row:
        return "rows left out on purpose (OUT.dropped.jsonl)"
    meta = row.get("meta")
    stages = [k for k in meta if k in STAGES] if isinstance(meta, dict) else []
    if stages:
        return f"rows from `cai {stages[-1]}`"
    return "JSONL rows that no cai stage wrote"
