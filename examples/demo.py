"""The demo behind `make demo`: Constitutional AI's supervised stage on the embedded model, on a CPU.

A few red-team prompts go through generate -> (critique -> revise) x 2, each step a real `cai`
command over JSONL files in --out, so every intermediate file can be opened afterwards.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cai(*args: str) -> None:
    cmd = ["cai", *args]
    print(f"\n$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "cai_cli", *args], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl*"):
        old.unlink()
    started = time.monotonic()

    sampling = ["--engine", "transformers", "--max-tokens", str(args.max_tokens), "--seed", "1"]
    prompts = str(ROOT / "examples" / "red_team.jsonl")
    cai("generate", prompts, "--limit", str(args.prompts), "-o", str(out / "sl-gen.jsonl"), *sampling)
    current = out / "sl-gen.jsonl"
    for r in (1, 2):
        cai("critique", str(current), "-o", str(out / f"sl-critique{r}.jsonl"), *sampling)
        cai("revise", str(out / f"sl-critique{r}.jsonl"), "-o", str(out / f"sl-revise{r}.jsonl"), *sampling)
        current = out / f"sl-revise{r}.jsonl"

    print("\nSupervised CAI data: each prompt, its first answer, and two rounds of critique and revision\n", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "cai_cli", "show", str(current)], cwd=ROOT, check=True)
    print(f"\nDone in {time.monotonic() - started:.0f}s. Files: {out}/ (open them with head, jq or pandas)", file=sys.stderr)


if __name__ == "__main__":
    main()
