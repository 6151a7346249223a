"""Worked judgments from a file (--judge-examples): JSONL of {prompt|messages, a, b, answer}, or the paper's JSON
list of {prompt, corrects, incorrects}. Bad input names the file, the line or entry, and the field."""

from __future__ import annotations

import json

from ..errors import CaiError, InputError
from .questions import JudgeExample


def load_judge_examples(path: str) -> tuple[JudgeExample, ...]:
    """--judge-examples FILE: JSONL of {prompt|messages, a, b, answer: "A"|"B", question?}, or the paper's
    JSON list of {prompt, corrects, incorrects} (prompt in "\\n\\nHuman: ...\\n\\nAssistant:" text).

    Each (correct, incorrect) pair of the paper's file becomes one example; the correct one is (A) in
    every other example and (B) in the rest, so the examples do not teach a position.
    """
    from pathlib import Path

    from ..jsonl import display_name

    name = display_name(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark is ignored, as in JSONL
    except FileNotFoundError:
        raise CaiError(f"{name}: no such file") from None
    except OSError as exc:
        raise CaiError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if text.lstrip().startswith("["):
        from ..jsonl import JsonProblem, parse_json

        try:
            data = parse_json(text)
        except JsonProblem as exc:
            raise InputError(exc.message, file=name, line=exc.line, field=exc.field) from None
        out = _paper_examples(data, name)
    else:
        out = _jsonl_examples(path, name)
    if not out:
        raise CaiError(f"{name}: no judge examples (the file is empty)")
    return tuple(out)


def _jsonl_examples(path: str, name: str) -> list[JudgeExample]:
    from ..jsonl import numbered_rows
    from ..rows import FieldProblem, check_conversation, check_string, conversation

    out = []
    for line, row in numbered_rows(path):
        try:
            if "corrects" in row or "incorrects" in row:
                raise FieldProblem("corrects", "the paper's {prompt, corrects, incorrects} entries go in a JSON list (the file's whole content), not one per line")
            check_conversation(row)
            check_string(row, "a", "the response shown as (A)")
            check_string(row, "b", "the response shown as (B)")
            if row.get("answer") not in ("A", "B"):
                raise FieldProblem("answer", f"expected \"A\" or \"B\", got {row.get('answer')!r}")
            if "question" in row:
                check_string(row, "question")
        except FieldProblem as problem:
            raise InputError(problem.message, file=name, line=line, field=problem.field) from None
        conv = tuple((m["role"], m["content"]) for m in conversation(row))
        out.append(JudgeExample(conv, row["a"], row["b"], row["answer"], row.get("question")))
    return out


def transcript_turns(text: str) -> list[tuple[str, str]]:
    """'\\n\\nHuman: hi\\n\\nAssistant:' -> [("user", "hi")]; an empty last Assistant turn is the reply's slot."""
    from ..constitution.transcripts import transcript_blocks

    lead, blocks = transcript_blocks(text)
    if lead.strip():
        raise ValueError("text before the first 'Human:'")
    turns = [("user" if role == "Human" else "assistant", content) for role, content in blocks]
    if turns and turns[-1] == ("assistant", ""):
        turns.pop()
    if not turns or turns[0][0] != "user" or any(not c for _, c in turns):
        raise ValueError("expected 'Human: ...' turns (and 'Assistant: ...' ones), each with text")
    return turns


def _paper_examples(data, name: str) -> list[JudgeExample]:
    def bad(entry: int, fld: str, msg: str):
        return CaiError(f"{name}: entry {entry}: field '{fld}': {msg}")

    if not isinstance(data, list):
        raise CaiError(f"{name}: expected a JSON list of {{prompt, corrects, incorrects}} (or JSONL of {{prompt, a, b, answer}})")
    out: list[JudgeExample] = []
    for e, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise bad(e, "prompt", f"expected an object {{prompt, corrects, incorrects}}, got {type(entry).__name__}")
        prompt = entry.get("prompt")
        if not isinstance(prompt, str):
            raise bad(e, "prompt", "missing" if prompt is None else f"expected a string, got {type(prompt).__name__}")
        try:
            conv = tuple(transcript_turns(prompt))
        except ValueError as exc:
            raise bad(e, "prompt", str(exc)) from None
        sides = {}
        for fld in ("corrects", "incorrects"):
            value = entry.get(fld)
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                got = "missing" if value is None else f"got {json.dumps(value, ensure_ascii=False)[:60]}"
                raise bad(e, fld, f"expected a non-empty list of strings, {got}")
            sides[fld] = value
        for good in sides["corrects"]:
            for worse in sides["incorrects"]:
                if len(out) % 2 == 0:
                    out.append(JudgeExample(conv, good.strip(), worse.strip(), "A"))
                else:
                    out.append(JudgeExample(conv, worse.strip(), good.strip(), "B"))
    return out
