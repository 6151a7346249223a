"""critique: the model critiques its current response against one principle, drawn per row and per round."""

from __future__ import annotations

from ..constitution import Constitution, sample_principle_index
from ..errors import RowFailure
from ..prompts import critique_messages
from ..rows import (
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    row_seed,
    set_meta,
)
from .base import EngineStage, finish_reason


def check_rounds(row: dict) -> list:
    rounds = row.get("rounds", [])
    if not isinstance(rounds, list) or not all(isinstance(r, dict) for r in rounds):
        raise FieldProblem("rounds", "expected a list of objects")
    return rounds


class Critique(EngineStage):
    name = "critique"

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int = 1):
        super().__init__(engine_opts, sampling)
        self.constitution = constitution
        self.examples = constitution.few_shot[: max(0, few_shot)]
        if not constitution.critiques:
            from ..errors import ConstitutionError

            raise ConstitutionError(f"{constitution.source}: has no critique principles, which `cai critique` needs")

    def settings(self) -> dict:
        return {"few_shot": len(self.examples)}

    def check(self, row: dict) -> None:
        check_conversation(row)
        check_string(row, "response", "run `cai generate` first")
        rounds = check_rounds(row)
        if rounds and "revision" not in rounds[-1]:
            raise FieldProblem(f"rounds[{len(rounds) - 1}]", "the last round has a critique but no revision yet; run `cai revise` first")

    def pick(self, row: dict):
        index = sample_principle_index(len(self.constitution.critiques), self.sampling.seed, str(row["id"]), len(row.get("rounds", [])))
        return self.constitution.critiques[index]

    def context_messages(self, row: dict) -> list[dict]:
        return critique_messages(conversation(row), row["response"], self.pick(row).critique, self.examples)

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        principles = [self.pick(r) for r in rows]
        convs = [critique_messages(conversation(r), r["response"], p.critique, self.examples) for r, p in zip(rows, principles)]
        seeds = [row_seed(self.sampling.seed, self.name, r["id"], len(r.get("rounds", []))) for r in rows]
        out: list[dict | RowFailure] = []
        for row, principle, comp in zip(rows, principles, self.chat(convs, seeds)):
            if comp.error:
                out.append(RowFailure(comp.error))
                continue
            rounds = list(row.get("rounds", []))
            rounds.append({"principle": principle.id, "critique_request": principle.critique, "critique": comp.texts[0].strip()})
            row["rounds"] = rounds
            set_meta(row, self.name, self.provenance(
                constitution=self.constitution.name,
                constitution_hash=self.constitution.hash,
                few_shot=len(self.examples),
                round=len(rounds),
                finish_reason=finish_reason(comp),
            ))
            out.append(row)
        return out
