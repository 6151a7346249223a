"""The demo behind `make demo`: the whole Constitutional AI method on the embedded model, on a CPU.

Every step is a real `cai` command over JSONL files and model folders in --out, so each intermediate
file can be opened afterwards. Sizes are tiny so it finishes in minutes on 2 cores: the numbers show
the pipeline working, not a trained assistant. `examples/Makefile` runs the same method at real sizes.

  1. SL-CAI data: red-team prompts -> first answers -> (critique -> revise) x 2
  2. train-sft on the revisions, mixed with helpful answers to benign prompts
  3. two samples per prompt from the SL-CAI model -> label-prefs (soft, both orders)
  4. train-rm on those labels -> train-policy (GRPO against the reward model)
  5. eval of the base, SL-CAI and RL-CAI models against the base -> report (table + chart)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RED = str(ROOT / "examples" / "red_team.jsonl")
BENIGN = str(ROOT / "examples" / "benign.jsonl")


def cai(*args: str) -> None:
    print(f"\n$ {shlex.join(['cai', *args])}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "cai_cli", *args], cwd=ROOT, check=True)


def heading(text: str) -> None:
    print(f"\n=== {text} ===", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--prompts", type=int, default=6, help="red-team prompts for the SL-CAI data")
    parser.add_argument("--eval-prompts", type=int, default=3, help="prompts per eval set (red-team, benign)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per trainer")
    parser.add_argument("--sl-only", action="store_true", help="stop after the supervised data")
    parser.add_argument("--constitution", help="a shipped name (assistant: the prose constitution) or a file; default: default")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.jsonl*")) + list(out.glob("*.png")) + list(out.glob("*.json")):
        old.unlink()
    started = time.monotonic()
    o = lambda name: str(out / name)  # noqa: E731
    gen = ["--engine", "transformers", "--max-tokens", str(args.max_tokens), "--seed", "1"]
    charter = ["--constitution", args.constitution] if args.constitution else []
    train = ["--max-steps", str(args.steps), "--batch-size", "4", "--max-length", "384", "--no-progress"]

    heading("1. Supervised CAI data: answer, then critique and revise against the constitution, two rounds")
    cai("generate", RED, "--limit", str(args.prompts), "-o", o("sl-gen.jsonl"), *gen)
    current = o("sl-gen.jsonl")
    for r in (1, 2):
        cai("critique", current, "-o", o(f"sl-critique{r}.jsonl"), *charter, *gen)
        cai("revise", o(f"sl-critique{r}.jsonl"), "-o", o(f"sl-revise{r}.jsonl"), *charter, *gen)
        current = o(f"sl-revise{r}.jsonl")
    subprocess.run([sys.executable, "-m", "cai_cli", "show", current, "--limit", "2", "--width", "300"], cwd=ROOT, check=True)
    cai("constitution", "coverage", current, *charter)
    if args.sl_only:
        return

    heading("2. SL-CAI model: fine-tune on the revisions, mixed with helpful answers")
    cai("generate", BENIGN, "--limit", "4", "-o", o("helpful.jsonl"), *gen)
    # At the demo's 64-token limit most texts are cut; train-sft would leave them out (and stop with none
    # left), so the demo keeps them on purpose. At real sizes leave the default: cut texts are left out.
    cai("train-sft", current, "-o", o("sl-cai"), "--mix", o("helpful.jsonl"), "--keep-truncated", *train)

    heading("3. AI feedback: two samples per prompt from the SL-CAI model, labelled by the judge in both orders")
    cai("generate", RED, "--limit", str(args.prompts), "--n", "2", "--model", o("sl-cai"), "-o", o("rl-pairs.jsonl"), *gen)
    cai("label-prefs", o("rl-pairs.jsonl"), "-o", o("prefs.jsonl"), "--principles", "2", "--engine", "transformers", *charter)

    heading("4. Reward model on the soft labels, then the policy trained against it (GRPO)")
    cai("train-rm", o("prefs.jsonl"), "-o", o("rm"), "--model", o("sl-cai"), "--eval-fraction", "0.34", *train)
    cai(
        "train-policy", RED, "-o", o("rl-cai"), "--algo", "grpo", "--reward-model", o("rm"), "--model", o("sl-cai"),
        "--num-generations", "2", "--max-tokens", "32", "--max-steps", "2", "--batch-size", "2", "--no-progress",
    )

    heading("5. Evaluation against the base model, and the report")
    # Benign prompts for eval: plain ones and risky-looking ones (for over-refusal), half and half.
    benign_rows = [json.loads(line) for line in Path(BENIGN).read_text().splitlines() if line.strip()]
    half = max(1, args.eval_prompts // 2)
    picked = [r for r in benign_rows if not r["risky_looking"]][:half] + [r for r in benign_rows if r["risky_looking"]][: args.eval_prompts - half + 1]
    Path(o("eval-benign-prompts.jsonl")).write_text("".join(json.dumps(r) + "\n" for r in picked))
    evals = [("base", "embedded"), ("sl-cai", o("sl-cai")), ("rl-cai", o("rl-cai"))]
    for name, model in evals:
        cai(
            "eval", "-p", RED, "--benign", o("eval-benign-prompts.jsonl"), "--limit", str(args.eval_prompts), "--model", model, "--name", name,
            "--baseline", "embedded", "--principles", "2", "--bootstrap", "200", "-o", o(f"eval-{name}.jsonl"), *charter, *gen,
        )
    # The rows files (not only the summaries): the report pairs answers by prompt for each change against the base.
    cai("report", *[o(f"eval-{name}.jsonl") for name, _ in evals], "-o", o("report.png"))
    cai("report", *[o(f"eval-{name}.jsonl") for name, _ in evals], "-o", o("report.html"))
    print(f"\nDone in {time.monotonic() - started:.0f}s. Chart: {out / 'report.png'}  Files: {out}/", file=sys.stderr)


if __name__ == "__main__":
    main()
