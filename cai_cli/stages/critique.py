"""critique: the model critiques its current response against one principle, drawn per row and per round.

Which principle (a list's critique pair, or a document's section) is the router's choice
(constitution/routing.py): by relevance to the conversation and tier, or uniformly as in the original
method. A row with a system message shows the operator's instructions with the critique request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..constitution import Constitution, FewShotExample, examples_hash
from ..constitution.routing import Route, Router, Routing, conversation_text
from ..errors import ConstitutionError, RowFailure
from ..prompts import critique_messages, with_operator
from ..rows import (
    CRITIQUE_FINISH,
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    operator_instructions,
    row_seed,
    set_meta,
)
from .base import EngineStage, finish_reason


def check_rounds(row: dict) -> list:
    rounds = row.get("rounds", [])
    if not isinstance(rounds, list) or not all(isinstance(r, dict) for r in rounds):
        raise FieldProblem("rounds", "expected a list of objects")
    return rounds


class FewShotStage(EngineStage):
    """A stage that shows worked examples before the row: as many as fit the model's context.

    few_shot None shows every example (as the method does: the recipe prepends all four of its own);
    N shows at most N. Where the examples, the row and --max-tokens do not fit the context, examples are
    dropped from the end for that row only, and meta.<stage>.few_shot records how many were shown.
    """

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int | None = None,
                 examples: Sequence[FewShotExample] | None = None, examples_source: str | None = None):
        super().__init__(engine_opts, sampling)
        self.constitution = constitution
        pool = tuple(constitution.few_shot if examples is None else examples)
        self.few_shot = few_shot
        self.examples = pool if few_shot is None else pool[: max(0, few_shot)]
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

    def few_shot_meta(self, shown: int) -> dict:
        return {"few_shot": shown, "few_shot_available": len(self.examples), "few_shot_source": self.examples_source}


class Critique(FewShotStage):
    name = "critique"

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int | None = None,
                 examples: Sequence[FewShotExample] | None = None, examples_source: str | None = None,
                 routing: Routing | None = None):
        super().__init__(engine_opts, sampling, constitution, few_shot, examples, examples_source)
        if not constitution.critiques:
            raise ConstitutionError(f"{constitution.source}: has no critique principles, which `cai critique` needs")
        self.router = Router(constitution, routing)

    def settings(self) -> dict:
        return {**super().settings(), "routing": self.router.routing.value}

    def check(self, row: dict) -> None:
        check_conversation(row)
        check_string(row, "response", "run `cai generate` first")
        rounds = check_rounds(row)
        if rounds and "revision" not in rounds[-1]:
            raise FieldProblem(f"rounds[{len(rounds) - 1}]", "the last round has a critique but no revision yet; run `cai revise` first")

    def pick(self, row: dict) -> tuple[Route, str]:
        """The route for this row and round (the principle, drawn with the seed among those whose `when` holds for
        its response and conversation, and its relevance), and the refusal detector's label of that response."""
        from ..refusal import detect

        label = detect(row["response"]).label
        operator = operator_instructions(row) is not None
        eligible = [p for p in self.constitution.critiques if p.applies_to(label, operator)]
        if not eligible:
            raise RowFailure(
                f"no critique principle of constitution '{self.constitution.name}' applies to a response labelled "
                f"'{label}' {'with' if operator else 'without'} a system message (every principle's `when` excludes it)",
                field="response",
            )
        rounds = row.get("rounds", [])
        used = [r.get("principle") for r in rounds]
        text = conversation_text(conversation(row), row["response"])
        return self.router.route(eligible, text, self.sampling.seed, str(row["id"]), len(rounds), used), label

    def request(self, row: dict, route: Route) -> str:
        """The critique request as shown: the principle's, then the operator's instructions where the row has some."""
        return with_operator(route.principle.critique, operator_instructions(row))

    def _build(self, row: dict, request: str) -> Callable[[Sequence[FewShotExample]], list[dict]]:
        return lambda examples: critique_messages(conversation(row), row["response"], request, examples)

    def context_messages(self, row: dict) -> list[dict]:
        route, _ = self.pick(row)
        build = self._build(row, self.request(row, route))
        return build(self.examples[: self.fitting(build)])

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        out: list[dict | RowFailure | None] = [None] * len(rows)
        todo, convs, seeds, picks = [], [], [], []
        for i, row in enumerate(rows):
            try:
                route, label = self.pick(row)
            except RowFailure as failure:
                out[i] = failure
                continue
            request = self.request(row, route)
            build = self._build(row, request)
            shown = self.fitting(build)
            todo.append(i)
            picks.append((route, label, request, shown))
            convs.append(build(self.examples[:shown]))
            seeds.append(row_seed(self.sampling.seed, self.name, row["id"], len(row.get("rounds", []))))
        for i, (route, label, request, shown), comp in zip(todo, picks, self.chat(convs, seeds) if convs else []):
            row = rows[i]
            if comp.error:
                out[i] = RowFailure(comp.error)
                continue
            principle = route.principle
            rounds = list(row.get("rounds", []))
            rounds.append({
                "principle": principle.id,
                **({"section": principle.section} if principle.section is not None else {}),
                "tier": principle.tier,
                "routing": route.routing.value,
                "relevance": route.relevance,
                "when": principle.when,
                "response_label": label,
                "operator": operator_instructions(row) is not None,
                "constitution_hash": self.constitution.hash,
                "principle_hash": principle.hash,
                "critique_request": request,
                "critique": comp.texts[0].strip(),
                CRITIQUE_FINISH: finish_reason(comp),  # in the round: a later round's critique must not overwrite it
            })
            row["rounds"] = rounds
            set_meta(row, self.name, self.provenance(
                constitution=self.constitution.name,
                constitution_hash=self.constitution.hash,
                constitution_source=self.constitution.source,
                **self.few_shot_meta(shown),
                round=len(rounds),
            ))
            out[i] = row
        return out  # type: ignore[return-value]
