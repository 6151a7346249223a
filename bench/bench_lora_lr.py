"""Whether a LoRA run at a trainer's default learning rate moves the embedded model in the steps a user is likely to run.

    python bench/bench_lora_lr.py [--steps 12] [--trainers dpo grpo] [--lrs 1e-5 1e-4]

Trains the embedded model with `cai train-policy` (LoRA, the command's defaults but the learning rate) on pairs that
prefer a refusal (SAFE) to compliance (UNSAFE) for red-team prompts: `--algo dpo` on the pairs, `--algo grpo` against a
reward model `cai train-rm` fitted on the same pairs. For each learning rate (the default when none is given: the one
`cai_cli.train.common.LORA_LR` names) it reports, against the model it started from:

- the largest change of any weight (the merged model against the base);
- on held-out red-team prompts (none trained on), how many greedy answers (24 tokens) changed;
- the mean log-probability margin of SAFE over UNSAFE on those prompts, and how far it moved.

Issue 33: at grpo's old LoRA default (1e-5) two steps moved no weight by more than 1.3e-5 and changed no answer.
Prints a line per run; --json writes them. Exits 1 when a run at a trainer's default learning rate changed no
held-out answer. Runs on CPU in a few minutes per run (one torch thread by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAFE = "I can't help with that, but I can point you to safer options and resources."
UNSAFE = "Sure, here is how you could do that, step by step."


def prompts() -> list[str]:
    return [json.loads(line)["prompt"] for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]


def cai(*args: str) -> None:
    from typer.testing import CliRunner

    from cai_cli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise SystemExit(f"cai {' '.join(map(str, args))}: exit {result.exit_code}\n{result.output[-2000:]}")


def margins_and_answers(model_dir: str, held: list[str]) -> tuple[list[float], list[str]]:
    """Per held-out prompt: log P(SAFE) - log P(UNSAFE) as the reply, and the greedy reply (24 tokens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def logp(prompt: str, reply: str) -> float:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        a = tok(head, add_special_tokens=False)["input_ids"]
        b = tok(reply, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = lm(torch.tensor([a + b])).logits[0, len(a) - 1 : -1].log_softmax(-1)
        return float(out[torch.arange(len(b)), torch.tensor(b)].sum())

    margins, answers = [], []
    for p in held:
        margins.append(logp(p, SAFE) - logp(p, UNSAFE))
        head = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            ids = lm.generate(**head, max_new_tokens=24, do_sample=False, pad_token_id=tok.eos_token_id)
        answers.append(tok.decode(ids[0, head["input_ids"].shape[1] :], skip_special_tokens=True))
    return margins, answers


def max_change(base: str, trained: str) -> float:
    from safetensors.torch import load_file

    def weights(folder: str) -> dict:
        out: dict = {}
        for f in Path(folder).glob("*.safetensors"):
            out.update(load_file(str(f)))
        return out

    a, b = weights(base), weights(trained)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b and a[k].shape == b[k].shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--trainers", nargs="+", default=["dpo", "grpo"], choices=["dpo", "grpo", "rloo"])
    ap.add_argument("--lrs", nargs="*", type=float, default=[], help="learning rates to try (default: each trainer's LoRA default)")
    ap.add_argument("--train-prompts", type=int, default=24)
    ap.add_argument("--held-out", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from cai_cli.model_specs import embedded_model_dir
    from cai_cli.train.common import LORA_LR

    torch.set_num_threads(args.threads)
    every = prompts()
    train, held = every[: args.train_prompts], every[-args.held_out :]
    base = str(embedded_model_dir())
    base_margins, base_answers = margins_and_answers(base, held)
    results = []
    with tempfile.TemporaryDirectory(prefix="cai-bench-lr-") as tmp:
        work = Path(tmp)
        pairs = work / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p, "chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": SAFE}],
                                             "rejected": [{"role": "user", "content": p}, {"role": "assistant", "content": UNSAFE}],
                                             "preference": {"p_chosen": 0.9}}) + "\n" for i, p in enumerate(train)))
        (work / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in train))
        if any(t != "dpo" for t in args.trainers):
            cai("train-rm", pairs, "-o", work / "rm", "--max-steps", "12", "--batch-size", "4", "--no-progress")
        for trainer in args.trainers:
            for lr in args.lrs or [LORA_LR[trainer]]:
                out = work / f"{trainer}-{lr:g}"
                start = time.monotonic()
                common = ["-o", out, "--max-steps", args.steps, "--lr", lr, "--batch-size", "4", "--no-progress"]
                if trainer == "dpo":
                    cai("train-policy", pairs, "--algo", "dpo", *common)
                else:
                    cai("train-policy", work / "prompts.jsonl", "--algo", trainer, "--reward-model", work / "rm", "--num-generations", "4",
                        "--max-tokens", "24", *common)
                seconds = time.monotonic() - start
                margins, answers = margins_and_answers(str(out), held)
                results.append({
                    "trainer": trainer, "lr": lr, "default": lr == LORA_LR[trainer], "steps": args.steps, "seconds": round(seconds, 1),
                    "max_weight_change": max_change(base, str(out)),
                    "answers_changed": sum(a != b for a, b in zip(answers, base_answers)), "held_out": len(held),
                    "margin_before": sum(base_margins) / len(held), "margin_after": sum(margins) / len(held),
                })
                r = results[-1]
                print(f"{trainer} lr {lr:g}{' (default)' if r['default'] else ''}: {args.steps} steps in {seconds:.0f}s; max weight change "
                      f"{r['max_weight_change']:.2e}; greedy answers changed {r['answers_changed']}/{len(held)}; SAFE-over-UNSAFE log-prob margin "
                      f"{r['margin_before']:+.2f} -> {r['margin_after']:+.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    still = [f"{r['trainer']} (lr {r['lr']:g})" for r in results if r["default"] and r["answers_changed"] == 0]
    if still:
        print(f"at the default learning rate, {args.steps} steps changed no held-out answer: {', '.join(still)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
