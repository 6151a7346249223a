"""`cai generate --engine vllm` against bare `vllm.LLM.chat` on the same 64 prompts (floor: 0.95).

Fair by construction: each side runs in its own fresh process with its own vLLM (so neither inherits the
other's prefix cache), with the same engine settings (float32 and eager mode on a CPU, prefix caching), the
same greedy sampling and the whole prompt set as one batch (cai with --batch-size equal to the prompt count).
The model start is EXCLUDED on both sides: each side starts vLLM and runs one tiny warm-up request before
the clock starts; the clock then covers, for cai, the whole `cai generate` command (reading the JSONL,
rendering, generation, writing the output) and, for bare vLLM, `LLM.chat` on the same conversations.
Python start-up, imports and engine start are reported beside the result, not in it.

Run: make bench   (or: python bench/bench_vllm.py --prompts 64 --max-tokens 64 --repeats 2)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 0.95
WARM = [{"role": "user", "content": "Hello!"}]


def load_prompts(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    return rows[:n]


def side_bare(model_dir: str, prompts: list[dict], max_tokens: int) -> dict:
    from cai_cli.engines.vllm import on_cpu, prepare_environment

    cpu = on_cpu()
    prepare_environment(cpu)  # the same environment defaults as the engine, set before vLLM is imported
    from vllm import LLM, SamplingParams

    started = time.perf_counter()
    kwargs = {"model": model_dir, "dtype": "float32" if cpu else "auto", "enable_prefix_caching": True}
    if cpu:
        kwargs["enforce_eager"] = True
    llm = LLM(**kwargs)
    llm.chat([WARM], SamplingParams(temperature=0.0, max_tokens=4), use_tqdm=False)
    start_s = time.perf_counter() - started

    convs = [[{"role": "user", "content": p["prompt"]}] for p in prompts]
    t0 = time.perf_counter()
    outs = llm.chat(convs, SamplingParams(temperature=0.0, max_tokens=max_tokens), use_tqdm=False)
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"tokens": tokens, "seconds": time.perf_counter() - t0, "start_s": start_s}


def side_cai(model_dir: str, prompts: list[dict], max_tokens: int) -> dict:
    import cai_cli.engines.pool as engine_pool
    from cai_cli.cli import app
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.engines.vllm import VLLMEngine

    started = time.perf_counter()
    engine = VLLMEngine(model_dir, EngineOptions(engine="vllm"))
    engine.chat([WARM], Sampling(temperature=0.0, max_tokens=4))
    start_s = time.perf_counter() - started
    # The command below would start its own vLLM; hand it the one already started, so start is excluded.
    engine_pool.load_engine = lambda opts: engine

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        out = Path(d) / "out.jsonl"
        args = ["generate", str(src), "-o", str(out), "--engine", "vllm", "--temperature", "0",
                "--max-tokens", str(max_tokens), "--batch-size", str(len(prompts)), "--no-progress"]
        t0 = time.perf_counter()
        code = app(args, standalone_mode=False)  # the exit code, as `cai` would exit
        if code:
            sys.exit(f"bench_vllm: cai {args[0]} exited with {code}")
        seconds = time.perf_counter() - t0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    tokens = sum(r["meta"]["generate"]["completion_tokens"] for r in rows)
    return {"tokens": tokens, "seconds": seconds, "start_s": start_s}


def run_side(side: str, args) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_vllm: the {side} side failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="Alternate the two sides this many times; keep each side's best.")
    parser.add_argument("--side", choices=["bare", "cai"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    from cai_cli.model_specs import resolve_model

    model_dir = resolve_model(None)
    prompts = load_prompts(args.prompts)
    if args.side:
        fn = side_bare if args.side == "bare" else side_cai
        print(json.dumps(fn(model_dir, prompts, args.max_tokens)))
        return

    runs: dict[str, list[dict]] = {"bare": [], "cai": []}
    for _ in range(args.repeats):
        for side in ("bare", "cai"):
            runs[side].append(run_side(side, args))
    best = {side: max(rs, key=lambda r: r["tokens"] / r["seconds"]) for side, rs in runs.items()}
    tps = {side: r["tokens"] / r["seconds"] for side, r in best.items()}
    ratio = tps["cai"] / tps["bare"]
    print(f"bench_vllm: {len(prompts)} prompts, greedy, max {args.max_tokens} new tokens, one batch; model start excluded on both sides")
    for side, label in (("bare", "bare vllm.LLM.chat"), ("cai", "cai generate --engine vllm")):
        r = best[side]
        print(f"  {label:28s} {r['tokens']:6d} tokens in {r['seconds']:6.2f}s = {tps[side]:7.1f} tok/s  (engine start {r['start_s']:.1f}s, not counted)")
    verdict = "ok" if ratio >= FLOOR else "BELOW FLOOR"
    print(f"  ratio cai/bare = {ratio:.3f} (floor {FLOOR}) {verdict}")
    if ratio < FLOOR:
        sys.exit(1)


if __name__ == "__main__":
    main()
