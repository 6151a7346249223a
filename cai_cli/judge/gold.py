"""Gold pairs: two answers to one conversation, one of them known to be the better, read from a JSONL file in the
shapes the community publishes them (read strictly through cai_cli/jsonl.py: a bad line names the file, the line and
the field).

One line per conversation, in any of these shapes (the shape is told per line, from its fields):
- HHH, as BIG-bench's `hhh_alignment` task lists it: {"input": TEXT, "target_scores": {ANSWER: SCORE, ...}}; or as
  its Hugging Face copy does: {"input": TEXT, "targets": {"choices": [ANSWER, ...], "labels": [SCORE, ...]}}. The
  answer with the highest score is the better one (it must be the only one with that score), against each other
  answer: one pair each. INPUT is the user's message, or a transcript in the paper's layout
  ("Human: ...\\n\\nAssistant: ...", the last turn the user's).
- trl's preference format: {"chosen", "rejected"}, each a conversation ending with the assistant's reply (with or
  without an explicit "prompt"), or each a text with "prompt" a text or a conversation; or Anthropic's HH-RLHF
  transcripts, "\\n\\nHuman: ...\\n\\nAssistant: ..." for both sides, whose shared turns are the conversation.
  `chosen` is the better one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import CaiError, InputError
from ..rows import ROLES, FieldProblem, check_messages, conversation
from .examples import transcript_turns


@dataclass(frozen=True)
class GoldPair:
    """One comparison with a known answer: in CONVERSATION, BETTER is better than WORSE."""

    id: str
    conversation: list[dict]
    better: str
    worse: str


def load_gold(path: str) -> list[GoldPair]:
    """Every gold pair of PATH (JSONL; see the module docstring), in file order; one line naming the file, line and
    field for anything else."""
    from ..jsonl import display_name, numbered_rows

    name = display_name(path)
    out: list[GoldPair] = []
    seen: set[str] = set()
    for line, row in numbered_rows(path):
        try:
            pairs = _pairs(row, line)
        except FieldProblem as problem:
            raise InputError(problem.message, file=name, line=line, field=problem.field) from None
        for pair in pairs:
            if pair.id in seen:
                raise InputError(f"id {pair.id!r} is used by an earlier gold pair; ids must be unique", file=name, line=line, field="id")
            seen.add(pair.id)
            out.append(pair)
    if not out:
        raise CaiError(f"{name}: no gold pairs (the file is empty)")
    return out


def _pairs(row: dict, line: int) -> list[GoldPair]:
    rid = row.get("id", f"gold{line}")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise FieldProblem("id", f"expected a string or an integer, got {type(rid).__name__}")
    rid = str(rid)
    if "input" in row:
        conv = _input_conversation(row["input"])
        answers = _scored_answers(row)
        best = max(answers.values())
        top = [a for a, s in answers.items() if s == best]
        field = "target_scores" if "target_scores" in row else "targets.labels"
        if len(top) != 1:
            raise FieldProblem(field, f"{len(top)} answers share the highest score {best:g}; a gold pair needs one better answer")
        others = [a for a in answers if a != top[0]]
        suffix = (lambda k: "") if len(others) == 1 else (lambda k: f":{k}")
        return [GoldPair(f"{rid}{suffix(k)}", conv, top[0], other) for k, other in enumerate(others)]
    if "chosen" in row or "rejected" in row:
        conv, better, worse = _preference(row)
        if better == worse:
            raise FieldProblem("rejected", "the same text as chosen: no preference to measure")
        return [GoldPair(rid, conv, better, worse)]
    raise FieldProblem("chosen", "missing; expected a gold pair: HHH's {\"input\", \"target_scores\"} (or \"targets\": {\"choices\", \"labels\"}), "
                             "or trl's {\"chosen\", \"rejected\"} (with \"prompt\" where the sides are texts)")


def _input_conversation(value) -> list[dict]:
    if not isinstance(value, str) or not value.strip():
        raise FieldProblem("input", "expected the user's message (or a Human:/Assistant: transcript) as a non-empty string")
    if "Human:" not in value:
        return [{"role": "user", "content": value.strip()}]
    try:
        turns = transcript_turns("\n\n" + value.strip())
    except ValueError as exc:
        raise FieldProblem("input", str(exc)) from None
    if turns[-1][0] != "user":
        raise FieldProblem("input", "the transcript must end with the human's turn (the answers reply to it)")
    return [{"role": r, "content": c} for r, c in turns]


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldProblem(field, f"expected a number, got {json.dumps(value, ensure_ascii=False)[:40]}")
    return float(value)


def _scored_answers(row: dict) -> dict[str, float]:
    """HHH's answers and their scores (BIG-bench's target_scores, or the Hugging Face copy's targets)."""
    if "target_scores" in row:
        found = row["target_scores"]
        if not isinstance(found, dict) or len(found) < 2:
            raise FieldProblem("target_scores", "expected an object of two or more answers, each with its score")
        answers = {str(a): _number(s, f"target_scores.{a[:30]}") for a, s in found.items()}
    elif isinstance(row.get("targets"), dict):
        choices, labels = row["targets"].get("choices"), row["targets"].get("labels")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices) or len(choices) < 2:
            raise FieldProblem("targets.choices", "expected a list of two or more answers (strings)")
        if not isinstance(labels, list) or len(labels) != len(choices):
            raise FieldProblem("targets.labels", f"expected one score per choice ({len(choices)})")
        if len(set(choices)) != len(choices):
            raise FieldProblem("targets.choices", "the same answer twice")
        answers = {c: _number(s, f"targets.labels[{i}]") for i, (c, s) in enumerate(zip(choices, labels))}
    else:
        raise FieldProblem("target_scores", "missing: HHH rows give the answers with their scores (target_scores, or targets with choices and labels)")
    for a in answers:
        if not a.strip():
            raise FieldProblem("target_scores" if "target_scores" in row else "targets.choices", "an empty answer")
    return answers


def _side(row: dict, field: str) -> tuple[list[dict] | None, str]:
    """One side of a trl preference row as (the conversation before the reply or None, the reply)."""
    value = row.get(field)
    if value is None:
        raise FieldProblem(field, "missing; a trl preference row has both chosen and rejected")
    if isinstance(value, str):
        if value.lstrip().startswith("Human:") and "\n\nAssistant:" in value:
            try:
                turns = transcript_turns(value if value.startswith("\n\n") else "\n\n" + value.lstrip())
            except ValueError as exc:
                raise FieldProblem(field, str(exc)) from None
            if turns[-1][0] != "assistant":
                raise FieldProblem(field, "the transcript must end with the assistant's reply")
            return [{"role": r, "content": c} for r, c in turns[:-1]], turns[-1][1]
        if not value.strip():
            raise FieldProblem(field, "an empty reply")
        return None, value
    if not isinstance(value, list) or not value:
        raise FieldProblem(field, "expected a conversation (a list of {\"role\", \"content\"}) ending with the assistant's reply, or a text")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise FieldProblem(f"{field}[{i}]", "expected {\"role\": system/user/assistant, \"content\": string}")
    if value[-1]["role"] != "assistant":
        raise FieldProblem(f"{field}[{len(value) - 1}].role", "the last message must be the assistant's reply")
    return [{"role": m["role"], "content": m["content"]} for m in value[:-1]] or None, value[-1]["content"]


def _preference(row: dict) -> tuple[list[dict], str, str]:
    chosen_ctx, better = _side(row, "chosen")
    rejected_ctx, worse = _side(row, "rejected")
    if chosen_ctx is not None and rejected_ctx is not None and chosen_ctx != rejected_ctx:
        raise FieldProblem("rejected", "its conversation before the reply differs from chosen's; both must answer the same prompt")
    conv = chosen_ctx or rejected_ctx
    if "prompt" in row:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            given = [{"role": "user", "content": prompt}]
        else:
            check_messages(prompt, "prompt")
            given = conversation({"messages": prompt})
        conv = given + (conv or [])
    if not conv:
        raise FieldProblem("prompt", "missing: chosen and rejected are texts, so the row needs the prompt they answer")
    return conv, better, worse
