"""What --ray costs per row: the same rows through `cai critique` here and through a local Ray cluster.

Each run is a fresh `cai` process (transformers on the embedded model, `--ray local` starting its own
cluster). Ray gives each CPU actor one thread (OMP_NUM_THREADS=1), so the overhead of the Ray path is
measured against a local run with one thread too, and a run on `--rows` rows against one on `--few`
separates what is paid once (the cluster starting, the actor loading its model) from what each row pays:

    fixed overhead   = T_ray1(few) - T_local1(few)
    per-row overhead = ((T_ray1(rows) - T_ray1(few)) - (T_local1(rows) - T_local1(few))) / (rows - few)

Then the comparison the issue asks for: the rows through two actors against one local process using
every core (torch's default threads). Every Ray run's rows must equal the local run's, byte for byte;
a failed command or different rows exit 1.

A model's compute hides the Ray path's own cost in the noise of a shared machine, so first the same
arithmetic runs on the tests' fake engine (no model: what is left is pickling, the object store, the
actor calls and the reordering), over --fake-rows rows.
Run: make bench   (or: python bench/bench_ray.py --rows 64 --max-tokens 16)
"""

from __future__ import annotations

import argparse
import json
import os
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


def timed(args: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def overhead_without_a_model(a) -> bool:
    """(T_ray1(rows) - T_ray1(few)) - (T_local(rows) - T_local(few)), per row, on the fake engine."""
    env = {"CAI_ENGINE_PLUGINS": "fakes.engine", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    t: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = rows_to_critique(a.fake_rows, d / "in.jsonl")
        for n in (a.few, a.fake_rows):
            for way, extra in (("local", []), ("ray", ["--ray", "local", "--ray-actors", "1"])):
                out = d / f"{way}-{n}.jsonl"
                t[way, n] = timed([*CAI, "critique", str(src), "--limit", str(n), "-o", str(out), "--engine", "fake", "--batch-size", str(a.batch_size), *extra], env)
            if (d / f"local-{n}.jsonl").read_bytes() != (d / f"ray-{n}.jsonl").read_bytes():
                print(f"FAIL: the fake engine's {n} rows differ through Ray")
                return False
    span = a.fake_rows - a.few
    per_row = ((t["ray", a.fake_rows] - t["ray", a.few]) - (t["local", a.fake_rows] - t["local", a.few])) / span
    print(f"the Ray path's own cost (fake engine, {a.fake_rows} rows in batches of {a.batch_size}, 1 actor): "
          f"{1000 * per_row:+.2f} ms per row, {1000 * per_row * a.batch_size:+.1f} ms per batch; "
          f"fixed {t['ray', a.few] - t['local', a.few]:+.1f}s per run (local {t['local', a.fake_rows]:.1f}s, Ray {t['ray', a.fake_rows]:.1f}s)", flush=True)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--few", type=int, default=4, help="rows of the short runs that measure the fixed cost")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--few-shot", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--fake-rows", type=int, default=2048, help="rows for the Ray path's own cost, on the fake engine")
    ap.add_argument("--skip-model", action="store_true", help="only the fake-engine part")
    a = ap.parse_args()
    if not overhead_without_a_model(a):
        return 1
    if a.skip_model:
        return 0
    one_thread = {"OMP_NUM_THREADS": "1"}
    runs = [  # (label, rows, extra options, environment)
        ("local, 1 thread", a.few, [], one_thread),
        ("ray, 1 actor", a.few, ["--ray", "local", "--ray-actors", "1"], None),
        ("local, 1 thread", a.rows, [], one_thread),
        ("ray, 1 actor", a.rows, ["--ray", "local", "--ray-actors", "1"], None),
        ("local, every core", a.rows, [], None),
        (f"ray, {a.actors} actors", a.rows, ["--ray", "local", "--ray-actors", str(a.actors)], None),
    ]
    t: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = rows_to_critique(a.rows, d / "in.jsonl")
        common = ["--engine", "transformers", "--max-tokens", str(a.max_tokens), "--few-shot", str(a.few_shot), "--batch-size", str(a.batch_size)]
        for i, (label, n, extra, env) in enumerate(runs):
            out = d / f"{i}.jsonl"
            t[label, n] = timed([*CAI, "critique", str(src), "--limit", str(n), "-o", str(out), *common, *extra], env)
            print(f"critique, {n} rows, {label}: {t[label, n]:.1f}s", flush=True)
            reference = d / f"{runs.index(next(r for r in runs if r[1] == n))}.jsonl"
            if out.read_bytes() != reference.read_bytes():
                print(f"FAIL: {label}'s {n} rows differ from {reference.name}'s")
                return 1
    few, rows = a.few, a.rows
    fixed = t["ray, 1 actor", few] - t["local, 1 thread", few]
    local_per_row = (t["local, 1 thread", rows] - t["local, 1 thread", few]) / (rows - few)
    per_row = ((t["ray, 1 actor", rows] - t["ray, 1 actor", few]) - (t["local, 1 thread", rows] - t["local, 1 thread", few])) / (rows - few)
    print(f"rows identical in every run. Ray path, 1 actor against 1 local thread: fixed overhead {fixed:+.1f}s per run "
          f"(cluster start, model load in the actor), per-row overhead {per_row:+.3f}s ({100 * per_row / local_per_row:+.1f}% of {local_per_row:.3f}s per row)")
    print(f"{rows} rows: {a.actors} actors {t[f'ray, {a.actors} actors', rows]:.1f}s against one local process on every core "
          f"{t['local, every core', rows]:.1f}s ({t['local, every core', rows] / t[f'ray, {a.actors} actors', rows]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
