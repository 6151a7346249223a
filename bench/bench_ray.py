"""What --ray costs per row: the same rows through `cai critique` here and through a local Ray cluster (two actors).

Each run is a fresh `cai` process (transformers on the embedded model). A run on `--rows` rows and one on
`--few` rows, both ways, separate what is paid once (Ray starting, each actor loading its model) from what
is paid per row:

    fixed overhead   = T_ray(few) - T_local(few)
    per-row overhead = ((T_ray(rows) - T_ray(few)) - (T_local(rows) - T_local(few))) / (rows - few)

Negative means the Ray path is faster (two actors work at once; the local run uses every core in one process).
The Ray run's rows must equal the local run's, byte for byte; a failed command or different rows exit 1.
Run: make bench   (or: python bench/bench_ray.py --rows 64 --max-tokens 16)
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
CAI = [sys.executable, "-m", "cai_cli"]


def rows_to_critique(n: int, path: Path) -> Path:
    prompts = [json.loads(line)["prompt"] for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "prompt": prompts[i % len(prompts)], "response": "Sure, here is how you could do that."}) + "\n")
    return path


def timed(args: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--few", type=int, default=4, help="rows of the short runs that measure the fixed cost")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--few-shot", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = rows_to_critique(a.rows, d / "in.jsonl")
        common = ["--engine", "transformers", "--max-tokens", str(a.max_tokens), "--few-shot", str(a.few_shot), "--batch-size", str(a.batch_size)]
        ray = ["--ray", "local", "--ray-actors", str(a.actors)]
        t: dict[tuple[str, int], float] = {}
        for n in (a.few, a.rows):
            for way, extra in (("local", []), ("ray", ray)):
                out = d / f"{way}-{n}.jsonl"
                t[way, n] = timed([*CAI, "critique", str(src), "--limit", str(n), "-o", str(out), *common, *extra])
                print(f"critique, {n} rows, {way + (f' ({a.actors} actors)' if way == 'ray' else '')}: {t[way, n]:.1f}s", flush=True)
            if (d / f"local-{n}.jsonl").read_bytes() != (d / f"ray-{n}.jsonl").read_bytes():
                print(f"FAIL: the Ray run's {n} rows differ from the local run's")
                return 1
    fixed = t["ray", a.few] - t["local", a.few]
    per_row = ((t["ray", a.rows] - t["ray", a.few]) - (t["local", a.rows] - t["local", a.few])) / (a.rows - a.few)
    local_per_row = (t["local", a.rows] - t["local", a.few]) / (a.rows - a.few)
    print(f"rows identical both ways; Ray path: fixed overhead {fixed:+.1f}s per run (cluster start, {a.actors} model loads), "
          f"per-row overhead {per_row:+.3f}s ({100 * per_row / local_per_row:+.0f}% of the local {local_per_row:.3f}s per row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
