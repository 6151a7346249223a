"""`cai plan`'s token counts: each sample row walked through the pipeline's own prompt builders (the stages'
`context_messages`, the judge's questions, the gate's) on a tokenizer in an engine's shape (TokenCounter), what the
model has not written yet standing in as a text of the planned length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...rows import conversation

if TYPE_CHECKING:
    from ...engines import Engine

from .result import PlanConfig, StageLoad


class TokenCounter:
    """The model's tokenizer and context length in an engine's shape, without the weights: what a stage's prompt
    builders need to say how long each prompt is (count_tokens, render_chat, max_context)."""

    name = "tokenizer"

    def __init__(self, model: str | None):
        from transformers import AutoConfig, AutoTokenizer

        from ...model_specs import resolve_model

        path = resolve_model(model)
        self.model = model or "embedded:SmolLM2-135M-Instruct"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        value = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
        self.max_context = int(value) if value else None

    def render_chat(self, conversation, add_generation_prompt: bool = True) -> str:
        from ...engines.base import render_with_tokenizer

        return render_with_tokenizer(self.tokenizer, conversation, add_generation_prompt)

    def count_tokens(self, conversation) -> int:
        return len(self.tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        pass


def text_of(tokens: float, tag: str) -> str:
    """A stand-in for a text the model has not written yet: about TOKENS tokens."""
    return " ".join([tag] + ["word"] * max(0, int(round(tokens)) - 1))


def count_loads(sample: Sequence[dict], stages: dict[str, Any], counter: Engine, cfg: PlanConfig, output_tokens: float) -> list[StageLoad]:
    """Mean tokens and calls per sample row for each stage, walking each row through the stages' own prompt builders
    (each stage started on COUNTER: their pool's engines are tokenizers, so nothing is generated)."""
    loads: dict[str, StageLoad] = {}

    def add(name: str, generations: float = 0, judge_calls: float = 0, prompt: float = 0, output: float = 0) -> None:
        load = loads.setdefault(name, StageLoad(name))
        load.generations += generations
        load.judge_calls += judge_calls
        load.prompt_tokens += prompt
        load.output_tokens += output

    for s in stages.values():
        s.start()
    for original in sample:
        row = {**original, "rounds": list(original.get("rounds", []))}
        conv = conversation(row)
        add("generate", 1, prompt=counter.count_tokens(conv), output=output_tokens)
        row["response"] = row["initial_response"] = text_of(output_tokens, "answer")
        for r in range(1, cfg.rounds + 1):
            picked = stages["critique"].pick(row)
            principle, label = picked.principle, picked.label
            _add_gate(add, f"gate {r}", counter, stages["critique"].constitution, conv, row["response"])
            prompt = counter.count_tokens(stages["critique"].context_messages(row))
            add(f"critique {r}", 1, prompt=prompt, output=output_tokens)
            row["rounds"].append({"principle": principle.id, "when": principle.when, "response_label": label,
                                  "critique_request": principle.critique, "critique": text_of(output_tokens, "critique")})
            prompt = counter.count_tokens(stages["revise"].context_messages(row))
            add(f"revise {r}", 1, prompt=prompt, output=output_tokens)
            row["rounds"][-1].update(revision_request=principle.revision, revision=text_of(output_tokens, "revision"))
            row["response"] = row["rounds"][-1]["revision"]
        if cfg.n >= 2:
            name = f"generate --n {cfg.n}"
            add(name, cfg.n, prompt=counter.count_tokens(conv), output=cfg.n * output_tokens)  # one prompt, n samples
            judge_stage = stages["label-prefs"]
            judge = judge_stage.pairwise_judge()
            candidates = [text_of(output_tokens, f"candidate{i}") for i in range(cfg.n)]
            for text in candidates:
                _add_gate(add, "label-prefs gate", counter, judge_stage.judge_constitution(), conv, text)
            for i in range(cfg.n):
                for j in range(i + 1, cfg.n):
                    for p in judge_stage.principles_for(str(row["id"]), i, j):
                        for first, second in ((candidates[i], candidates[j]), (candidates[j], candidates[i]))[: 2 if cfg.swap else 1]:
                            prompt = judge.prompt_tokens(conv, p.question, first, second)
                            if cfg.cot:  # it writes its reasoning, then the answer is scored after it
                                add("label-prefs", 1, 1, prompt=2 * prompt + output_tokens, output=output_tokens)
                            else:
                                add("label-prefs", 0, 1, prompt=prompt)
    n = len(sample)
    out = []
    for load in loads.values():
        for k in ("generations", "judge_calls", "prompt_tokens", "output_tokens"):
            setattr(load, k, getattr(load, k) / n)
        out.append(load)
    return out


def _add_gate(add, name: str, counter: Engine, constitution, conv: list[dict], answer: str) -> None:
    """The hard-constraint gate on one answer: a scored yes/no pair (two prompts) per constraint (cai_cli.judge.gate)."""
    from ...judge.gate import CROSSES, STAYS_CLEAR, constraint_messages

    for h in constitution.hard_constraints:
        prompt = sum(counter.count_tokens(constraint_messages(conv, answer, h.text, q)) for q in (CROSSES, STAYS_CLEAR))
        add(name, 0, 2, prompt=prompt)


def synthesize_load(stage, units: list[dict], counter: Engine, output_tokens: float) -> StageLoad:
    """`cai synthesize` over UNITS: one text per request wanted, its prompt built by the stage and counted whole (the
    requests left out as near-duplicates or not requests cost as much as the rest)."""
    prompt = sum(counter.count_tokens(stage.request(unit)[0]) for unit in units)
    return StageLoad("synthesize", generations=len(units), prompt_tokens=prompt, output_tokens=len(units) * output_tokens)
