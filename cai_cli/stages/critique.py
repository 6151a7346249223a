"""critique: the model critiques its current response against one principle, drawn per row and per round.

Which principle (a list's critique pair, or a document's section) is the router's choice
(constitution/routing.py): by relevance to the conversation and tier, or uniformly as in the original
method. A row with a system message shows the operator's instructions with the critique request.

Two checks come first, each a scored yes/no pair asked of the model itself (cai_cli.judge):
- the hard-constraint gate (judge/gate.py): the response is checked against every hard constraint of the
  constitution; where it likely crosses one, this round critiques it against that constraint instead of a drawn
  principle (routing "hard-constraint", the round says why). Every round records the gate's probabilities.
- is the request harmful? (judge/request_harm.py): asked where the response declined and a principle meant for
  over-refusals (`when: refused`) could be drawn; such principles are drawn only where the request is judged
  harmless, so a correct refusal of a harmful request is never critiqued for refusing. The round records it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..constitution import Constitution, CritiquePrinciple, FewShotExample
from ..constitution import behaviours as bh
from ..constitution.passages import budget_for
from ..constitution.requests import constraint_principle, sized
from ..constitution.routing import DEFAULT_RANKER, Ranker, Router, Routing, conversation_text
from ..errors import ConstitutionError, RowFailure
from ..judge.gate import VIOLATION_THRESHOLD, Gate, GateResult
from ..judge.request_harm import HARMLESS_BELOW, judged_harmless, p_harmful
from ..rows import (
    CRITIQUE_FINISH,
    FieldProblem,
    check_conversation,
    check_rounds,
    check_string,
    conversation,
    is_cut,
    operator_instructions,
    round_finish_reason,
    row_seed,
    set_meta,
)
from .base import finish_reason
from .critique_prompts import critique_messages, with_behaviours, with_operator
from .few_shot import FewShotStage

# A round's `routing` where the gate, not the router, chose its principle.
GATE_ROUTING = "hard-constraint"


@dataclass(frozen=True)
class HarmAsked:
    """The harmful-request judgement of one row: P(harmful), None where the model gave neither answer any probability."""

    p_harmful: float | None


@dataclass
class Pick:
    """What one row's round critiques against, and why."""

    principle: CritiquePrinciple
    routing: str  # "relevance" | "uniform" | GATE_ROUTING
    relevance: float | None
    label: str  # the refusal detector's label of the response
    matched: tuple[str, ...] = ()  # the words of the conversation that matched the principle (relevance routing)
    gate: GateResult | None = None  # None: the constitution has no hard constraints
    gated: str | None = None  # why the gate chose this round's principle
    request_harm: dict | None = None  # the harmful-request judgement, where it was asked
    ranker: str | None = None  # what scored `relevance` (relevance routing)


class Critique(FewShotStage):
    name = "critique"
    cut_in_rows = True

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int | None = None,
                 examples: Sequence[FewShotExample] | None = None, examples_source: str | None = None,
                 routing: Routing | None = None, gate_threshold: float = VIOLATION_THRESHOLD, passage_tokens: int | None = None,
                 ranker: Ranker | str = DEFAULT_RANKER):
        # A document's passages sized for this model (or --passage-tokens): what routing ranks and the critic is shown.
        constitution = sized(constitution, budget_for(engine_opts.model, engine_opts.vllm.max_model_len, passage_tokens))
        super().__init__(engine_opts, sampling, constitution, few_shot, examples, examples_source)
        if not constitution.critiques:
            raise ConstitutionError(f"{constitution.source}: has no critique principles, which `cai critique` needs")
        self.router = Router(constitution, routing, ranker)
        self.gate = Gate(constitution, gate_threshold)
        self.stats.extra = {"gated": 0, "over_refusal_left_out": 0}

    def cut_texts(self, row: dict) -> int:
        return int(is_cut(round_finish_reason(row, -1, "critique")))  # this round's critique

    def settings(self) -> dict:
        relevance = self.router.routing is Routing.relevance
        return {**super().settings(), "routing": self.router.routing.value, **({"ranker": self.router.ranker.value} if relevance else {}),
                **({"gate_threshold": self.gate.threshold} if self.gate else {}),
                **({"passage_tokens": self.constitution.passage_tokens} if self.constitution.is_document else {})}

    def summary(self) -> str:
        e = self.stats.extra
        parts = []
        if self.gate:
            parts.append(f"{e['gated']} rounds on a hard constraint the response likely crosses")
        if e["over_refusal_left_out"]:
            parts.append(f"over-refusal principles left out on {e['over_refusal_left_out']} refusals of requests not judged clearly harmless")
        return ", ".join(parts)

    def check(self, row: dict) -> None:
        check_conversation(row)
        bh.check_field(row)
        check_string(row, "response", "run `cai generate` first")
        rounds = check_rounds(row)
        if rounds and "revision" not in rounds[-1]:
            raise FieldProblem(f"rounds[{len(rounds) - 1}]", "the last round has a critique but no revision yet; run `cai revise` first")

    def over_refusal_principles(self, label: str, operator: bool) -> list[CritiquePrinciple]:
        """The principles meant for over-refusals (`when: refused`) that could be drawn for this response."""
        return [p for p in self.constitution.critiques if p.when == "refused" and p.applies_to(label, operator)]

    def pick(self, row: dict, label: str | None = None, gate: GateResult | None = None, harm: HarmAsked | None = None) -> Pick:
        """The principle for this row and round. GATE: the response's gate result (a constraint it likely crosses
        takes the round). HARM: the harmful-request judgement where it was asked (None: not asked, every principle
        whose `when` holds may be drawn). Otherwise the router draws, with the seed, among those whose `when` holds
        for the response (LABEL, the refusal detector's) and the conversation."""
        from ..refusal import detect

        label = label or detect(row["response"]).label
        if gate is not None and gate.crossed:
            cid = gate.crossed[0]
            constraint = next(h for h in self.constitution.hard_constraints if h.id == cid)
            why = f"P(violation) {gate.violations[cid]:.2f} > {gate.threshold}: this round critiques the response against hard constraint '{cid}'"
            return Pick(constraint_principle(self.constitution, constraint), GATE_ROUTING, None, label, (), gate, why)
        operator = operator_instructions(row) is not None
        eligible = [p for p in self.constitution.critiques if p.applies_to(label, operator)]
        request_harm = None
        if harm is not None and self.over_refusal_principles(label, operator):
            p = harm.p_harmful
            harmless = judged_harmless(p)
            request_harm = {"p_harmful": None if p is None else round(p, 6), "harmless_below": HARMLESS_BELOW,
                            "over_refusal_principles": "eligible" if harmless else "left out"}
            if not harmless:
                eligible = [q for q in eligible if q.when != "refused"]
        if not eligible:
            why = " (the over-refusal principles are left out: the request was not judged harmless)" if request_harm else ""
            raise RowFailure(
                f"no critique principle of constitution '{self.constitution.name}' applies to a response labelled "
                f"'{label}' {'with' if operator else 'without'} a system message (every principle's `when` excludes it){why}",
                field="response",
            )
        rounds = row.get("rounds", [])
        used = [r.get("principle") for r in rounds]
        # the descriptions of the behaviours switched from their default join the words the row is ranked by
        text = "\n".join(x for x in (conversation_text(conversation(row), row["response"]), bh.switched_text(self.constitution, bh.of_row(self.constitution, row))) if x)
        route = self.router.route(eligible, text, self.sampling.seed, str(row["id"]), len(rounds), used)
        return Pick(route.principle, route.routing.value, route.relevance, label, route.matched, gate, None, request_harm,
                    route.ranker.value if route.ranker is not None else None)

    def passage_fields(self, principle: CritiquePrinciple) -> dict:
        """What a round records of the passage it showed: its id, its content hash and the budget it was cut under."""
        if principle.passage is None:
            return {}
        passage = self.constitution.passage_by_id(principle.passage)
        return {"passage": passage.id, "passage_hash": passage.hash, "passage_tokens": self.constitution.passage_tokens}

    def behaviour_fields(self, row: dict) -> dict:
        """What a round records of the instructable behaviours in force: their states and the hash of the note shown."""
        states = bh.of_row(self.constitution, row)
        return {"behaviours": states, "behaviours_hash": bh.note_hash(self.constitution, states)} if states else {}

    def request(self, row: dict, principle: CritiquePrinciple) -> str:
        """The critique request as shown: the principle's, then the operator's instructions where the row has some, then
        the instructable behaviours in force where the constitution declares some."""
        told = bh.note(self.constitution, bh.of_row(self.constitution, row))
        return with_behaviours(with_operator(principle.critique, operator_instructions(row)), told)

    def _build(self, row: dict, request: str) -> Callable[[Sequence[FewShotExample]], list[dict]]:
        return lambda examples: critique_messages(conversation(row), row["response"], request, examples)

    def context_messages(self, row: dict) -> list[dict]:
        """The longest conversation this row's round may show: the drawn principle's, or a hard constraint's where the
        gate could give it one (the gate and the harm check are asked in process(), with the batch)."""
        requests = [self.request(row, self.pick(row).principle)]
        requests += [self.request(row, constraint_principle(self.constitution, h)) for h in self.constitution.hard_constraints]
        build = self._build(row, max(requests, key=len))
        return build(self.examples[: self.fitting(build)])

    def checks(self, rows: list[dict]) -> tuple[list[str], list[GateResult | None], list[HarmAsked | None]]:
        """Per row: the refusal detector's label, the gate's result, and the harmful-request judgement where it is
        needed (None where it is not asked). Each check is one batched scoring call."""
        from ..refusal import detect

        labels = [detect(row["response"]).label for row in rows]
        gates: list[GateResult | None] = [None] * len(rows)
        if self.gate:
            told = [bh.note(self.constitution, bh.of_row(self.constitution, r)) for r in rows]
            gates = list(self.gate.check(self.started_engine(), [(conversation(r), r["response"]) for r in rows], told))
        harms: list[HarmAsked | None] = [None] * len(rows)
        ask = [i for i, row in enumerate(rows)
               if not (gates[i] is not None and gates[i].crossed)  # type: ignore[union-attr]
               and self.over_refusal_principles(labels[i], operator_instructions(row) is not None)]
        if ask:
            for i, p in zip(ask, p_harmful(self.started_engine(), [conversation(rows[i]) for i in ask])):
                harms[i] = HarmAsked(p)
        return labels, gates, harms

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        out: list[dict | RowFailure | None] = [None] * len(rows)
        keys = [self.amend_keys(row) for row in rows]
        labels, gates, harms = self.checks(rows)
        todo, convs, seeds, picks = [], [], [], []
        for i, row in enumerate(rows):
            try:
                pick = self.pick(row, labels[i], gates[i], harms[i])
            except RowFailure as failure:
                out[i] = failure
                continue
            request = self.request(row, pick.principle)
            build = self._build(row, request)
            shown = self.fitting(build)
            todo.append(i)
            picks.append((pick, request, shown))
            convs.append(build(self.examples[:shown]))
            seeds.append(row_seed(self.sampling.seed, self.name, row["id"], len(row.get("rounds", []))))
        for i, (pick, request, shown), comp in zip(todo, picks, self.chat(convs, seeds) if convs else []):
            row = rows[i]
            if comp.error:
                out[i] = RowFailure(comp.error)
                continue
            principle = pick.principle
            self.stats.extra["gated"] += pick.gated is not None
            self.stats.extra["over_refusal_left_out"] += bool(pick.request_harm and pick.request_harm["over_refusal_principles"] == "left out")
            rounds = list(row.get("rounds", []))
            rounds.append({
                "principle": principle.id,
                **({"section": principle.section} if principle.section is not None else {}),
                **self.passage_fields(principle),
                "tier": principle.tier,
                "routing": pick.routing,
                **({"ranker": pick.ranker} if pick.ranker is not None else {}),
                "relevance": pick.relevance,
                **({"matched": list(pick.matched)} if pick.matched else {}),
                "when": principle.when,
                "response_label": pick.label,
                "operator": operator_instructions(row) is not None,
                **({"gate": pick.gate.as_dict()} if pick.gate is not None else {}),
                **({"gated": pick.gated} if pick.gated is not None else {}),
                **({"request_harm": pick.request_harm} if pick.request_harm is not None else {}),
                **self.behaviour_fields(row),
                "constitution_hash": self.constitution.hash,
                "principle_hash": principle.critique_hash,
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
                **keys[i],
            ))
            out[i] = row
        return out  # type: ignore[return-value]
