"""`cai train-sft`, `train-rm` and `train-policy --algo dpo` against the same trl trainer called directly (floor: 0.95).

Both sides train the embedded model on the same examples with the same settings (LoRA r=16 on all linear layers, float32
on CPU, no gradient checkpointing, the same steps, batch, learning rate and max length). Each run is its own process, so
peak memory (RSS) is that run's alone. Compared: samples per second of the training loop (`Trainer.train`), by the
CPU time of the process during it (with one thread, this is the work done, and other jobs on a shared machine barely
move it) and by the wall clock; best of --repeats alternating runs. The floor applies to the CPU-time rate. Also shown:
the wall time of the whole call, where cai also reads rows, merges LoRA and writes the full model, which the bare
trainer does not.
Run: make bench   (or: python bench/bench_train.py --steps 4 --batch-size 4 --repeats 2)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 0.95
TRAINERS = ("sft", "rm", "dpo")
SAFE = "I can't help with that, but I can point you to safer options and resources."
UNSAFE = "Sure, here is how you could do that, step by step."


def rows(n: int) -> tuple[list[dict], list[dict]]:
    prompts = [json.loads(line)["prompt"] for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    prompts = [prompts[i % len(prompts)] for i in range(n)]
    revised = [{"id": f"r{i}", "prompt": p, "response": SAFE, "initial_response": UNSAFE,
                "rounds": [{"principle": "harm", "critique_request": "c", "critique": "harmful", "revision_request": "r", "revision": SAFE}]}
               for i, p in enumerate(prompts)]
    prefs = [{"id": f"p{i}", "prompt": p, "chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": SAFE}],
              "rejected": [{"role": "user", "content": p}, {"role": "assistant", "content": UNSAFE}], "preference": {"p_chosen": 0.9}}
             for i, p in enumerate(prompts)]
    return revised, prefs


def run_cai(trainer: str, args, work: Path) -> dict:
    from cai_cli.cli import app

    revised, prefs = rows(args.examples)
    src = work / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (revised if trainer == "sft" else prefs)))
    out = work / "out"
    command = {"sft": ["train-sft"], "rm": ["train-rm", "--eval-fraction", "0"], "dpo": ["train-policy", "--algo", "dpo"]}[trainer]
    argv = command + [str(src), "-o", str(out), "--lora", "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
                      "--lr", "1e-4", "--max-length", str(args.max_length), "--no-progress"]
    start = time.perf_counter()
    code = app(argv, standalone_mode=False)  # the exit code, as `cai` would exit
    if code:
        sys.exit(f"bench_train: cai {argv[0]} exited with {code}")
    wall = time.perf_counter() - start
    return {"wall_s": wall}


def run_trl(trainer: str, args, work: Path) -> dict:
    """What a user writes by hand with trl, peft and datasets: the baseline."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import (
        DPOConfig,
        DPOTrainer,
        RewardConfig,
        RewardTrainer,
        SFTConfig,
        SFTTrainer,
    )

    from cai_cli.model_specs import resolve_model

    model = resolve_model(None)
    revised, prefs = rows(args.examples)
    if trainer == "sft":
        data = [{"prompt": [{"role": "user", "content": r["prompt"]}], "completion": [{"role": "assistant", "content": r["response"]}]} for r in revised]
    else:
        data = [{"prompt": r["chosen"][:1], "chosen": r["chosen"][1:], "rejected": r["rejected"][1:]} for r in prefs]
    config_cls, trainer_cls, task = {"sft": (SFTConfig, SFTTrainer, "CAUSAL_LM"), "rm": (RewardConfig, RewardTrainer, "SEQ_CLS"),
                                     "dpo": (DPOConfig, DPOTrainer, "CAUSAL_LM")}[trainer]
    config = config_cls(output_dir=str(work / "out"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                        learning_rate=1e-4, max_length=args.max_length, bf16=False, fp16=False, gradient_checkpointing=False,
                        use_cpu=True, dataloader_pin_memory=False, logging_steps=1, report_to=[], disable_tqdm=True, seed=0)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type=task)
    start = time.perf_counter()
    t = trainer_cls(model=model, args=config, train_dataset=Dataset.from_list(data), peft_config=lora)
    t.train()
    t.save_model(str(work / "final"))
    return {"wall_s": time.perf_counter() - start}


def clock_training(record: dict) -> None:
    """Time every Trainer.train call, on both sides alike."""
    import transformers

    original = transformers.Trainer.train

    def timed(self, *a, **kw):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            record["train_cpu_s"] = time.process_time() - cpu
            record["train_s"] = time.perf_counter() - wall

    transformers.Trainer.train = timed


def child(side: str, trainer: str, args) -> None:
    import torch

    from cai_cli.model_specs import quiet_libraries

    torch.set_num_threads(args.threads)
    quiet_libraries()
    clocks: dict = {}
    clock_training(clocks)
    with tempfile.TemporaryDirectory() as d:
        result = (run_cai if side == "cai" else run_trl)(trainer, args, Path(d))
    samples = args.steps * args.batch_size
    result.update(clocks, samples_per_cpu_s=samples / clocks["train_cpu_s"], samples_per_s=samples / clocks["train_s"])
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def spawn(side: str, trainer: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--trainer", trainer, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--examples", str(args.examples), "--max-length", str(args.max_length), "--threads", str(args.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{side} {trainer} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="Torch threads on both sides (1: steady numbers on a shared machine).")
    parser.add_argument("--repeats", type=int, default=2, help="Alternate the two sides this many times; keep each side's best.")
    parser.add_argument("--child", choices=("cai", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--trainer", choices=TRAINERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trainer, args)
        return
    from cai_cli.model_specs import resolve_model

    resolve_model(None)  # convert the embedded model once, outside every measurement
    print(f"embedded model, LoRA r=16, {args.steps} steps x batch {args.batch_size}, max length {args.max_length}, "
          f"{args.threads} thread(s), best of {args.repeats}")
    print(f"{'trainer':<8} {'side':<5} {'samples/cpu-s':>13} {'samples/s':>10} {'train s':>8} {'call s':>7} {'peak RSS MB':>12}")
    below = []
    for trainer in args.trainers.split(","):
        runs: dict[str, list[dict]] = {"trl": [], "cai": []}
        for _ in range(args.repeats):
            for side in ("trl", "cai"):
                runs[side].append(spawn(side, trainer, args))
        best = {side: {k: max(r[k] for r in rs) for k in ("samples_per_cpu_s", "samples_per_s")} for side, rs in runs.items()}
        for side in ("trl", "cai"):
            b, rs = best[side], runs[side]
            print(f"{trainer:<8} {side:<5} {b['samples_per_cpu_s']:>13.2f} {b['samples_per_s']:>10.2f} {min(r['train_s'] for r in rs):>8.1f} "
                  f"{min(r['wall_s'] for r in rs):>7.1f} {max(r['peak_rss_mb'] for r in rs):>12.0f}")
        ratio = best["cai"]["samples_per_cpu_s"] / best["trl"]["samples_per_cpu_s"]
        wall_ratio = best["cai"]["samples_per_s"] / best["trl"]["samples_per_s"]
        print(f"{trainer:<8} ratio cai/trl {ratio:.2f} by CPU time (floor {FLOOR}), {wall_ratio:.2f} by wall clock")
        if ratio < FLOOR:
            below.append(trainer)
    if below:
        sys.exit(f"below the floor: {', '.join(below)}")


if __name__ == "__main__":
    main()
