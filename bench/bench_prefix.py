"""Shared-prefix reuse on the transformers engine: critique and revise against generate, and against themselves without it.

On the same red-team rows, model and batch, in this one process (one engine, the model loaded once), the stages
`generate`, `critique` and `revise` run as `cai` runs them (the stage classes, all of the constitution's worked
examples), each with prefix reuse on and off, the runs alternated and each side's best of --repeats kept.
Prints the output tokens/s of every run, critique's and revise's against generate's (floor 0.6), and the
speed-up prefix reuse gives each stage. Each run starts with no kept prefix, so its first batch pays for it.
Run: make bench   (or: python bench/bench_prefix.py --rows 32 --max-tokens 64; --copy-prefix for the fallback)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(stage, engine, rows: list[dict], reuse: bool) -> tuple[list[dict], dict]:
    engine.prefix_reuse = reuse
    engine._kept_prefix = ([], [])  # a cold start: the run pays for its own prefix
    s = stage.stats
    before = (s.tokens_in, s.cached_tokens, s.tokens_out)
    start = time.perf_counter()
    out = stage.process(copy.deepcopy(rows))
    seconds = time.perf_counter() - start
    prompt, cached, made = (now - was for now, was in zip((s.tokens_in, s.cached_tokens, s.tokens_out), before))
    return out, {"seconds": seconds, "prompt": prompt, "cached": cached, "out": made, "tps": made / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="Alternate reuse on/off this many times; keep each side's best.")
    parser.add_argument("--copy-prefix", action="store_true",
                        help="Reuse by copying the prefix's keys/values into every row (the fallback for models "
                             "shared-prefix attention does not cover) instead of storing it once.")
    args = parser.parse_args()

    from cai_cli.constitution import load_constitution
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.model_specs import resolve_model
    from cai_cli.stages.critique import Critique
    from cai_cli.stages.generate import Generate
    from cai_cli.stages.revise import Revise

    lines = (ROOT / "examples" / "red_team.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()][: args.rows]
    opts = EngineOptions(engine="transformers", batch_size=args.batch_size)
    engine = TransformersEngine(resolve_model(None), batch_size=args.batch_size)
    engine.shared_attention = engine.shared_attention and not args.copy_prefix
    sampling = Sampling(max_tokens=args.max_tokens)  # the CLI's defaults otherwise (temperature 0.7, seed 0)
    constitution = load_constitution(None)
    examples = len(constitution.few_shot)
    stages = {
        "generate": Generate(opts, sampling),
        "critique": Critique(opts, sampling, constitution, examples),
        "revise": Revise(opts, sampling, constitution, examples),
    }
    for stage in stages.values():
        stage.engine = engine
    engine.chat([[{"role": "user", "content": "Hi"}]], Sampling(max_tokens=2))  # warm the kernels

    best: dict[tuple[str, bool], dict] = {}
    inputs = rows
    for name, stage in stages.items():
        next_input = None
        for _ in range(args.repeats):
            for reuse in (True, False):
                out, result = timed(stage, engine, inputs, reuse)
                key = (name, reuse)
                if key not in best or result["seconds"] < best[key]["seconds"]:
                    best[key] = result
                if reuse and next_input is None:
                    next_input = out  # the next stage reads this stage's rows
        inputs = next_input

    how = "stored once (shared-prefix attention)" if engine.shared_attention else "copied into every row"
    print(f"{args.rows} red-team rows, batch {args.batch_size}, --max-tokens {args.max_tokens}, "
          f"temperature {sampling.temperature}, {examples} worked examples, best of {args.repeats}; reused prefix {how}")
    print(f"{'stage':<9} {'reuse':<5} {'prompt tok':>10} {'cached':>8} {'out tok':>8} {'seconds':>8} {'tok/s':>7}")
    for (name, reuse), r in best.items():
        print(f"{name:<9} {'on' if reuse else 'off':<5} {r['prompt']:>10} {r['cached']:>8} {r['out']:>8} {r['seconds']:>8.1f} {r['tps']:>7.1f}")
    for name in ("critique", "revise"):
        ratio = best[(name, True)]["tps"] / best[("generate", True)]["tps"]
        plain = best[(name, False)]["tps"] / best[("generate", False)]["tps"]
        print(f"{name}/generate tokens/s: {ratio:.2f} (floor 0.60; without reuse {plain:.2f})")
    for name in stages:
        print(f"{name} speed-up from prefix reuse: {best[(name, True)]['tps'] / best[(name, False)]['tps']:.2f}x")


if __name__ == "__main__":
    main()
