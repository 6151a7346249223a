"""`cai plan`: what a pipeline will cost before it runs: per stage, the prompt and output tokens, the model
calls and judge calls, and at a throughput the hours, GPU-hours and money.

Token counts come from a sample of the input, each row walked through the pipeline's own prompt
builders (the stages' `context_messages`, the judge's questions) and tokenized with the model's
tokenizer; what the model has not written yet stands in as a text of T tokens, T being --output-tokens
(a mean per generated text), the mean that --measure found, or else --max-tokens (an upper bound).
The totals scale the sample's means to every row (or to --rows) (count.py). With --synthesize, `cai synthesize` comes
first: every request's prompt is built by the stage and counted (not sampled), and the pipeline is planned over the rows
it would write (stand-in prompts of T tokens, unless INPUT gives real ones).

Time, without --measure, from two rates per GPU the user gives (vLLM's benchmarks report the same two):

    GPU-seconds = output tokens / throughput + prompt tokens / prefill throughput

where the prefill throughput defaults to PREFILL_FACTOR x throughput (reading a prompt is one forward
pass for all its tokens; writing is one per token) and judge calls without --cot are prompt tokens
only. hours = GPU-seconds / 3600 / GPUs, cost = GPU-hours x price. With --measure N, each stage runs
here on N sample rows (the engine loaded before the clock starts) and its seconds per row, times the
rows, are the device-seconds of that stage (plan_measure.py).
"""

from __future__ import annotations

from typing import Any

from ...engines.pool import EnginePool
from ...errors import CaiError
from .count import TokenCounter, count_loads, synthesize_load, text_of
from .result import PREFILL_FACTOR, Plan, PlanConfig, StageLoad
from .table import print_plan

__all__ = ["Plan", "PlanConfig", "StageLoad", "make_plan", "print_plan"]

def read_sample(path: str | None, size: int) -> tuple[list[dict], int]:
    """The first SIZE rows of the input (ids set as the stages set them) and how many rows it has. Every row is read
    and checked as a stage checks it: a line that is not a row, or a row without a conversation, is one line naming
    file, line and field, never left out of the count."""
    from ...errors import InputError
    from ...jsonl import InputSource
    from ...rows import FieldProblem, RowIds, check_conversation

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


def build_stages(engine_opts, sampling, constitution, cfg: PlanConfig, pool: EnginePool) -> dict[str, Any]:
    """The pipeline's stages, as the commands build them, sharing POOL's engines (one model for the whole pipeline)."""
    from dataclasses import replace

    from ...judge import COT_CLAMP, DEFAULT_PRINCIPLES
    from ...stages.critique import Critique
    from ...stages.generate import Generate
    from ...stages.label_prefs import LabelConfig, LabelPrefs
    from ...stages.revise import Revise

    stages: dict[str, Any] = {"generate": Generate(engine_opts, sampling)}
    if cfg.rounds:
        stages["critique"] = Critique(engine_opts, sampling, constitution, cfg.few_shot)
        stages["revise"] = Revise(engine_opts, sampling, constitution, cfg.few_shot)
    if cfg.n >= 2:
        stages["generate-n"] = Generate(engine_opts, replace(sampling, n=cfg.n))
        principles = min(int(cfg.principles) or DEFAULT_PRINCIPLES, len(constitution.comparisons))
        label = LabelConfig(principles=principles, swap=cfg.swap, cot=cfg.cot, clamp=COT_CLAMP if cfg.cot else None)
        stages["label-prefs"] = LabelPrefs(engine_opts, sampling, constitution, label)
    for stage in stages.values():
        stage.share(pool)
    return stages


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
        sample, count = [{"id": str(i), "prompt": text_of(output_tokens, "request")} for i in range(min(cfg.sample, len(units)))], len(units)
    else:
        sample, count = read_sample(path, max(cfg.sample, measure_rows))
    rows = cfg.rows if cfg.rows is not None else (len(units) or count)
    seconds: dict[str, float] = {}
    if measure_rows:
        from .measure import measure

        engines = EnginePool()
        try:
            seconds, measured = measure(sample, build_stages(engine_opts, sampling, constitution, cfg, engines), cfg, measure_rows)
        finally:
            engines.close()
        if cfg.output_tokens is None and measured:
            output_tokens, source = measured, f"measured on {min(measure_rows, len(sample))} rows"
    tokenizers = EnginePool(load=lambda opts: TokenCounter(opts.model))  # the stages' engines: the model's tokenizer
    counter = tokenizers.get(engine_opts)
    loads = count_loads(sample[: cfg.sample], build_stages(engine_opts, sampling, constitution, cfg, tokenizers), counter, cfg, output_tokens)
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


def plan_command(input: str | None, engine_opts, sampling, constitution: str | None, cfg: PlanConfig, *, json_stdout: bool = False,
                 json_out: str | None = None, **rates: Any) -> None:
    """`cai plan`: the plan of CFG over INPUT, as a table on stdout, or as JSON (JSON_STDOUT: instead of the table;
    JSON_OUT: also, to that file). RATES: make_plan's throughput, prefill_throughput, gpus, price, measure_rows."""
    import json
    from pathlib import Path

    from ...constitution import load_constitution
    from ...judge import parse_principles
    from ...output import check_targets, write_file

    charter_file = [("the constitution", constitution)] if constitution and Path(constitution).is_file() else []
    [target] = check_targets([("--json-out", json_out)], [("the input", input), *charter_file], stdout=json_stdout)
    charter = load_constitution(constitution)
    if cfg.n:
        cfg.principles = parse_principles(cfg.principles, len(charter.comparisons) or None)
    result = make_plan(input, engine_opts, sampling, charter, cfg, **rates)
    text = json.dumps(result.as_dict(), indent=2)
    if json_stdout:
        print(text)
    else:
        print_plan(result)
    if target is not None:
        write_file(target, text + "\n")
