"""`cai plan`: what a pipeline will cost before it runs: per stage, the prompt and output tokens, the model
calls and judge calls, and at a throughput the hours, GPU-hours and money.

Token counts come from a sample of the input, each row walked through the pipeline's own prompt
builders (the stages' `context_messages`, the judge's questions) and tokenized with the model's
tokenizer; what the model has not written yet stands in as a text of T tokens, T being --output-tokens
(a mean per generated text), the mean that --measure found, or else --max-tokens (an upper bound).
The totals scale the sample's means to every row (or to --rows). With --synthesize, `cai synthesize` comes first:
every request's prompt is built by the stage and counted (not sampled), and the pipeline is planned over the rows it
would write (stand-in prompts of T tokens, unless INPUT gives real ones).

Time, without --measure, from two rates per GPU the user gives (vLLM's benchmarks report the same two):

    GPU-seconds = output tokens / throughput + prompt tokens / prefill throughput

where the prefill throughput defaults to PREFILL_FACTOR x throughput (reading a prompt is one forward
pass for all its tokens; writing is one per token) and judge calls without --cot are prompt tokens
only. hours = GPU-seconds / 3600 / GPUs, cost = GPU-hours x price. With --measure N, each stage runs
here on N sample rows (the engine loaded before the clock starts) and its seconds per row, times the
rows, are the device-seconds of that stage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CaiError
from ..rows import conversation

PREFILL_FACTOR = 20.0
SAMPLE_ROWS = 32


@dataclass
class PlanConfig:
    """The pipeline planned: SL-CAI (generate, then --rounds of critique and revise) and RL-CAI (generate --n, label-prefs)."""

    rounds: int = 2
    n: int = 2  # candidates per prompt for label-prefs; 0: no RL-CAI half
    principles: int = 4
    swap: bool = True
    cot: bool = False
    few_shot: int | None = None
    output_tokens: float | None = None  # mean tokens per generated text; None: measured, else max_tokens
    rows: int | None = None  # rows to plan for; None: the input's
    sample: int = SAMPLE_ROWS
    synthesize: Any = None  # a stages.synthesize.Synthesize: plan it first, over every request it would write


@dataclass
class StageLoad:
    """One stage over every row."""

    stage: str
    generations: float = 0.0  # texts the model writes
    judge_calls: float = 0.0  # questions the judge scores (label-prefs: principles x orders x pairs)
    prompt_tokens: float = 0.0
    output_tokens: float = 0.0
    seconds: float | None = None  # device-seconds, measured here (--measure)
    gpu_seconds: float | None = None


@dataclass
class Plan:
    rows: int
    sampled: int
    model: str
    output_tokens: float
    output_tokens_source: str  # "--output-tokens", "measured", "--max-tokens (an upper bound)"
    stages: list[StageLoad] = field(default_factory=list)
    throughput: float | None = None
    prefill_throughput: float | None = None
    gpus: int = 1
    price: float | None = None
    measured_rows: int = 0

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(sum(getattr(s, k) for s in self.stages)) for k in ("generations", "judge_calls", "prompt_tokens", "output_tokens")}
        if all(s.gpu_seconds is not None for s in self.stages):
            gpu_seconds = sum(s.gpu_seconds or 0.0 for s in self.stages)
            out["gpu_hours"] = gpu_seconds / 3600
            out["hours"] = gpu_seconds / 3600 / self.gpus
            if self.price is not None:
                out["cost"] = out["gpu_hours"] * self.price
        return out

    def as_dict(self) -> dict:
        return {
            "kind": "cai-plan",
            "rows": self.rows,
            "sampled": self.sampled,
            "model": self.model,
            "output_tokens_per_text": round(self.output_tokens, 1),
            "output_tokens_source": self.output_tokens_source,
            "throughput": self.throughput,
            "prefill_throughput": self.prefill_throughput,
            "gpus": self.gpus,
            "price_per_gpu_hour": self.price,
            "measured_rows": self.measured_rows,
            "stages": [{k: _rounded(k, v) for k, v in asdict(s).items()} for s in self.stages],
            "totals": {k: _rounded(k, v) for k, v in self.totals().items()},
        }


def _rounded(key: str, value: Any) -> Any:
    """Counts as whole numbers; hours, seconds and money to six decimals."""
    if not isinstance(value, float):
        return value
    return round(value) if key in ("generations", "judge_calls", "prompt_tokens", "output_tokens") else round(value, 6)


class TokenCounter:
    """The model's tokenizer and context length in an engine's shape, without the weights: what a stage's prompt
    builders need to say how long each prompt is (count_tokens, render_chat, max_context)."""

    name = "tokenizer"

    def __init__(self, model: str | None):
        from transformers import AutoConfig, AutoTokenizer

        from ..models import resolve_model

        path = resolve_model(model)
        self.model = model or "embedded:SmolLM2-135M-Instruct"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        value = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
        self.max_context = int(value) if value else None

    def render_chat(self, conversation, add_generation_prompt: bool = True) -> str:
        from ..engines.base import render_with_tokenizer

        return render_with_tokenizer(self.tokenizer, conversation, add_generation_prompt)

    def count_tokens(self, conversation) -> int:
        return len(self.tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        pass


def read_sample(path: str | None, size: int) -> tuple[list[dict], int]:
    """The first SIZE rows of the input (ids set as the stages set them) and how many rows it has. Every row is read
    and checked as a stage checks it: a line that is not a row, or a row without a conversation, is one line naming
    file, line and field, never left out of the count."""
    from ..errors import InputError
    from ..jsonl import InputSource
    from ..rows import FieldProblem, RowIds, check_conversation

    source = InputSource(path)
    sample: list[dict] = []
    count = 0
    ids = RowIds()
    try:
        for item in source.lines():
            if item is None:
                continue
            if item.error is not None:
                raise item.error
            assert item.row is not None  # a line without an error has its row
            try:
                check_conversation(item.row)
            except FieldProblem as problem:
                raise InputError(problem.message, file=source.name, line=item.line, field=problem.field) from None
            count += 1
            rid = ids(item.row)
            if len(sample) < size:
                sample.append({**item.row, "id": rid})
    finally:
        source.close()
    if not sample:
        raise CaiError(f"{source.name}: no rows (the input is empty)")
    return sample, count


def _text_of(tokens: float, tag: str) -> str:
    """A stand-in for a text the model has not written yet: about TOKENS tokens."""
    return " ".join([tag] + ["word"] * max(0, int(round(tokens)) - 1))


def count_loads(sample: Sequence[dict], stages: dict[str, Any], counter: TokenCounter, cfg: PlanConfig, output_tokens: float) -> list[StageLoad]:
    """Mean tokens and calls per sample row for each stage, walking each row through the stages' own prompt builders."""
    loads: dict[str, StageLoad] = {}

    def add(name: str, generations: float = 0, judge_calls: float = 0, prompt: float = 0, output: float = 0) -> None:
        load = loads.setdefault(name, StageLoad(name))
        load.generations += generations
        load.judge_calls += judge_calls
        load.prompt_tokens += prompt
        load.output_tokens += output

    for s in stages.values():
        s.engine = counter  # the stages build their prompts for this tokenizer; nothing is generated
    for original in sample:
        row = {**original, "rounds": list(original.get("rounds", []))}
        conv = conversation(row)
        add("generate", 1, prompt=counter.count_tokens(conv), output=output_tokens)
        row["response"] = row["initial_response"] = _text_of(output_tokens, "answer")
        for r in range(1, cfg.rounds + 1):
            picked = stages["critique"].pick(row)
            principle, label = picked.principle, picked.label
            _add_gate(add, f"gate {r}", counter, stages["critique"].constitution, conv, row["response"])
            prompt = counter.count_tokens(stages["critique"].context_messages(row))
            add(f"critique {r}", 1, prompt=prompt, output=output_tokens)
            row["rounds"].append({"principle": principle.id, "when": principle.when, "response_label": label,
                                  "critique_request": principle.critique, "critique": _text_of(output_tokens, "critique")})
            prompt = counter.count_tokens(stages["revise"].context_messages(row))
            add(f"revise {r}", 1, prompt=prompt, output=output_tokens)
            row["rounds"][-1].update(revision_request=principle.revision, revision=_text_of(output_tokens, "revision"))
            row["response"] = row["rounds"][-1]["revision"]
        if cfg.n >= 2:
            name = f"generate --n {cfg.n}"
            add(name, cfg.n, prompt=counter.count_tokens(conv), output=cfg.n * output_tokens)  # one prompt, n samples
            judge_stage = stages["label-prefs"]
            judge = judge_stage.pairwise_judge()
            candidates = [_text_of(output_tokens, f"candidate{i}") for i in range(cfg.n)]
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


def _add_gate(add, name: str, counter, constitution, conv: list[dict], answer: str) -> None:
    """The hard-constraint gate on one answer: a scored yes/no pair (two prompts) per constraint (cai_cli.judge.gate)."""
    from ..judge.gate import CROSSES, STAYS_CLEAR, constraint_messages

    for h in constitution.hard_constraints:
        prompt = sum(counter.count_tokens(constraint_messages(conv, answer, h.text, q)) for q in (CROSSES, STAYS_CLEAR))
        add(name, 0, 2, prompt=prompt)


def synthesize_load(stage, units: list[dict], counter: TokenCounter, output_tokens: float) -> StageLoad:
    """`cai synthesize` over UNITS: one text per request wanted, its prompt built by the stage and counted whole (the
    requests left out as near-duplicates or not requests cost as much as the rest)."""
    prompt = sum(counter.count_tokens(stage.request(unit)[0]) for unit in units)
    return StageLoad("synthesize", generations=len(units), prompt_tokens=prompt, output_tokens=len(units) * output_tokens)


def build_stages(engine_opts, sampling, constitution, cfg: PlanConfig) -> dict[str, Any]:
    """The pipeline's stages, as the commands build them (never started here unless --measure runs them)."""
    from dataclasses import replace

    from ..judge import DEFAULT_PRINCIPLES
    from ..stages.critique import Critique
    from ..stages.generate import Generate
    from ..stages.label_prefs import LabelConfig, LabelPrefs
    from ..stages.revise import Revise

    stages: dict[str, Any] = {"generate": Generate(engine_opts, sampling)}
    if cfg.rounds:
        stages["critique"] = Critique(engine_opts, sampling, constitution, cfg.few_shot)
        stages["revise"] = Revise(engine_opts, sampling, constitution, cfg.few_shot)
    if cfg.n >= 2:
        stages["generate-n"] = Generate(engine_opts, replace(sampling, n=cfg.n))
        principles = min(cfg.principles or DEFAULT_PRINCIPLES, len(constitution.comparisons))
        label = LabelConfig(principles=principles, swap=cfg.swap, cot=cfg.cot, clamp=(0.4, 0.6) if cfg.cot else None)
        stages["label-prefs"] = LabelPrefs(engine_opts, sampling, constitution, label)
    return stages


def measure(sample: Sequence[dict], stages: dict[str, Any], cfg: PlanConfig, n_rows: int) -> tuple[dict[str, float], float]:
    """Run the pipeline here on N_ROWS sample rows, stage after stage through the runner; per stage its
    seconds per row (the engine loaded before the clock starts), and the mean tokens per generated text."""
    from ..output import temporary_folder, write_rows
    from ..runner import RunOptions, run_stage

    rows = list(sample[:n_rows])
    seconds: dict[str, float] = {}
    first = stages["generate"]
    first.start()
    for stage in stages.values():
        stage.engine = first.engine  # one model for the whole pipeline, loaded once, before any clock starts
    texts = tokens = 0.0
    with temporary_folder("cai-plan-") as tmp:
        current = tmp / "in.jsonl"
        write_rows(current, rows)
        prompts = current

        def step(label: str, stage, source: Path) -> Path:
            nonlocal texts, tokens
            target = tmp / f"{label.replace(' ', '_')}.jsonl"
            before = stage.stats.tokens_out
            started = time.monotonic()
            run_stage(stage, RunOptions(input=str(source), output=str(target), progress=False, batch_size=max(1, len(rows))))
            seconds[label] = (time.monotonic() - started) / len(rows)
            if stage.stats.tokens_out > before and label != "label-prefs":
                per_row = {"generate": 1, f"generate --n {cfg.n}": cfg.n}.get(label, 1)
                texts += per_row * len(rows)
                tokens += stage.stats.tokens_out - before
            return target

        current = step("generate", stages["generate"], current)
        for r in range(1, cfg.rounds + 1):
            current = step(f"critique {r}", stages["critique"], current)
            current = step(f"revise {r}", stages["revise"], current)
        if cfg.n >= 2:
            pairs = step(f"generate --n {cfg.n}", stages["generate-n"], prompts)
            step("label-prefs", stages["label-prefs"], pairs)
    first.started_engine().close()
    for stage in stages.values():
        stage.engine = None
    return seconds, (tokens / texts if texts else 0.0)


def make_plan(path: str | None, engine_opts, sampling, constitution, cfg: PlanConfig, *, throughput: float | None = None,
              prefill_throughput: float | None = None, gpus: int = 1, price: float | None = None, measure_rows: int = 0) -> Plan:
    if cfg.n == 1 or cfg.n < 0:
        raise CaiError(f"--n {cfg.n}: label-prefs compares at least 2 candidates (--no-rl plans without it)")
    if throughput is not None and measure_rows:
        raise CaiError("--throughput and --measure both say how fast: give one")
    if cfg.synthesize is not None and measure_rows:
        raise CaiError("--measure times the pipeline on INPUT's rows; plan --synthesize with --throughput (or without a rate)")
    output_tokens, source = (cfg.output_tokens, "--output-tokens") if cfg.output_tokens is not None else (float(sampling.max_tokens), "--max-tokens (an upper bound)")
    units = cfg.synthesize.units() if cfg.synthesize is not None else []
    if units and path is None:  # the pipeline over the requests synthesize writes: stand-ins of the texts it writes
        sample, count = [{"id": str(i), "prompt": _text_of(output_tokens, "request")} for i in range(min(cfg.sample, len(units)))], len(units)
    else:
        sample, count = read_sample(path, max(cfg.sample, measure_rows))
    rows = cfg.rows if cfg.rows is not None else (len(units) or count)
    seconds: dict[str, float] = {}
    if measure_rows:
        seconds, measured = measure(sample, build_stages(engine_opts, sampling, constitution, cfg), cfg, measure_rows)
        if cfg.output_tokens is None and measured:
            output_tokens, source = measured, f"measured on {min(measure_rows, len(sample))} rows"
    counter = TokenCounter(engine_opts.model)
    loads = count_loads(sample[: cfg.sample], build_stages(engine_opts, sampling, constitution, cfg), counter, cfg, output_tokens)
    prefill = prefill_throughput if prefill_throughput is not None else (throughput * PREFILL_FACTOR if throughput else None)
    for load in loads:
        for k in ("generations", "judge_calls", "prompt_tokens", "output_tokens"):
            setattr(load, k, getattr(load, k) * rows)
        if measure_rows:
            load.seconds = seconds.get(load.stage, 0.0) * rows
            load.gpu_seconds = load.seconds
    if units:
        loads.insert(0, synthesize_load(cfg.synthesize, units, counter, output_tokens))
    if throughput and not measure_rows:
        assert prefill is not None
        for load in loads:
            load.gpu_seconds = load.output_tokens / throughput + load.prompt_tokens / prefill
    return Plan(rows=rows, sampled=len(sample[: cfg.sample]), model=counter.model, output_tokens=output_tokens, output_tokens_source=source,
                stages=loads, throughput=throughput, prefill_throughput=prefill, gpus=gpus, price=price, measured_rows=min(measure_rows, len(sample)))


def _si(x: float) -> str:
    if x >= 1e9:
        return f"{x / 1e9:.2f}B"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    return f"{x:,.0f}"


def print_plan(plan: Plan) -> None:
    """The plan as a table on stdout (rich)."""
    from rich.console import Console
    from rich.table import Table

    timed = all(s.gpu_seconds is not None for s in plan.stages)
    title = f"cai plan: {plan.rows:,} rows ({plan.sampled} sampled), {plan.model}, {plan.output_tokens:.0f} output tokens per text ({plan.output_tokens_source})"
    table = Table(title=title, title_justify="left")
    table.add_column("stage", no_wrap=True)
    for name in ("texts written", "judge calls", "prompt tokens", "output tokens"):
        table.add_column(name, justify="right")
    if timed:
        table.add_column("GPU-hours" if not plan.measured_rows else "device-hours", justify="right", no_wrap=True)
    for s in plan.stages:
        cells = [s.stage, _si(s.generations), _si(s.judge_calls), _si(s.prompt_tokens), _si(s.output_tokens)]
        if timed:
            cells.append(f"{(s.gpu_seconds or 0.0) / 3600:,.2f}")
        table.add_row(*cells)
    totals = plan.totals()
    cells = ["total", _si(totals["generations"]), _si(totals["judge_calls"]), _si(totals["prompt_tokens"]), _si(totals["output_tokens"])]
    if timed:
        cells.append(f"{totals['gpu_hours']:,.2f}")
    table.add_row(*cells, style="bold")
    console = Console()
    console.print(table)
    if not timed:
        console.print("Give --throughput (output tokens per second per GPU) or --measure N for hours and cost.")
        return
    if plan.measured_rows:
        how = f"as measured here on {plan.measured_rows} rows"
    else:
        how = f"at {plan.throughput:g} output and {plan.prefill_throughput:g} prompt tokens/s per GPU"
    line = f"{totals['hours']:,.2f} hours on {plan.gpus} GPU{'s' if plan.gpus != 1 else ''} ({totals['gpu_hours']:,.1f} GPU-hours) {how}"
    if "cost" in totals:
        line += f"; {_money(totals['cost'])} at {_money(plan.price or 0.0)} per GPU-hour"
    console.print(line)


def _money(x: float) -> str:
    return f"${x:,.2f}" if x < 100 else f"${math.ceil(x):,}"
