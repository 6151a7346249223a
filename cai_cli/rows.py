"""The row contract between stages (see docs/design.md): ids, conversations, field checks, shards."""

from __future__ import annotations

import hashlib
import json
from typing import Any

ROLES = {"system", "user", "assistant"}


class FieldProblem(Exception):
    """A row's field is missing or mistyped; the runner adds file and line."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def stable_hash(value: Any, length: int = 16) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def row_seed(seed: int, *parts: object) -> int:
    """A row's own seed from the run seed and what identifies the sample (stage, row id, round, index).

    Every random choice about a row derives from this alone, so batch size, --shard, --limit and
    crash + resume never change the row.
    """
    digest = hashlib.sha256(":".join([str(seed), *map(str, parts)]).encode("utf-8")).hexdigest()
    return int(digest[:8], 16)


def row_id(row: dict) -> str:
    """The row's id, or a stable hash of its prompt/messages when it has none (see RowIds for repeated prompts)."""
    if "id" in row and row["id"] is not None:
        return str(row["id"])
    if isinstance(row.get("prompt"), str):
        return stable_hash(row["prompt"])
    if isinstance(row.get("messages"), list):
        return stable_hash(row["messages"])
    return stable_hash(row)


class RowIds:
    """Ids for the rows of one input, in input order: a row's own id, else the hash of its prompt (row_id), with
    "-N" added for the N-th row without an id that repeats that prompt ("3f2a...", "3f2a...-2", "3f2a...-3").

    Repeated prompts are separate samples: sharing an id they would share a seed, a principle and a resume record. The
    count runs over every row of the input in order (before --shard and --limit pick), so a file and a pipe, any shard
    or limit, and a resumed run give each row the same id. Memory: one entry per distinct prompt without an id.
    """

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, row: dict) -> str:
        if row.get("id") is not None:
            return str(row["id"])
        base = row_id(row)
        count = self.seen[base] = self.seen.get(base, 0) + 1
        return base if count == 1 else f"{base}-{count}"


def check_messages(value: Any, field: str = "messages") -> None:
    if not isinstance(value, list) or not value:
        raise FieldProblem(field, "expected a non-empty list of {\"role\", \"content\"} objects")
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise FieldProblem(where, f"expected an object, got {type(msg).__name__}")
        if msg.get("role") not in ROLES:
            raise FieldProblem(f"{where}.role", f"expected one of system/user/assistant, got {msg.get('role')!r}")
        if not isinstance(msg.get("content"), str):
            raise FieldProblem(f"{where}.content", "expected a string")
    if value[-1]["role"] != "user":
        raise FieldProblem(f"{field}[{len(value) - 1}].role", "the conversation must end with a user message")


def check_conversation(row: dict) -> None:
    """A row must carry the conversation being answered: `messages`, or a plain `prompt`."""
    if "messages" in row and row["messages"] is not None:
        check_messages(row["messages"])
    elif "prompt" in row:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise FieldProblem("prompt", "expected a non-empty string")
    else:
        raise FieldProblem("prompt", "missing: each row needs 'prompt' (a string) or 'messages' (a list)")
    if "id" in row and (not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool)):  # true is an int to Python
        raise FieldProblem("id", f"expected a string or integer, got {json.dumps(row['id']) if isinstance(row['id'], bool) else type(row['id']).__name__}")


def check_string(row: dict, field: str, hint: str = "") -> None:
    if field not in row:
        raise FieldProblem(field, "missing" + (f"; {hint}" if hint else ""))
    if not isinstance(row[field], str):
        raise FieldProblem(field, f"expected a string, got {type(row[field]).__name__}")


def check_rounds(row: dict) -> list:
    """The row's `rounds` (critique and revise append to it): a list of objects, empty where absent."""
    rounds = row.get("rounds", [])
    if not isinstance(rounds, list) or not all(isinstance(r, dict) for r in rounds):
        raise FieldProblem("rounds", "expected a list of objects")
    return rounds


def conversation(row: dict) -> list[dict]:
    """The conversation before the reply being worked on."""
    if row.get("messages"):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return [{"role": "user", "content": row["prompt"]}]


def operator_instructions(row: dict) -> str | None:
    """The operator's instructions: the text of a system message opening the row's conversation (None without one)."""
    messages = row.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        text = messages[0].get("content")
        return text if isinstance(text, str) and text.strip() else None
    return None


def parse_shard(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """--shard I/N as (I, N), or a one-line error naming the option."""
    if value is None or isinstance(value, tuple):
        return value
    from .errors import CaiError

    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise CaiError(f"--shard: expected I/N such as 0/4, got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise CaiError(f"--shard: expected 0 <= I < N, got {value!r}")
    return index, count


def in_shard(rid: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by id: the same row lands in the same shard on every machine."""
    if shard is None:
        return True
    index, count = shard
    bucket = int(hashlib.sha256(rid.encode("utf-8")).hexdigest()[:8], 16) % count
    return bucket == index


# A row's own `meta` that is not an object (a string, a list, a number) is kept under this key once a stage adds its
# provenance: {"meta": "source=x"} becomes {"meta": {"input": "source=x", "generate": {...}}}. null counts as no meta.
META_KEPT = "input"


def row_digest(row: dict) -> str:
    """An input row's content as a stage received it, `meta` left out (provenance, not content). The side file keeps
    it per finished row, so a resume compares content, not ids; meta.<stage>.input_hash records it, so `--amend` can
    tell which earlier output row was made from the same input."""
    return stable_hash({k: v for k, v in row.items() if k != "meta"})



# ---- finish reasons: whether a generated text stopped on its own or was cut at --max-tokens ----------------------

CRITIQUE_FINISH = "critique_finish_reason"  # in each round: why the critique stopped
REVISION_FINISH = "revision_finish_reason"  # in each round: why the revision stopped (absent: no text was generated)


def is_cut(reason: Any) -> bool:
    """A recorded finish reason says the text was cut at --max-tokens ("length"). A list (--n > 1) speaks for its first
    text, the one a stage keeps. No reason (rows written before cai recorded them) counts as not cut: nothing says so."""
    if isinstance(reason, list):
        reason = reason[0] if reason else None
    return reason == "length"


def meta_finish_reason(row: dict, stage: str) -> Any:
    """meta.<stage>.finish_reason (generate's: one reason, or one per candidate), or None."""
    meta = row.get("meta")
    info = meta.get(stage) if isinstance(meta, dict) else None
    return info.get("finish_reason") if isinstance(info, dict) else None


def round_finish_reason(row: dict, index: int, text: str) -> Any:
    """Why round INDEX's TEXT ("critique" or "revision") stopped, as the round records it. Rows written before rounds
    recorded it carry the last round's reason in meta.<stage>.finish_reason, which the next round overwrote: that is
    read for the last round only."""
    rounds = row.get("rounds")
    if not isinstance(rounds, list) or not -len(rounds) <= index < len(rounds) or not isinstance(rounds[index], dict):
        return None
    rnd = rounds[index]
    field = CRITIQUE_FINISH if text == "critique" else REVISION_FINISH
    if field in rnd:
        return rnd[field]
    if index in (-1, len(rounds) - 1) and not any(f in r for r in rounds if isinstance(r, dict) for f in (CRITIQUE_FINISH, REVISION_FINISH)):
        return meta_finish_reason(row, "critique" if text == "critique" else "revise")
    return None


def cut_replies(row: dict) -> dict[str, bool]:
    """Each reply the pipeline wrote for ROW (the first answer, then each round's revision) -> whether it was cut at
    --max-tokens. A round that kept the text before it (a skipped revision) did not write it, so the text keeps the
    status of the round (or generate) that did; a text written twice is cut only when every writing was."""
    status: dict[str, bool] = {}
    first = row.get("initial_response")
    if isinstance(first, str):
        status[first] = is_cut(meta_finish_reason(row, "generate"))
    rounds = row.get("rounds")
    for i, rnd in enumerate(rounds if isinstance(rounds, list) else []):
        if not isinstance(rnd, dict) or not isinstance(rnd.get("revision"), str):
            continue
        skip = rnd.get("skip_check")
        if isinstance(skip, dict) and skip.get("skipped") and rnd["revision"] in status:
            continue  # kept the text before it: not its writer
        cut = is_cut(round_finish_reason(row, i, "revision"))
        # A text another round wrote again and ended on its own is whole.
        status[rnd["revision"]] = status[rnd["revision"]] and cut if rnd["revision"] in status else cut
    response = row.get("response")
    if isinstance(response, str) and response not in status and not rounds and "initial_response" not in row:
        status[response] = is_cut(meta_finish_reason(row, "generate"))  # a row from generate alone
    return status


def set_meta(row: dict, stage: str, info: dict) -> None:
    """Record STAGE's provenance in meta.<stage>, keeping whatever else meta holds (a new dict: rows may share one)."""
    found = row.get("meta")
    if isinstance(found, dict):
        meta = dict(found)
    elif found is None:
        meta = {}
    else:
        meta = {META_KEPT: found}
    meta[stage] = info
    row["meta"] = meta


def stage_meta(row: dict, stage: str) -> dict:
    """meta.<stage> of ROW, or {} where the row has none (no meta, a meta that is not an object, another stage's)."""
    meta = row.get("meta")
    info = meta.get(stage) if isinstance(meta, dict) else None
    return info if isinstance(info, dict) else {}
