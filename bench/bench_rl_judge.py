"""Time per GRPO step: the constitutional judge in the loop (`--reward judge`, in this process) against the reward-model
route (`--reward-model DIR`), on the same prompts, steps and sampling.

Both sides train the embedded model with `cai train-policy --algo grpo` (LoRA, the same seed, batch, completions per
prompt and completion length). The reward model is the embedded model with a one-score head (its weights do not change
what a step costs); the judge is the embedded model asked the assistant constitution's questions per tier and its hard
constraints (group mode). A step's time is read from metrics.jsonl (the time between consecutive steps, after the
first, so loading is left out); judge/seconds says how much of a judged step the judge took. Each side runs in its own
process.
Run: python bench/bench_rl_judge.py   (--steps 4 --generations 4 --batch-size 4 --max-tokens 32 --principles 1)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reward_model(folder: Path) -> Path:
    """The embedded model with a fresh one-score head: a reward model folder as `cai train-rm` writes one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cai_cli.models import quiet_libraries, resolve_model

    quiet_libraries()
    base = resolve_model(None)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run(route: str, args, work: Path, rm: Path) -> dict:
    prompts = [json.loads(line)["prompt"] for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    src = work / "prompts.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[: max(4, args.steps * args.batch_size // args.generations)]))
    out = work / route
    reward = ["--reward", "judge", "-c", args.constitution, "--principles", str(args.principles)] if route == "judge" else ["--reward-model", str(rm)]
    cmd = [sys.executable, "-m", "cai_cli", "train-policy", str(src), "-o", str(out), "--algo", "grpo", *reward, "--lora",
           "--num-generations", str(args.generations), "--max-tokens", str(args.max_tokens), "--max-steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--seed", "0", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.threads else dict(os.environ)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench_rl_judge: the {route} route failed:\n{proc.stderr[-3000:]}")
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [s for s in steps if "reward" in s]
    times = [b["time"] - a["time"] for a, b in zip(steps, steps[1:])]
    record = json.loads((out / "cai-train.json").read_text())
    result = {"per_step_s": statistics.median(times) if times else None, "train_s": record.get("seconds"), "steps": len(steps)}
    if route == "judge":
        result["judge_s"] = statistics.median(s["judge/seconds"] for s in steps[1:] or steps)
        result["judge_prompts"] = statistics.median(s["judge/prompts"] for s in steps)
        result["judge_tokens"] = statistics.median(s["judge/prompt_tokens"] for s in steps)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4, help="Completions per prompt (--num-generations).")
    parser.add_argument("--batch-size", type=int, default=4, help="Completions per step and process.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--constitution", default="assistant")
    parser.add_argument("--principles", type=int, default=1, help="Questions per comparison and tier.")
    parser.add_argument("--threads", type=int, default=0, help="OMP threads (0: torch's default).")
    args = parser.parse_args()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        rm = reward_model(work / "rm")
        results = {route: run(route, args, work, rm) for route in ("reward-model", "judge")}
    print(f"GRPO on the embedded model ({device}), LoRA, {args.steps} steps x {args.batch_size} completions "
          f"({args.generations} per prompt, {args.max_tokens} tokens), judge: the embedded model on transformers, in this process, "
          f"{args.constitution} constitution, {args.principles} question(s) per tier, group mode")
    print(f"{'route':<13} {'s/step':>7} {'judge s/step':>13} {'judge prompts/step':>19} {'judge tokens/step':>18} {'train s':>8}")
    for route, r in results.items():
        judge = (f"{r['judge_s']:>13.2f} {r['judge_prompts']:>19.0f} {r['judge_tokens']:>18.0f}" if route == "judge" else f"{'-':>13} {'-':>19} {'-':>18}")
        print(f"{route:<13} {r['per_step_s']:>7.2f} {judge} {r['train_s']:>8.1f}")
    rm_step, judge_step = results["reward-model"]["per_step_s"], results["judge"]["per_step_s"]
    print(f"the judge in the loop: {judge_step / rm_step:.2f}x the time of a reward-model step")


if __name__ == "__main__":
    main()
