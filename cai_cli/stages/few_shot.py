"""What critique and revise share: worked examples shown before the row, as many as fit the model's context."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..constitution import Constitution, FewShotExample, examples_hash
from .base import EngineStage


class FewShotStage(EngineStage):
    """A stage that shows worked examples before the row: as many as fit the model's context.

    few_shot None shows every example (as the method does: the recipe prepends all four of its own);
    N shows at most N. Where the examples, the row and --max-tokens do not fit the context, examples are
    dropped from the end for that row only, and meta.<stage>.few_shot records how many were shown.
    """

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int | None = None,
                 examples: Sequence[FewShotExample] | None = None, examples_source: str | None = None):
        super().__init__(engine_opts, sampling)
        self.constitution: Constitution = constitution
        given = tuple(constitution.few_shot if examples is None else examples)
        self.few_shot = few_shot
        self.examples = given if few_shot is None else given[: max(0, few_shot)]
        self.examples_source = examples_source or "constitution"

    def settings(self) -> dict:
        return {
            "few_shot": self.few_shot,
            "few_shot_source": self.examples_source,
            "few_shot_hash": examples_hash(self.examples),
        }

    def fitting(self, build: Callable[[Sequence[FewShotExample]], list[dict]]) -> int:
        """How many of the examples (from the front) fit with the row and --max-tokens in the model's context."""
        k = len(self.examples)
        engine = self.engine
        limit = engine.max_context if engine is not None else None
        if engine is None or not limit:
            return k
        while k > 0 and engine.count_tokens(build(self.examples[:k])) + self.sampling.max_tokens > limit:
            k -= 1
        return k

    def input_files(self) -> dict[str, str]:
        files = super().input_files()
        if self.examples_source != "constitution":
            files["--few-shot-file"] = self.examples_source
        return files

    def few_shot_meta(self, shown: int) -> dict:
        return {"few_shot": shown, "few_shot_available": len(self.examples), "few_shot_source": self.examples_source}
