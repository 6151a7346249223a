"""Time per GRPO step: the constitutional judge in the loop (`--reward judge`, in the trainer's process) against the
reward-model route (`--reward-model DIR`), on the same prompts, steps and sampling.

Both sides train the embedded model with `cai train-policy --algo grpo` (LoRA, the same seed, batch, completions per
prompt and completion length). The reward model is the embedded model with a one-score head (its weights do not change
what a step costs); the judge is the embedded model on transformers asking the assistant constitution's questions per
tier and its five hard constraints (group mode). Each side runs in its own process with the same torch threads; a
step is timed from the trainer's step begin to step end (generation, rewards, the update), by the process's CPU time
(steady on a shared machine: with one thread it is the work done) and by the wall clock; the judge's share is timed
inside JudgeReward.answer. The first step is left out (warm-up); the median of the others is shown.
Run: python bench/bench_rl_judge.py   (--steps 3 --generations 4 --batch-size 4 --max-tokens 16 --principles 1)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reward_model(folder: Path) -> Path:
    """The embedded model with a fresh one-score head: a reward model folder as `cai train-rm` writes one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cai_cli.model_specs import quiet_libraries, resolve_model

    quiet_libraries()
    base = resolve_model(None)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def clock(steps: list[dict], judge: list[tuple[float, float]]) -> None:
    """Time every trainer step (a callback added to every Trainer) and every round of judge questions."""
    import transformers

    from cai_cli.judge.reward import JudgeReward

    class StepClock(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = (time.process_time(), time.perf_counter(), len(judge))

        def on_step_end(self, args, state, control, **kwargs):
            cpu, wall, n = self.start
            asked = judge[n:]
            steps.append({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
                          "judge_cpu_s": sum(c for c, _ in asked), "judge_wall_s": sum(w for _, w in asked)})

    original_train, original_answer = transformers.Trainer.train, JudgeReward.answer

    def train(self, *a, **kw):
        self.add_callback(StepClock())
        return original_train(self, *a, **kw)

    def answer(self, questions):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original_answer(self, questions)
        finally:
            judge.append((time.process_time() - cpu, time.perf_counter() - wall))

    transformers.Trainer.train = train  # type: ignore[method-assign]
    JudgeReward.answer = answer  # type: ignore[method-assign]


def child(route: str, args) -> None:
    import torch

    from cai_cli.cli import app

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    prompts = [json.loads(line)["prompt"] for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    src = work / "prompts.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[: max(4, args.steps * args.batch_size // args.generations)]))
    reward = ["--reward", "judge", "-c", args.constitution, "--principles", str(args.principles)] if route == "judge" else ["--reward-model", str(work / "rm")]
    argv = ["train-policy", str(src), "-o", str(work / route), "--algo", "grpo", *reward, "--lora", "--num-generations", str(args.generations),
            "--max-tokens", str(args.max_tokens), "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--seed", "0", "--no-progress"]
    steps: list[dict] = []
    judge: list[tuple[float, float]] = []
    clock(steps, judge)
    code = app(argv, standalone_mode=False)
    if code:
        sys.exit(f"bench_rl_judge: cai {' '.join(argv)} exited with {code}")
    metrics = [json.loads(line) for line in (work / route / "metrics.jsonl").read_text().splitlines() if line.strip()]
    prompts_per_step = [m["judge/prompts"] for m in metrics if "judge/prompts" in m]
    tokens_per_step = [m["judge/prompt_tokens"] for m in metrics if "judge/prompt_tokens" in m]
    print("RESULT " + json.dumps({"steps": steps, "judge_prompts": prompts_per_step, "judge_tokens": tokens_per_step}), flush=True)


def spawn(route: str, args, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", route, "--work", str(work), "--steps", str(args.steps), "--generations", str(args.generations),
           "--batch-size", str(args.batch_size), "--max-tokens", str(args.max_tokens), "--constitution", args.constitution,
           "--principles", str(args.principles), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"bench_rl_judge: the {route} route failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--generations", type=int, default=4, help="Completions per prompt (--num-generations).")
    parser.add_argument("--batch-size", type=int, default=4, help="Completions per step and process.")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--constitution", default="assistant")
    parser.add_argument("--principles", type=int, default=1, help="Questions per comparison and tier.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads on both sides (1: steady numbers on a shared machine).")
    parser.add_argument("--child", choices=("reward-model", "judge"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {args.threads} thread(s)"
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        reward_model(work / "rm")
        results = {route: spawn(route, args, work) for route in ("reward-model", "judge")}
    print(f"GRPO on the embedded model ({device}), LoRA, {args.steps} steps x {args.batch_size} completions ({args.generations} per prompt, "
          f"{args.max_tokens} tokens); judge: the embedded model on transformers in the trainer's process, the {args.constitution} "
          f"constitution, {args.principles} question(s) per tier, group mode; median of steps 2-{args.steps}")
    print(f"{'route':<13} {'cpu s/step':>10} {'wall s/step':>11} {'judge cpu s':>11} {'judge prompts':>13} {'judge tokens':>12}")
    per: dict[str, float] = {}
    for route, r in results.items():
        later = r["steps"][1:] or r["steps"]
        cpu, wall = statistics.median(s["cpu_s"] for s in later), statistics.median(s["wall_s"] for s in later)
        per[route] = cpu
        if route == "judge":
            extra = (f"{statistics.median(s['judge_cpu_s'] for s in later):>11.2f} {statistics.median(r['judge_prompts']):>13.0f} "
                     f"{statistics.median(r['judge_tokens']):>12.0f}")
        else:
            extra = f"{'-':>11} {'-':>13} {'-':>12}"
        print(f"{route:<13} {cpu:>10.2f} {wall:>11.2f} {extra}")
    print(f"the judge in the loop: {per['judge'] / per['reward-model']:.1f}x the CPU time of a reward-model step")


if __name__ == "__main__":
    main()
