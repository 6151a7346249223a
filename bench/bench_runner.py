"""The stage runner streams: memory does not grow with the input, and a pipe's first rows come out early.

1. Peak RSS of `cai export --format sft` over 1,000 and over 100,000 input rows, with -o (side file, then the
   final file streamed from it) and to stdout. Each size runs --repeats times, alternating, in fresh
   processes; the peak is ru_maxrss from wait4. Floor: RSS(100k) / RSS(1k) <= 1.2.
2. `cai generate | cai critique | cai revise` on the embedded model (transformers, CPU): the time from
   launching the pipe to its first output row, against the time of the whole run. Without streaming the
   first row could only come after every stage had read all its input, i.e. at the end.
Run: make bench   (or: python bench/bench_runner.py --rows 16 --max-tokens 8)
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


def revised_rows(n: int, path: Path) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            answer = f"I can't help with that, but here is something safe instead (row {i})."
            fh.write(json.dumps({
                "id": f"r{i}", "prompt": f"How do I do risky thing number {i}?", "initial_response": "Sure, here's how.",
                "response": answer, "rounds": [{"principle": "harm", "critique_request": "Is it harmful?", "critique": "Yes.",
                                                "revision_request": "Make it safe.", "revision": answer, "changed": True}],
                "meta": {"generate": {"model": "embedded", "seed": 0}},
            }) + "\n")
    return path


def peak_rss_mib(args: list[str], stdout, cwd: Path = ROOT) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one command."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err}")
    return usage.ru_maxrss / 1024.0, time.monotonic() - started


def bench_rss(small: int, large: int, repeats: int, cwd: Path) -> bool:
    ok = True
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        inputs = {n: revised_rows(n, d / f"in{n}.jsonl") for n in (small, large)}
        print(f"input sizes: {small} rows {inputs[small].stat().st_size / 2**20:.1f} MiB, {large} rows {inputs[large].stat().st_size / 2**20:.1f} MiB")
        for mode in ("-o FILE", "stdout"):
            peaks: dict[int, list[float]] = {small: [], large: []}
            secs: dict[int, list[float]] = {small: [], large: []}
            for _ in range(repeats):
                for n in (small, large):  # alternating, so machine load falls on both sides alike
                    args = [*CAI, "export", str(inputs[n]), "--format", "sft"]
                    if mode == "stdout":
                        with open(os.devnull, "wb") as sink:
                            rss, sec = peak_rss_mib(args, sink, cwd)
                    else:
                        out = d / f"out{n}.jsonl"
                        rss, sec = peak_rss_mib([*args, "-o", str(out)], subprocess.DEVNULL, cwd)
                        assert sum(1 for _ in out.open()) == n
                    peaks[n].append(rss)
                    secs[n].append(sec)
            lo, hi = max(peaks[small]), max(peaks[large])
            ratio = hi / lo
            ok &= ratio <= 1.2
            print(f"peak RSS, cai export {mode}: {small} rows {lo:.1f} MiB, {large} rows {hi:.1f} MiB -> ratio {ratio:.3f} "
                  f"({'ok' if ratio <= 1.2 else 'FAIL'}: floor 1.2); {large} rows in {min(secs[large]):.1f}s")
    return ok


def bench_pipe(rows: int, max_tokens: int, batch: int) -> None:
    prompts = [json.loads(line) for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()][:rows]
    common = ["--engine", "transformers", "--max-tokens", str(max_tokens), "--batch-size", str(batch), "--no-progress"]
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "prompts.jsonl"
        src.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        launched = time.monotonic()
        gen = subprocess.Popen([*CAI, "generate", str(src), *common], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        crit = subprocess.Popen([*CAI, "critique", *common], stdin=gen.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        rev = subprocess.Popen([*CAI, "revise", *common], stdin=crit.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        gen.stdout.close()
        crit.stdout.close()
        first = None
        got = 0
        for _ in rev.stdout:
            got += 1
            if first is None:
                first = time.monotonic() - launched
                print(f"  first output row after {first:.1f}s (generate still running: {gen.poll() is None})", flush=True)
        for p in (gen, crit, rev):
            p.wait()
        total = time.monotonic() - launched
        if rev.returncode or got != len(prompts):
            raise SystemExit(f"the pipe failed ({got} rows):\n{rev.stderr.read().decode()}")
    print(f"generate | critique | revise, {len(prompts)} rows, --batch-size {batch}, --max-tokens {max_tokens} (embedded model, transformers, CPU):")
    print(f"  first output row after {first:.1f}s; whole run {total:.1f}s ({100 * first / total:.0f}% of it)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rows", type=int, default=16, help="rows through the 3-stage pipe")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--skip-pipe", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--cai-root", type=Path, default=ROOT, help="run the cai of another checkout (to compare)")
    args = ap.parse_args()
    ok = args.skip_rss or bench_rss(args.small, args.large, args.repeats, args.cai_root)
    if not args.skip_pipe:
        bench_pipe(args.rows, args.max_tokens, args.batch_size)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
