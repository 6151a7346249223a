"""export: rows → datasets that trl's trainers (or the Hugging Face CAI recipe) take as they are.

A row that would make a bad training example is left out, never written silently wrong: a text cut at --max-tokens
(the final revision for `sft` and `hf-cai`, and the last round's critique for `hf-cai`, which exports it; each by the
finish reason its round recorded; `--keep-truncated` keeps them) and a pair whose two sides are the same text (`prefs`,
`hf-cai`: it teaches nothing, and a DPO or reward loss on it only adds noise). Each left-out row is a dropped row
(runner.Dropped, with its reason): it goes to OUT.dropped.jsonl (or --dropped PATH), and the summary line counts
each reason, recounted from the finished rows.
"""

from __future__ import annotations

from enum import Enum

from ..errors import choice
from ..rows import FieldProblem, check_string, conversation, is_cut, round_finish_reason
from ..runner import Dropped
from ..trl_examples import Targets, check_pref, check_revised, pref_example, revision_targets
from .base import Stage


class ExportFormat(str, Enum):
    """--format: which dataset layout each row becomes."""

    sft = "sft"  # prompt/completion
    prefs = "prefs"  # prompt/chosen/rejected (+p_chosen)
    hf_cai = "hf-cai"  # the HuggingFaceH4/cai-conversation-harmless columns


TRUNCATED = "revision cut at --max-tokens"
CRITIQUE_TRUNCATED = "critique cut at --max-tokens"
SAME = "chosen and rejected are the same text"


def _hf_cai(row: dict, final: str) -> dict:
    """The columns of HuggingFaceH4/cai-conversation-harmless (one critique/revision turn: the last round)."""
    conv = conversation(row)
    last = row["rounds"][-1]
    user = conv[-1]["content"]
    reply = [{"role": "assistant", "content": final}]
    return {
        "init_prompt": user,
        "init_response": row["initial_response"],
        "critic_prompt": last.get("critique_request", ""),
        "critic_response": last.get("critique", ""),
        "revision_prompt": last.get("revision_request", ""),
        "revision_response": final,
        "prompt": user,
        "messages": conv + reply,
        "chosen": conv + reply,
        "rejected": conv + [{"role": "assistant", "content": row["initial_response"]}],
    }


class Export(Stage):
    name = "export"

    def __init__(self, fmt: ExportFormat | str, keep_truncated: bool = False):
        super().__init__()
        self.fmt = choice(ExportFormat, fmt, "--format")
        self.keep_truncated = keep_truncated
        self.left_out: dict[str, int] = {}  # reason -> rows left out for it

    def settings(self) -> dict:
        return {"format": self.fmt.value, "keep_truncated": self.keep_truncated}

    def check(self, row: dict) -> None:
        if self.fmt is ExportFormat.prefs:
            check_pref(row)
            return
        check_revised(row)
        if self.fmt is ExportFormat.hf_cai:
            check_string(row, "initial_response", "the first reply (from `cai generate`) is the rejected side")
            if not isinstance(row["rounds"][-1], dict):
                raise FieldProblem("rounds", "expected objects")

    def _export(self, row: dict) -> tuple[dict | None, str | None]:
        """(the exported row, None) or (None, why it is left out)."""
        if self.fmt is ExportFormat.prefs:
            example = pref_example(row)
            if example["chosen"][-1]["content"].strip() == example["rejected"][-1]["content"].strip():
                return None, SAME
            return {"id": row["id"], **example}, None
        [(final, truncated)] = revision_targets(row, Targets.final)
        if truncated and not self.keep_truncated:
            return None, TRUNCATED
        if self.fmt is ExportFormat.sft:
            # A trl dataset needs the same columns on every row: the id is kept, the rest of the row is not.
            return {"id": row["id"], "prompt": conversation(row), "completion": [{"role": "assistant", "content": final}]}, None
        if not self.keep_truncated and is_cut(round_finish_reason(row, -1, "critique")):
            return None, CRITIQUE_TRUNCATED  # hf-cai exports the last critique as critic_response
        if final.strip() == row["initial_response"].strip():
            return None, SAME  # no revision changed the first reply: the pair would prefer a text to itself
        return _hf_cai(row, final), None

    def process(self, rows: list[dict]) -> list[dict | Dropped]:
        out: list[dict | Dropped] = []
        for row in rows:
            exported, reason = self._export(row)
            out.append(exported if exported is not None else Dropped(row, str(reason)))
        return out

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        for row in dropped:
            self.left_out[row["dropped"]] = self.left_out.get(row["dropped"], 0) + 1

    def summary(self) -> str:
        parts = [f"format {self.fmt.value}"]
        for reason, count in self.left_out.items():
            parts.append(f"{count} left out ({reason})")
        if self.left_out.get(TRUNCATED) or self.left_out.get(CRITIQUE_TRUNCATED):
            parts.append("--keep-truncated keeps cut texts")
        return "; ".join(parts)
