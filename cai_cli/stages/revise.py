"""revise: the model rewrites its response to answer the last round's critique; the revision becomes `response`."""

from __future__ import annotations

from ..constitution import Constitution
from ..errors import RowFailure
from ..prompts import clean_output, critique_finds_nothing, revision_messages
from ..rows import (
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    row_seed,
    set_meta,
)
from .base import EngineStage, finish_reason
from .critique import check_rounds


class Revise(EngineStage):
    name = "revise"

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int = 1):
        super().__init__(engine_opts, sampling)
        self.constitution = constitution
        self.examples = constitution.few_shot[: max(0, few_shot)]
        self.stats.extra = {"revised": 0, "unchanged": 0}

    def settings(self) -> dict:
        return {"few_shot": len(self.examples)}

    def check(self, row: dict) -> None:
        check_conversation(row)
        check_string(row, "response")
        rounds = check_rounds(row)
        where = f"rounds[{len(rounds) - 1}]" if rounds else "rounds"
        if not rounds or not isinstance(rounds[-1].get("critique"), str):
            raise FieldProblem(where, "no critique to answer; run `cai critique` first")
        if "revision" in rounds[-1]:
            raise FieldProblem(where, "the last round is already revised; run `cai critique` for a new round")
        pid = rounds[-1].get("principle")
        ids = {p.id for p in self.constitution.critiques}
        if pid not in ids:
            raise FieldProblem(f"{where}.principle", f"{pid!r} is not a critique principle of constitution '{self.constitution.name}' (was the critique made with another --constitution?)")

    def _messages(self, row: dict) -> list[dict]:
        last = row["rounds"][-1]
        principle = self.constitution.critique_by_id(last["principle"])
        return revision_messages(conversation(row), row["response"], last["critique_request"], last["critique"], principle.revision, self.examples)

    context_messages = _messages

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        seeds = [row_seed(self.sampling.seed, self.name, r["id"], len(r["rounds"])) for r in rows]
        out: list[dict | RowFailure] = []
        for row, comp in zip(rows, self.chat([self._messages(r) for r in rows], seeds)):
            if comp.error:
                out.append(RowFailure(comp.error))
                continue
            last = dict(row["rounds"][-1])
            last["revision_request"] = self.constitution.critique_by_id(last["principle"]).revision
            revision = clean_output(comp.texts[0])
            # A critique that finds nothing to fix should not churn a good answer; an empty revision is no revision.
            unchanged = critique_finds_nothing(last["critique"]) or not revision
            last["revision"] = row["response"] if unchanged else revision
            last["changed"] = not unchanged
            if unchanged and revision:
                last["discarded_revision"] = revision
            row["rounds"] = row["rounds"][:-1] + [last]
            row["response"] = last["revision"]
            self.stats.extra["unchanged" if unchanged else "revised"] += 1
            set_meta(row, self.name, self.provenance(
                constitution=self.constitution.name,
                constitution_hash=self.constitution.hash,
                few_shot=len(self.examples),
                round=len(row["rounds"]),
                finish_reason=finish_reason(comp),
            ))
            out.append(row)
        return out
