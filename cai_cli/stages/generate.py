"""generate: sample a response (or N candidates) for each prompt."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from ..errors import RowFailure
from ..rows import check_conversation, conversation, set_meta
from .base import EngineStage


def row_seed(seed: int, row_id: str) -> int:
    """Per-batch seed derived from the run seed and the first row, so a resumed run samples like the first."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()
    return int(digest[:8], 16)


class Generate(EngineStage):
    name = "generate"

    def check(self, row: dict) -> None:
        check_conversation(row)

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        sampling = replace(self.sampling, seed=row_seed(self.sampling.seed, str(rows[0]["id"])))
        completions = self.chat([conversation(r) for r in rows], sampling)
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
            set_meta(row, self.name, self.provenance(prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens))
            out.append(row)
        return out
