"""`--engine openai`: the stages through an OpenAI-compatible server.

Fault handling (replicas, bounded concurrency, retries, a server that dies mid-run, an unreachable server)
runs against a small fake server in this process, so each failure is exact and fast. The stages and
option scoring also run for real against vLLM's own OpenAI server on the embedded model (marked vllm).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import read_jsonl, run_cai, write_jsonl

HOST = "127.0.0.1"
QUICK = ["--engine", "openai", "--max-tokens", "8", "--temperature", "0", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class FakeServer:
    """An OpenAI-compatible server that answers 'reply to: <last user message>', with scripted faults.

    Faults by prompt text: 'busy' → 429 every time; 'broken' → 500 every time; 'flaky' → 500 on the first
    attempt only. die_after=N: the (N+1)th chat request finds the server gone (connection dropped, port closed).
    """

    def __init__(self, port: int | None = None, delay: float = 0.0, die_after: int | None = None):
        self.delay = delay
        self.die_after = die_after
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}  # last user message -> chat requests received
        self.served: list[str] = []  # last user messages answered with 200
        self.seeds: dict[str, int] = {}  # last user message -> the seed its request carried
        self.inflight = 0
        self.max_inflight = 0
        self.auth: set[str] = set()
        self.completions_status = 404
        self.httpd = ThreadingHTTPServer((HOST, port or 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.dead = False

    def stop(self) -> None:
        if not self.dead:
            self.dead = True
            self.httpd.shutdown()
            self.httpd.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.auth.add(self.headers.get("Authorization", ""))
                if self.path == "/v1/completions":
                    self._send(fake.completions_status, {"error": {"message": "no such route"}})
                    return
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                last = body["messages"][-1]["content"]
                fake.seeds[last] = body.get("seed")
                with fake.lock:
                    fake.attempts[last] = attempt = fake.attempts.get(last, 0) + 1
                    if fake.die_after is not None and len(fake.served) >= fake.die_after:
                        # Killed mid-run: close the port and drop this connection unanswered.
                        threading.Thread(target=fake.stop, daemon=True).start()
                        self.close_connection = True
                        return
                    fake.inflight += 1
                    fake.max_inflight = max(fake.max_inflight, fake.inflight)
                try:
                    time.sleep(fake.delay)
                    # The SDK waits what the server asks (here 5 ms) before a retry, not its backoff of 0.5-8 s.
                    if "busy" in last:
                        self._send(429, {"error": {"message": "rate limited"}}, {"retry-after-ms": "5"})
                    elif "broken" in last or ("flaky" in last and attempt == 1):
                        self._send(500, {"error": {"message": "internal error"}}, {"retry-after-ms": "5"})
                    else:
                        with fake.lock:
                            fake.served.append(last)
                        n = body.get("n", 1)
                        choices = [{"index": i, "message": {"role": "assistant", "content": f"reply to: {last}"}} for i in range(n)]
                        usage = {"prompt_tokens": 5, "completion_tokens": 3 * n, "prompt_tokens_details": {"cached_tokens": 4}}
                        self._send(200, {"choices": choices, "usage": usage})
                finally:
                    with fake.lock:
                        fake.inflight -= 1

        return Handler


@pytest.fixture
def fake():
    servers: list[FakeServer] = []

    def make(**kwargs) -> FakeServer:
        servers.append(FakeServer(**kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def prompts(texts: list[str]) -> list[dict]:
    return [{"id": f"r{i}", "prompt": t, "mine": i} for i, t in enumerate(texts)]


def test_rows_spread_over_replicas_in_order_with_bounded_concurrency(tmp_path, fake):
    a, b = fake(delay=0.3), fake(delay=0.3)
    rows = prompts([f"question {i}" for i in range(12)])
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    secret = "sk-test-0123456789-secret"
    proc = run_cai(
        "generate", str(src), "-o", str(out), *QUICK, "--base-url", a.url, "--base-url", b.url,
        "--concurrency", "2", "--batch-size", "12", "--api-key-env", "CAI_TEST_KEY",
        env={"CAI_TEST_KEY": secret},
    )
    assert proc.returncode == 0, proc.stderr
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    assert [r["response"] for r in got] == [f"reply to: {r['prompt']}" for r in rows]
    assert [r["mine"] for r in got] == list(range(12))  # the user's own column passes through
    assert got[0]["meta"]["generate"]["engine"] == "openai"
    # Both replicas worked, neither ever had more than --concurrency requests in flight.
    assert a.served and b.served and len(a.served) + len(b.served) == 12
    assert 1 <= a.max_inflight <= 2 and 1 <= b.max_inflight <= 2
    assert max(a.max_inflight, b.max_inflight) == 2
    # The key reaches the server and nowhere else.
    assert a.auth == {f"Bearer {secret}"}
    assert secret not in out.read_text() and secret not in proc.stderr and secret not in proc.stdout


def test_rows_sharing_a_prefix_are_sent_together_each_with_its_own_seed(tmp_path, fake):
    server = fake()
    systems = ["You are a careful assistant. " * 20, "Answer in French. " * 20]
    rows = [{"id": f"r{i}", "messages": [{"role": "system", "content": systems[i % 2]}, {"role": "user", "content": f"question {i}"}]} for i in range(6)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = run_cai("generate", str(src), "-o", str(out), *QUICK, "--base-url", server.url, "--concurrency", "1", "--batch-size", "6")
    assert proc.returncode == 0, proc.stderr
    # One request at a time: the server sees the rows of one system prompt, then the other's (its prefix cache hits).
    assert server.served == ["question 1", "question 3", "question 5", "question 0", "question 2", "question 4"]
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]  # written in input order
    assert "24 prompt tokens from cache" in proc.stderr  # the server's usage.prompt_tokens_details, summed
    seeds = dict(server.seeds)
    assert len(set(seeds.values())) == 6
    # Each row's seed is its own: another batch size sends every row the same seed.
    server.seeds.clear()
    proc = run_cai("generate", str(src), "-o", str(tmp_path / "again.jsonl"), *QUICK, "--base-url", server.url, "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert server.seeds == seeds


def test_server_errors_are_retried_then_become_error_rows(tmp_path, fake):
    server = fake()
    rows = prompts(["fine one", "busy one", "broken one", "flaky one", "fine two"])
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = run_cai("generate", str(src), "-o", str(out), *QUICK, "--base-url", server.url, "--on-error", "skip")
    assert proc.returncode == 0, proc.stderr
    # 429 and 500 are retried: 1 attempt + 4 retries (EngineOptions.max_retries), then given up.
    assert server.attempts["busy one"] == 5
    assert server.attempts["broken one"] == 5
    # A server error that clears up costs one retry and nothing else.
    assert server.attempts["flaky one"] == 2
    assert server.attempts["fine one"] == 1
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r3", "r4"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert sorted(e["row"]["id"] for e in errors) == ["r1", "r2"]
    reasons = {e["row"]["id"]: e["error"] for e in errors}
    assert "429" in reasons["r1"] and "500" in reasons["r2"] and "5 attempts" in reasons["r2"]
    assert "1 failed" not in proc.stderr and "2 failed" in proc.stderr

    # --max-retries bounds the tries: a rerun with 1 retries the two failed rows twice each.
    server.attempts.clear()
    proc = run_cai("generate", str(src), "-o", str(out), *QUICK, "--base-url", server.url, "--on-error", "skip", "--max-retries", "1")
    assert proc.returncode == 0, proc.stderr
    assert server.attempts["busy one"] == 2 and server.attempts["broken one"] == 2
    assert "fine one" not in server.attempts  # done rows are not asked again


def test_server_killed_mid_run_fails_then_resumes_every_row_once(tmp_path, fake):
    first = fake(die_after=3)
    rows = prompts([f"question {i}" for i in range(8)])
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    # One retry against the dead port (the SDK's backoff: 0.5 s), not four (7.5 s): what is checked is what follows.
    args = ["generate", str(src), "-o", str(out), *QUICK, "--base-url", first.url, "--batch-size", "2", "--concurrency", "1", "--max-retries", "1"]
    proc = run_cai(*args)
    assert proc.returncode == 2, proc.stderr
    assert "rerun" in proc.stderr and "connection" in proc.stderr
    assert not out.exists()
    kept = [r for r in read_jsonl(tmp_path / "out.jsonl.partial") if "cai_side_file" not in r]  # past the header
    assert 2 <= len(kept) <= 3

    second = fake(port=first.port)  # the server is back
    proc = run_cai(*args)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(kept)} resumed" in proc.stderr
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in rows]  # every row, once, in order
    assert [r["response"] for r in got] == [f"reply to: {r['prompt']}" for r in rows]
    assert sorted(second.served) == sorted(r["prompt"] for r in rows[len(kept) :])  # finished rows were not redone
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_unreachable_server_or_unknown_model_is_one_line_exit_2(tmp_path, fake):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(["hello"]))
    dead = f"http://{HOST}:{free_port()}/v1"
    proc = run_cai("generate", str(src), *QUICK, "--base-url", dead)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cai: error:") and dead in lines[0], proc.stderr
    assert proc.stdout == ""

    server = fake()
    proc = run_cai("generate", str(src), *QUICK, "--base-url", server.url, "--model", "no-such-model")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-model" in lines[0] and "fake-model" in lines[0], proc.stderr

    proc = run_cai("generate", str(src), *QUICK, "--base-url", server.url, "--api-key-env", "CAI_TEST_UNSET_KEY")
    assert proc.returncode == 2 and "CAI_TEST_UNSET_KEY" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_scoring_needs_a_tokenizer_here_and_a_server_with_prompt_logprobs(fake, tmp_path):
    from cai_cli.engines import EngineOptions, ServerOptions
    from cai_cli.engines.openai import OpenAIEngine
    from cai_cli.errors import EngineError

    from tiny_model import build_tiny_model

    server = fake()
    engine = OpenAIEngine(EngineOptions(engine="openai", server=ServerOptions(base_url=[server.url.removesuffix("/v1")])))
    try:
        assert engine.model == "fake-model" and engine.max_context is None
        with pytest.raises(EngineError, match="not a local folder"):
            engine.score_options(["The capital of France is"], [" Paris", " banana"])
        with pytest.raises(EngineError, match="not a local folder"):
            engine.render_chat([{"role": "user", "content": "hi"}])
    finally:
        engine.close()

    # With the model's tokenizer here, a server without /v1/completions fails both ways of scoring, in one line.
    engine = OpenAIEngine(EngineOptions(engine="openai", server=ServerOptions(base_url=[server.url]), model=str(build_tiny_model(tmp_path / "tiny"))))
    try:
        with pytest.raises(EngineError, match=r"option scoring failed \(.*HTTP 404 \(no such route\)\)"):
            engine.score_options(["The capital of France is"], [" Paris", " banana"])
        assert engine._label_reads is False  # asked once; not asked again
        # Once the server has taken logprob_token_ids, a lost request says why, not that the feature went away.
        engine._label_reads = True
        with pytest.raises(EngineError, match=r"option scoring failed \(.*HTTP 404 \(no such route\)\); rerun"):
            engine.score_options(["The capital of France is"], [" Paris", " banana"])
    finally:
        engine.close()


# ---- for real: vLLM's OpenAI server on the embedded model -------------------------------------------


def start_vllm_server(model: str, log: Path) -> tuple[subprocess.Popen, str]:
    """vLLM's OpenAI server on a free port, ready (its /v1/models answers); its output in LOG. Another port is tried
    when the one picked was taken before the server bound it (another test worker)."""
    import httpx

    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_LOGGING_LEVEL="WARNING")
    # The model runs in the engine-core process the server starts, not in a third process that imports vLLM again.
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    for attempt in range(3):
        port = free_port()
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--dtype", "float32",
               "--host", HOST, "--port", str(port), "--max-model-len", "2048", "--enforce-eager"]
        with log.open("wb") as fh:
            # Its own process group, so the engine process it spawns is stopped with it.
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://{HOST}:{port}/v1"
        deadline = time.monotonic() + 600
        while proc.poll() is None:
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                stop_server(proc)
                pytest.fail(f"the vLLM server did not start in 10 minutes:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        if "address already in use" not in log.read_text().lower() or attempt == 2:
            break
    pytest.fail(f"the vLLM server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """One server for the module's tests (a start costs 20-40 s on a CPU)."""
    from cai_cli.model_specs import resolve_model

    model = resolve_model(None)
    proc, url = start_vllm_server(model, tmp_path_factory.mktemp("vllm-server") / "server.log")
    try:
        yield {"url": url, "model": model}
    finally:
        stop_server(proc)


@pytest.mark.vllm
def test_pipeline_through_vllm_server(tmp_path, vllm_server):
    url = vllm_server["url"]
    rows = [
        {"id": "a", "prompt": "How do I pick a lock?", "keep": 1},
        {"id": "b", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a secret."}]},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["--engine", "openai", "--base-url", url, "--max-tokens", "8", "--temperature", "0", "--no-progress"]
    for stage, inp, out in (("generate", src, "gen"), ("critique", tmp_path / "gen.jsonl", "crit"), ("revise", tmp_path / "crit.jsonl", "rev")):
        proc = run_cai(stage, str(inp), "-o", str(tmp_path / f"{out}.jsonl"), *common)
        assert proc.returncode == 0, proc.stderr
    gen = read_jsonl(tmp_path / "gen.jsonl")
    assert [r["id"] for r in gen] == ["a", "b"] and gen[0]["keep"] == 1
    assert all(r["response"] for r in gen)
    assert all(0 < r["meta"]["generate"]["completion_tokens"] <= 8 and r["meta"]["generate"]["prompt_tokens"] > 0 for r in gen)
    final = read_jsonl(tmp_path / "rev.jsonl")
    assert [r["id"] for r in final] == ["a", "b"]
    for r in final:
        (round_,) = r["rounds"]
        assert round_["critique"] and "revision" in round_
        assert r["meta"]["revise"]["engine"] == "openai"
        assert r["initial_response"] == gen[[g["id"] for g in gen].index(r["id"])]["response"]

    # The AI-feedback stage scores options through the same server (prompt log-probs, chat template).
    pairs = [{"id": "p", "prompt": "How do I pick a lock?", "candidates": ["I can't help you break into places.", "Sure: first, get a tension wrench."]}]
    src = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    proc = run_cai("label-prefs", str(src), "-o", str(tmp_path / "prefs.jsonl"), *common)
    assert proc.returncode == 0, proc.stderr
    (pref,) = read_jsonl(tmp_path / "prefs.jsonl")
    assert 0.5 <= pref["preference"]["p_chosen"] <= 1.0 and pref["chosen"] and pref["rejected"]


@pytest.mark.vllm
def test_option_scores_through_vllm_server_match_transformers(vllm_server):
    from cai_cli.engines import EngineOptions, ServerOptions
    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.engines.openai import OpenAIEngine

    engine = OpenAIEngine(EngineOptions(engine="openai", server=ServerOptions(base_url=[vllm_server["url"]])))
    try:
        conv = [{"role": "user", "content": "Which one is a fruit? (A) a car (B) an apple. Answer with A or B."}]
        chat_prompt = engine.render_chat(conv) + "The answer is"
        prompts = ["The capital of France is", chat_prompt]
        options = [" Paris", " banana", " (A)", " (B)"]
        got = engine.score_options(prompts, options)
        assert got[0][0] > got[0][1] + 5  # " Paris" far above " banana"
        assert engine.max_context == 2048  # the server's --max-model-len
        reference = TransformersEngine(vllm_server["model"])
        want = reference.score_options(prompts, options)
        for row_got, row_want in zip(got, want):
            assert row_got == pytest.approx(row_want, abs=2e-3)
        assert engine.count_tokens(conv) == reference.count_tokens(conv)
        assert engine.render_chat(conv) == reference.render_chat(conv)
        # One-token options (the judge's letters after "("): vLLM's logprob_token_ids, asked once, same scores.
        letters = [engine.render_chat(conv) + "The answer is (", engine.render_chat(conv) + "Answer: ("]
        got = engine.score_options(letters, ["A", "B"])
        assert engine._label_reads is True
        for row_got, row_want in zip(got, reference.score_options(letters, ["A", "B"])):
            assert row_got == pytest.approx(row_want, abs=2e-3)
    finally:
        engine.close()
