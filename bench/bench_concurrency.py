"""Several `cai generate` processes at once on one machine: does each get its share of the cores?

One `cai generate` alone, then 2, 3 and 4 started together, each a fresh process on the same rows
(transformers on the embedded model, greedy, `--limit` rows, `--max-tokens`), each with its own `-o`.
Prints each wall time (the last process to finish; model loading included), its ratio to the one run
alone, and whether every process wrote the same rows, byte for byte, as the one alone.

Floor (issue 34): two at once within 2.0x one alone on 2 cores, rows identical, and one alone no more than 10%
slower than before cai set its threads: it also times one run alone with torch's and libgomp's defaults (every core,
each waiting thread spinning 300,000 times before it sleeps). With more processes than cores expect about N / cores.
`--env KEY=VALUE` (repeatable) adds to every process's environment, to compare other settings with cai's default
(docs/engines.md, "Threads"): `--env OMP_NUM_THREADS=1`, `--env GOMP_SPINCOUNT=10000`.

Run: python bench/bench_concurrency.py   (a few minutes on 2 cores: --limit 16 --max-tokens 64)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAI = [sys.executable, "-m", "cai_cli"]
# torch's default thread count and libgomp's own spin (no OMP_WAIT_POLICY): how cai ran before issue 34.
BEFORE_ENV = {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))}


def run_together(count: int, out: Path, a, env: dict[str, str]) -> tuple[float, list[float], list[Path]]:
    """Start COUNT generate processes at once; (wall seconds until the last ends, each one's seconds, their outputs)."""
    outputs = [out / f"{count}-{i}.jsonl" for i in range(count)]
    args = ["generate", str(ROOT / "examples" / "red_team.jsonl"), "--limit", str(a.limit), "--engine", "transformers",
            "--max-tokens", str(a.max_tokens), "--temperature", "0", "--batch-size", str(a.batch_size), "--progress", "off"]
    started = time.monotonic()
    procs = [subprocess.Popen([*CAI, *args, "-o", str(o)], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for o in outputs]
    each = []
    for proc in procs:
        _, err = proc.communicate()
        each.append(time.monotonic() - started)
        if proc.returncode != 0:
            raise SystemExit(f"cai generate failed (exit {proc.returncode}):\n{err[-3000:]}")
    return max(each), each, outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=16, help="rows each process generates")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--most", type=int, default=4, help="the largest number of processes at once")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="added to every process's environment")
    a = ap.parse_args()
    env = dict(item.split("=", 1) for item in a.env)
    cores = len(os.sched_getaffinity(0))
    shown = " ".join(f"{k}={v}" for k, v in env.items()) or "cai's default threads"
    print(f"{cores} cores, load {os.getloadavg()[0]:.2f} at start; {a.limit} rows, --max-tokens {a.max_tokens}, {shown}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        alone, _, (reference,) = run_together(1, out, a, env)
        print(f"1 alone: {alone:.1f}s", flush=True)
        base_dir = out / "before"
        base_dir.mkdir()
        before, _, (base_rows,) = run_together(1, base_dir, a, {**env, **BEFORE_ENV})
        same = base_rows.read_bytes() == reference.read_bytes()
        ok &= same
        print(f"1 alone as before issue 34 ({BEFORE_ENV['OMP_NUM_THREADS']} threads, spinning): {before:.1f}s; the run alone above took "
              f"{100 * (alone / before - 1):+.0f}%; rows {'identical' if same else 'DIFFERENT'}", flush=True)
        for count in range(2, a.most + 1):
            wall, each, outputs = run_together(count, out, a, env)
            same = all(o.read_bytes() == reference.read_bytes() for o in outputs)
            ok &= same
            print(f"{count} at once: {wall:.1f}s ({wall / alone:.2f}x one alone; each {', '.join(f'{s:.1f}' for s in each)}s); "
                  f"rows {'identical' if same else 'DIFFERENT'}", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    if not ok:
        print("FAIL: a process wrote other rows than the one alone")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
