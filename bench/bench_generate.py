"""`cai generate` against a bare batched transformers `generate` on the same prompts (floor: 0.9).

Both sides are timed the same way (best of --repeats alternating runs), in this one process: model load + tokenization + generation,
greedy decoding, the same batch. Python start-up and imports are excluded on both sides.
Run: make bench   (or: python bench/bench_generate.py --prompts 32 --max-tokens 64)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_prompts(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    return rows[:n]


def bare(model_dir: str, prompts: list[dict], max_tokens: int, batch: int) -> tuple[int, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": p["prompt"]}], tokenize=False, add_generation_prompt=True) for p in prompts]
    produced = 0
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1] :]
        for seq in new.tolist():
            produced += next((k for k, t in enumerate(seq) if t in (tok.eos_token_id, tok.pad_token_id)), len(seq))
    return produced, time.perf_counter() - start


def cai(prompts: list[dict], max_tokens: int, batch: int) -> tuple[int, float]:
    from cai_cli.cli import app

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        out = Path(d) / "out.jsonl"
        args = ["generate", str(src), "-o", str(out), "--engine", "transformers", "--temperature", "0",
                "--max-tokens", str(max_tokens), "--batch-size", str(batch), "--no-progress"]
        start = time.perf_counter()
        code = app(args, standalone_mode=False)  # the exit code, as `cai` would exit
        if code:
            sys.exit(f"bench_generate: cai {args[0]} exited with {code}")
        seconds = time.perf_counter() - start
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    return sum(r["meta"]["generate"]["completion_tokens"] for r in rows), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="Alternate the two sides this many times; keep each side's best.")
    args = parser.parse_args()
    from cai_cli.model_specs import resolve_model

    model_dir = resolve_model(None)
    prompts = load_prompts(args.prompts)
    bare(model_dir, prompts[:2], 4, 2)  # warm the file cache and kernels for both sides alike
    b_runs, c_runs = [], []
    for _ in range(args.repeats):
        b_runs.append(bare(model_dir, prompts, args.max_tokens, args.batch_size))
        c_runs.append(cai(prompts, args.max_tokens, args.batch_size))
    b_tokens, b_secs = min(b_runs, key=lambda r: r[1])
    c_tokens, c_secs = min(c_runs, key=lambda r: r[1])
    b_tps, c_tps = b_tokens / b_secs, c_tokens / c_secs
    print(f"bare transformers generate: {b_tokens} tokens in {b_secs:.1f}s = {b_tps:.1f} tok/s")
    print(f"cai generate:               {c_tokens} tokens in {c_secs:.1f}s = {c_tps:.1f} tok/s")
    print(f"ratio cai/bare: {c_tps / b_tps:.2f} (floor 0.90)")


if __name__ == "__main__":
    main()
