"""export: rows → datasets that trl's trainers (or the Hugging Face CAI recipe) take as they are."""

from __future__ import annotations

from ..errors import CaiError
from ..rows import FieldProblem, check_string, conversation
from ..runner import StageStats
from ..train.data import check_pref, check_revised, pref_example, sft_examples

FORMATS = ("sft", "prefs", "hf-cai")


def _hf_cai(row: dict) -> dict:
    """The columns of HuggingFaceH4/cai-conversation-harmless (one critique/revision turn: the last round)."""
    conv = conversation(row)
    last = row["rounds"][-1]
    user = conv[-1]["content"]
    final = sft_examples(row, "final")[0]["completion"]
    return {
        "init_prompt": user,
        "init_response": row["initial_response"],
        "critic_prompt": last.get("critique_request", ""),
        "critic_response": last.get("critique", ""),
        "revision_prompt": last.get("revision_request", ""),
        "revision_response": final[0]["content"],
        "prompt": user,
        "messages": conv + final,
        "chosen": conv + final,
        "rejected": conv + [{"role": "assistant", "content": row["initial_response"]}],
    }


class Export:
    name = "export"

    def __init__(self, fmt: str):
        if fmt not in FORMATS:
            raise CaiError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        self.fmt = fmt
        self.stats = StageStats()

    def settings(self) -> dict:
        return {"format": self.fmt}

    def check(self, row: dict) -> None:
        if self.fmt == "prefs":
            check_pref(row)
            return
        check_revised(row)
        if self.fmt == "hf-cai":
            check_string(row, "initial_response", "the first reply (from `cai generate`) is the rejected side")
            if not isinstance(row["rounds"][-1], dict):
                raise FieldProblem("rounds", "expected objects")

    def start(self) -> None:
        pass

    def check_loaded(self, row: dict) -> None:
        pass

    def process(self, rows: list[dict]) -> list[dict]:
        out = []
        for row in rows:
            if self.fmt == "sft":
                # A trl dataset needs the same columns on every row: the id is kept, the rest of the row is not.
                out.append({"id": row["id"], **sft_examples(row, "final")[0]})
            elif self.fmt == "prefs":
                out.append({"id": row["id"], **pref_example(row)})
            else:
                out.append(_hf_cai(row))
        return out

    def summary(self) -> str:
        return f"format {self.fmt}"
