"""Rows → training examples in trl's conversational formats (prompt-completion, preference pairs, prompts), each
with whether its text was cut at --max-tokens: shared by the trainers and `cai export`. No heavy imports here."""

from __future__ import annotations

from enum import Enum

from .rows import ROLES, FieldProblem, check_conversation, check_string, conversation, cut_replies, is_cut, meta_finish_reason


class Targets(str, Enum):
    """--targets: which revisions of a row become training examples."""

    final = "final"  # the last revision
    all = "all"  # every distinct revision, each its own example


def _revisions(row: dict) -> list[str]:
    rounds = row.get("rounds")
    if rounds is None:
        raise FieldProblem("rounds", "missing: no critique/revision rounds; run `cai critique | cai revise` first")
    if not isinstance(rounds, list) or not all(isinstance(r, dict) for r in rounds):
        raise FieldProblem("rounds", "expected a list of objects; run `cai critique | cai revise` first")
    texts = [r["revision"] for r in rounds if isinstance(r.get("revision"), str) and r["revision"].strip()]
    if not texts:
        raise FieldProblem("rounds", "no revision yet; run `cai critique | cai revise` first")
    return texts


def check_revised(row: dict) -> None:
    check_conversation(row)
    _revisions(row)


def revision_targets(row: dict, targets: Targets = Targets.final) -> list[tuple[str, bool]]:
    """The revisions to train on as (text, truncated), each text once, in round order.

    A text is truncated when the generation that wrote it stopped at --max-tokens: its round's
    `revision_finish_reason` (rows.cut_replies; a skipped revision keeps the status of the text it kept, the first
    reply's included). With --targets all, a cut revision of any round is marked, not only the last one.
    """
    _revisions(row)
    status = cut_replies(row)
    written = [r["revision"] for r in row["rounds"] if isinstance(r.get("revision"), str) and r["revision"].strip()]
    # A round whose critique found nothing keeps the previous text; training on it twice would only overweight it.
    chosen = [written[-1]] if Targets(targets) is Targets.final else list(dict.fromkeys(written))
    return [(text, status[text]) for text in chosen]


def sft_candidates(row: dict, targets: Targets = Targets.final) -> list[dict]:
    """(conversation, revision) in trl's prompt-completion conversational format (loss on the completion only), each
    with `truncated`: whether the revision was cut at --max-tokens. Drop that key before training."""
    prompt = conversation(row)
    return [
        {"prompt": prompt, "completion": [{"role": "assistant", "content": text}], "truncated": truncated}
        for text, truncated in revision_targets(row, targets)
    ]


def keep_whole(candidates: list[dict], keep_truncated: bool) -> tuple[list[dict], int]:
    """(examples without the `truncated` key, how many truncated ones were left out)."""
    kept = [{k: v for k, v in c.items() if k != "truncated"} for c in candidates if keep_truncated or not c["truncated"]]
    return kept, len(candidates) - len(kept)


def check_helpful(row: dict) -> None:
    check_conversation(row)
    check_string(row, "response", "helpful rows need a `response` to train on")


def helpful_example(row: dict) -> dict:
    """A helpful row as a prompt-completion example, with `truncated` from `meta.generate.finish_reason` (no reason
    recorded: not truncated)."""
    return {"prompt": conversation(row), "completion": [{"role": "assistant", "content": row["response"]}],
            "truncated": is_cut(meta_finish_reason(row, "generate"))}


def _reply(row: dict, field: str) -> tuple[list[dict] | None, str]:
    """A side of a pair as (conversation before the reply or None, reply text)."""
    value = row.get(field)
    if value is None:
        raise FieldProblem(field, "missing; preference rows come from `cai label-prefs` (chosen/rejected message lists)")
    if isinstance(value, str):
        return None, value
    if not isinstance(value, list) or not value:
        raise FieldProblem(field, "expected a non-empty list of {\"role\", \"content\"} objects or a string")
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES or not isinstance(msg.get("content"), str):
            raise FieldProblem(f"{field}[{i}]", "expected {\"role\": system/user/assistant, \"content\": string}")
    if value[-1]["role"] != "assistant":
        raise FieldProblem(f"{field}[{len(value) - 1}].role", "the last message must be the assistant's reply")
    before = [{"role": m["role"], "content": m["content"]} for m in value[:-1]]
    return (before or None), value[-1]["content"]


def p_chosen(row: dict) -> float:
    """The soft label: P(chosen is better). Rows without `preference` count as certain (1.0)."""
    pref = row.get("preference")
    if pref is None:
        return 1.0
    if not isinstance(pref, dict):
        raise FieldProblem("preference", "expected an object with p_chosen")
    p = pref.get("p_chosen", 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise FieldProblem("preference.p_chosen", f"expected a number between 0 and 1, got {p!r}")
    return float(p)


def pref_example(row: dict) -> dict:
    """{"prompt", "chosen", "rejected"} with an explicit prompt (accepted by DPOTrainer and RewardTrainer), plus p_chosen."""
    chosen_ctx, chosen = _reply(row, "chosen")
    rejected_ctx, rejected = _reply(row, "rejected")
    if chosen_ctx is not None and rejected_ctx is not None and chosen_ctx != rejected_ctx:
        raise FieldProblem("rejected", "its conversation before the reply differs from chosen's; both must answer the same prompt")
    prompt = chosen_ctx or rejected_ctx
    if prompt is None:
        check_conversation(row)
        prompt = conversation(row)
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "p_chosen": p_chosen(row),
    }


def check_pref(row: dict) -> None:
    pref_example(row)


def prompt_example(row: dict) -> dict:
    return {"prompt": conversation(row)}
