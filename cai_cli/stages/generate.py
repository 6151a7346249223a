"""generate: sample a response (or N candidates) for each prompt."""

from __future__ import annotations

from ..errors import RowFailure
from ..rows import check_conversation, conversation, meta_finish_reason, row_seed, set_meta
from .base import EngineStage, finish_reason


class Generate(EngineStage):
    name = "generate"
    cut_in_rows = True

    def cut_texts(self, row: dict) -> int:
        reasons = meta_finish_reason(row, self.name)  # one reason, or one per candidate (--n)
        return sum(r == "length" for r in (reasons if isinstance(reasons, list) else [reasons]))

    def settings(self) -> dict:
        return {}  # everything that shapes a row (--n, --max-tokens, ...) is in the sampling settings

    def check(self, row: dict) -> None:
        check_conversation(row)

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        seeds = [row_seed(self.sampling.seed, self.name, r["id"]) for r in rows]
        completions = self.chat([conversation(r) for r in rows], seeds)
        out: list[dict | RowFailure] = []
        for row, comp in zip(rows, completions):
            if comp.error:
                out.append(RowFailure(comp.error))
                continue
            if self.sampling.n == 1:
                row["response"] = comp.texts[0].strip()
                row["initial_response"] = row["response"]
            else:
                row["candidates"] = [t.strip() for t in comp.texts]
            set_meta(row, self.name, self.provenance(
                prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens, finish_reason=finish_reason(comp)
            ))
            out.append(row)
        return out
