"""`cai generate --engine openai` with bounded concurrency against one request at a time, same server, same prompts.

Starts one vLLM OpenAI server on the embedded model (eager mode and float32 on a CPU), sends every prompt
once untimed so both sides find the same warm prefix cache, then times:
  - sequential: a plain loop, one POST /v1/chat/completions at a time (httpx, one kept-alive connection);
  - cai: `cai generate --engine openai --concurrency C --batch-size N`, the whole command in this process.
Same greedy sampling and token limit on both sides; the server start is excluded from both.

Run: make bench   (or: python bench/bench_openai.py --prompts 64 --max-tokens 64 --concurrency 16)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def load_prompts(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
    return rows[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(model_dir: str, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx
    import torch

    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--host", HOST, "--port", str(port), "--max-model-len", "2048"]
    env = dict(os.environ)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if not torch.cuda.is_available():
        cmd += ["--dtype", "float32", "--enforce-eager"]
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://{HOST}:{port}/v1"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench_openai: the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop_server(proc)
    sys.exit("bench_openai: the server did not start in 15 minutes")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sequential(url: str, model: str, prompts: list[dict], max_tokens: int) -> tuple[int, float]:
    import httpx

    tokens = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        for i, p in enumerate(prompts):
            payload = {"model": model, "messages": [{"role": "user", "content": p["prompt"]}],
                       "max_tokens": max_tokens, "temperature": 0.0, "seed": i}
            r = client.post("/chat/completions", json=payload)
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]
        return tokens, time.perf_counter() - t0


def with_cai(url: str, prompts: list[dict], max_tokens: int, concurrency: int) -> tuple[int, float]:
    from cai_cli.cli import app

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        out = Path(d) / "out.jsonl"
        args = ["generate", str(src), "-o", str(out), "--engine", "openai", "--base-url", url, "--temperature", "0",
                "--max-tokens", str(max_tokens), "--concurrency", str(concurrency), "--batch-size", str(len(prompts)), "--no-progress"]
        t0 = time.perf_counter()
        code = app(args, standalone_mode=False)  # the exit code, as `cai` would exit
        if code:
            sys.exit(f"bench_openai: cai generate exited with {code}")
        seconds = time.perf_counter() - t0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    return sum(r["meta"]["generate"]["completion_tokens"] for r in rows), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    import httpx

    from cai_cli.model_specs import resolve_model

    model_dir = resolve_model(None)
    prompts = load_prompts(args.prompts)
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(model_dir, Path(d) / "server.log")
        try:
            model = httpx.get(url + "/models", timeout=10).json()["data"][0]["id"]
            with_cai(url, prompts, 1, args.concurrency)  # warm the server's prefix cache for both sides alike
            s_tokens, s_secs = sequential(url, model, prompts, args.max_tokens)
            c_tokens, c_secs = with_cai(url, prompts, args.max_tokens, args.concurrency)
        finally:
            stop_server(proc)
    s_tps, c_tps = s_tokens / s_secs, c_tokens / c_secs
    print(f"bench_openai: {len(prompts)} prompts, greedy, max {args.max_tokens} new tokens, one vLLM server; server start excluded")
    print(f"  one request at a time           {s_tokens:6d} tokens in {s_secs:6.2f}s = {s_tps:7.1f} tok/s")
    print(f"  cai --concurrency {args.concurrency:<3d}           {c_tokens:6d} tokens in {c_secs:6.2f}s = {c_tps:7.1f} tok/s")
    print(f"  speed-up {c_tps / s_tps:.2f}x (wall time {s_secs / c_secs:.2f}x)")


if __name__ == "__main__":
    main()
