"""The OpenAI-compatible back end: any server with /v1/chat/completions (vllm serve, SGLang, llama.cpp, a hosted API).

One server can serve every stage of a pipeline without reloading the model; several (repeated --base-url)
share the rows. Requests run in daemon threads, at most --concurrency in flight per server, and are retried
with exponential backoff on 429, 5xx, timeouts and lost connections; a conversation that still fails gets a
Completion with `error` set, which the runner turns into a failed row.
"""

from __future__ import annotations

import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EngineError
from .base import Completion, Conversation, Sampling, render_with_tokenizer, seeds_or_default

if TYPE_CHECKING:
    from . import EngineOptions

RETRY_STATUS = {408, 409, 425, 429}
BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time
BACKOFF_CAP = 30.0
START_TIMEOUT = 10.0  # for the GET /v1/models at start: a live server answers at once


def normalize_base_url(url: str) -> str:
    """'http://host:8000', 'http://host:8000/' and 'http://host:8000/v1' all mean the same server."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EngineError(f"--base-url {url}: expected an http:// or https:// URL, such as http://127.0.0.1:8000/v1")
    return url if url.endswith("/v1") else url + "/v1"


def _server_message(response) -> str:
    """The server's own reason, from an OpenAI-style error body when there is one."""
    try:
        body = response.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        message = err.get("message") if isinstance(err, dict) else err
        text = str(message or body)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    return text[:300] or response.reason_phrase


def _local_folder(value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_dir() and ((path / "tokenizer_config.json").exists() or (path / "tokenizer.json").exists()) else None


class _Replica:
    def __init__(self, url: str, client):
        self.url = url
        self.client = client
        self.inflight = 0
        self.down_until = 0.0  # after a lost connection, other replicas get the work for a while


class _Failed:
    """A request that kept failing: why, and whether retrying could ever have helped."""

    def __init__(self, reason: str, retryable: bool, status: int | None = None):
        self.reason = reason
        self.retryable = retryable
        self.status = status


class OpenAIEngine:
    name = "openai"

    def __init__(self, opts: EngineOptions):
        try:
            import httpx
        except ImportError:
            raise EngineError("--engine openai needs httpx: pip install httpx (or cai-cli[serve])") from None
        self._httpx = httpx
        if not opts.base_urls:
            raise EngineError("--engine openai needs --base-url URL, e.g. --base-url http://127.0.0.1:8000/v1 (repeat it for several replicas)")
        urls = list(dict.fromkeys(normalize_base_url(u) for u in opts.base_urls))
        self.concurrency = max(1, opts.concurrency)
        self.max_retries = max(0, opts.max_retries)
        self.timeout = opts.timeout
        headers = {}
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise EngineError(f"--api-key-env {opts.api_key_env}: that environment variable is not set or is empty")
            headers["Authorization"] = f"Bearer {key}"  # kept in the clients only; never in rows, logs or errors
        timeout = httpx.Timeout(opts.timeout, connect=min(opts.timeout, START_TIMEOUT))
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)

        self.replicas: list[_Replica] = []
        served: list[dict[str, dict]] = []
        problems = []
        for url in urls:
            client = httpx.Client(base_url=url, headers=headers, timeout=timeout, limits=limits)
            models, problem = self._list_models(client, url)
            if problem:
                problems.append(problem)
                client.close()
                continue
            served.append(models)
            self.replicas.append(_Replica(url, client))
        if not self.replicas:
            detail = problems[0] if len(problems) == 1 else "; ".join(problems)
            raise EngineError(f"no OpenAI-compatible server answered: {detail}. Start one (python -m vllm.entrypoints.openai.api_server --model MODEL) or fix --base-url")

        self.model, self._tokenizer_folder = self._choose_model(opts.model, served[0])
        for replica, models in list(zip(self.replicas, served))[1:]:
            if self.model not in models:
                problems.append(f"{replica.url} does not serve {self.model} (it serves {', '.join(models)})")
                self.replicas.remove(replica)
                replica.client.close()
        for problem in problems:
            print(f"cai: warning: {problem}; going on with the other servers", file=sys.stderr)
        entry = served[0].get(self.model, {})
        length = entry.get("max_model_len")
        self._max_model_len = int(length) if isinstance(length, int) and length > 0 else None
        self._tokenizer = None
        self._server_tokenize: bool | None = None
        self._cond = threading.Condition()
        self._jobs: queue.Queue = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()

    # ---- start-up -------------------------------------------------------------------------------

    def _list_models(self, client, url: str) -> tuple[dict[str, dict], str | None]:
        httpx = self._httpx
        try:
            r = client.get("/models", timeout=min(self.timeout, START_TIMEOUT))
        except httpx.TimeoutException:
            return {}, f"{url}: no answer within {min(self.timeout, START_TIMEOUT):.0f}s"
        except httpx.TransportError as exc:
            return {}, f"{url}: cannot connect ({_transport_reason(exc)})"
        if r.status_code in (401, 403):
            raise EngineError(f"{url}: the server refused the request (HTTP {r.status_code}); check the key in --api-key-env")
        if r.status_code != 200:
            return {}, f"{url}/models answered HTTP {r.status_code} ({_server_message(r)})"
        try:
            data = r.json().get("data") or []
            models = {str(m["id"]): m for m in data if isinstance(m, dict) and "id" in m}
        except (ValueError, AttributeError, KeyError):
            return {}, f"{url}/models did not answer with an OpenAI model list"
        if not models:
            return {}, f"{url}/models lists no model"
        return models, None

    def _choose_model(self, wanted: str | None, served: dict[str, dict]) -> tuple[str, Path | None]:
        """The served model id to request, and a local folder holding its tokenizer (or None)."""
        ids = list(served)
        if wanted is None:
            return ids[0], _local_folder(ids[0])
        if wanted in served:
            return wanted, _local_folder(wanted)
        folder = _local_folder(wanted)
        if folder is not None:
            # vLLM serves a folder under the path it was given, which may be spelled differently here.
            for served_id in ids:
                if _local_folder(served_id) and Path(served_id).resolve() == folder.resolve():
                    return served_id, folder
            if len(ids) == 1:
                return ids[0], folder
        raise EngineError(f"--model {wanted}: not served at {self.replicas[0].url}; it serves: {', '.join(ids)}")

    # ---- the interface ----------------------------------------------------------------------------

    @property
    def max_context(self) -> int | None:
        # Only useful when prompts can be counted here; otherwise the server rejects overlong rows itself.
        if self._max_model_len is None or not self._can_count():
            return None
        return self._max_model_len

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        tok = self._load_tokenizer()
        if tok is None:
            raise EngineError(
                f"the openai engine renders chats for option scoring with the model's chat template, but the served model "
                f"{self.model!r} is not a local folder here; pass --model with a local folder of the same model"
            )
        return render_with_tokenizer(tok, conversation, add_generation_prompt)

    def count_tokens(self, conversation: Conversation) -> int:
        tok = self._load_tokenizer()
        if tok is not None:
            return len(tok(render_with_tokenizer(tok, conversation), add_special_tokens=False)["input_ids"])
        if self._can_count():
            data = self._tokenize_on_server({"model": self.model, "messages": conversation, "add_generation_prompt": True})
            if data is not None:
                return int(data.get("count", len(data.get("tokens", []))))
        raise EngineError(f"cannot count tokens for {self.model!r}: no local tokenizer, and the server has no /tokenize")

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        payloads = []
        for conv, seed in zip(conversations, seeds_or_default(seeds, sampling, len(conversations))):
            payload: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": m["role"], "content": m["content"]} for m in conv],
                "max_tokens": sampling.max_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "n": sampling.n,
                # One seed per request (the row's own): a row samples the same whatever else is in its batch.
                "seed": seed,
            }
            if sampling.stop:
                payload["stop"] = list(sampling.stop)
            payloads.append(payload)
        results = self._run_all([(self._post, "/chat/completions", p) for p in payloads])
        return [self._completion(r, sampling.n) for r in results]

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """log P(option | prompt) from the server's prompt log-probs (/v1/completions, echo): prefill only."""
        tok = self._load_tokenizer()
        jobs, plans = [], []
        if tok is not None:
            option_ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
            for p in prompts:
                prompt_ids = tok(p, add_special_tokens=False)["input_ids"]
                if not prompt_ids:
                    raise EngineError("score_options: an empty prompt gives the first option token no context to be scored in")
                # Token ids, so the split between prompt and option is exactly the transformers engine's.
                batch = [list(prompt_ids) + list(ids) for ids in option_ids]
                plans.append([(len(prompt_ids), len(ids)) for ids in option_ids])
                jobs.append((self._post, "/completions", self._score_payload(batch)))
        else:
            for p in prompts:
                plans.append([(len(p), len(o)) for o in options])
                jobs.append((self._post, "/completions", self._score_payload([p + o for o in options])))
        results = self._run_all(jobs)
        scores = []
        for result, plan in zip(results, plans):
            scores.append(self._option_scores(result, plan, by_tokens=tok is not None))
        return scores

    def close(self) -> None:
        self._stop.set()
        for _ in self._workers:
            self._jobs.put(None)
        for replica in self.replicas:
            replica.client.close()

    # ---- requests -------------------------------------------------------------------------------

    def _score_payload(self, prompt: list) -> dict:
        # max_tokens=1 rather than 0: not every server accepts 0; the one sampled token is ignored.
        return {"model": self.model, "prompt": prompt, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}

    def _option_scores(self, result, plan: list[tuple[int, int]], by_tokens: bool) -> list[float]:
        if isinstance(result, _Failed):
            if result.retryable:
                raise EngineError(f"option scoring failed: {result.reason}; rerun the same command to resume")
            raise EngineError(
                f"the server cannot score options ({result.reason}); it needs /v1/completions with echo and logprobs "
                "(vLLM's server has them); or score with --engine vllm or transformers"
            )
        choices = sorted(result.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) < len(plan):
            raise EngineError(f"the server answered {len(choices)} of {len(plan)} scoring prompts; it does not support batched prompts with echo")
        out = []
        for choice, (prompt_len, option_len) in zip(choices, plan):
            logprobs = choice.get("logprobs") or {}
            values = logprobs.get("token_logprobs")
            if by_tokens:
                picked = values[prompt_len : prompt_len + option_len] if isinstance(values, list) else None
                if picked is None or len(picked) < option_len:
                    picked = None
            else:
                offsets = logprobs.get("text_offset")
                picked = None
                if isinstance(values, list) and isinstance(offsets, list):
                    picked = [v for v, at in zip(values, offsets) if prompt_len <= at < prompt_len + option_len]
            if picked is None or any(v is None for v in picked):
                raise EngineError(
                    "the server does not return prompt log-probs (echo with logprobs) at /v1/completions, which option "
                    "scoring needs (vLLM's server does); or score with --engine vllm or transformers"
                )
            out.append(float(sum(picked)))
        return out

    def _completion(self, result, n: int) -> Completion:
        if isinstance(result, _Failed):
            return Completion([], error=result.reason)
        choices = sorted(result.get("choices") or [], key=lambda c: c.get("index", 0))
        texts = [((c.get("message") or {}).get("content") or "") for c in choices]
        if len(texts) < n:
            return Completion([], error=f"the server returned {len(texts)} of the {n} replies asked for (--n)")
        usage = result.get("usage") or {}
        reasons = ["length" if c.get("finish_reason") == "length" else "stop" for c in choices[:n]]
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        return Completion(
            texts[:n],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reasons=reasons,
            cached_tokens=cached,
        )

    def _run_all(self, jobs: list[tuple[Callable, str, dict]]) -> list:
        """Run every request in the pool and return the results in the order given."""
        if not jobs:
            return []
        self._start_workers()
        futures = []
        for fn, path, payload in jobs:
            fut: Future = Future()
            self._jobs.put((fut, fn, (path, payload)))
            futures.append(fut)
        try:
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a crash: queued requests are dropped; the workers are daemons and never hold up the exit.
            for f in futures:
                f.cancel()
            raise

    def _start_workers(self) -> None:
        wanted = self.concurrency * len(self.replicas)
        while len(self._workers) < wanted:
            t = threading.Thread(target=self._work, name=f"cai-openai-{len(self._workers)}", daemon=True)
            t.start()
            self._workers.append(t)

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 (handed to the caller, who re-raises it)
                fut.set_exception(exc)

    def _acquire(self) -> _Replica:
        """The least-busy server that has a free slot and is not cooling down after a lost connection."""
        with self._cond:
            while True:
                now = time.monotonic()
                free = [r for r in self.replicas if r.inflight < self.concurrency]
                up = [r for r in free if r.down_until <= now]
                if not up and free and all(r.down_until > now for r in self.replicas):
                    up = free  # every server is down: try anyway; the retry budget decides when to give up
                if up:
                    replica = min(up, key=lambda r: (r.inflight, r.down_until))
                    replica.inflight += 1
                    return replica
                self._cond.wait(0.2)

    def _release(self, replica: _Replica) -> None:
        with self._cond:
            replica.inflight -= 1
            self._cond.notify()

    def _post(self, path: str, payload: dict):
        """POST with retries; the parsed JSON answer, or a _Failed saying why not."""
        httpx = self._httpx
        failure = _Failed("no attempt made", True)
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                return _Failed("the engine was closed", False)
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            replica = self._acquire()
            try:
                response = replica.client.post(path, json=payload)
            except httpx.TimeoutException:
                failure = _Failed(f"{replica.url}: no answer within {self.timeout:.0f}s", True)
            except httpx.TransportError as exc:
                reason = _transport_reason(exc)
                failure = _Failed(f"{replica.url}: {reason if reason == 'connection refused' else f'connection lost ({reason})'}", True)
                replica.down_until = time.monotonic() + delay
            else:
                code = response.status_code
                if code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        failure = _Failed(f"{replica.url}{path}: the answer is not JSON", True, code)
                else:
                    retryable = code in RETRY_STATUS or code >= 500
                    failure = _Failed(f"{replica.url}{path}: HTTP {code} ({_server_message(response)})", retryable, code)
                    if not retryable:
                        return failure
                    delay = _retry_after(response, delay)
            finally:
                self._release(replica)
            if attempt < self.max_retries and self._stop.wait(delay):
                break
        tries = self.max_retries + 1
        return _Failed(f"gave up after {tries} attempt{'s' if tries > 1 else ''}: {failure.reason}", True, failure.status)

    # ---- tokenizers -------------------------------------------------------------------------------

    def _load_tokenizer(self):
        if self._tokenizer is None and self._tokenizer_folder is not None:
            from transformers import AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self._tokenizer_folder))
            except (OSError, ValueError) as exc:
                raise EngineError(f"{self._tokenizer_folder}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from exc
        return self._tokenizer

    def _can_count(self) -> bool:
        if self._tokenizer_folder is not None:
            return True
        if self._server_tokenize is None:
            # vLLM's server tokenizes with the model's own chat template at /tokenize; others have no such route.
            probe = {"model": self.model, "messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True}
            self._server_tokenize = self._tokenize_on_server(probe) is not None
        return self._server_tokenize

    def _tokenize_on_server(self, payload: dict) -> dict | None:
        replica = self.replicas[0]
        root = replica.url[: -len("/v1")]
        try:
            r = replica.client.post(root + "/tokenize", json=payload)
        except self._httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        try:
            data = r.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and ("count" in data or "tokens" in data) else None


def _transport_reason(exc) -> str:
    text = str(exc).strip()
    if "refused" in text.lower() or "Errno 111" in text:
        return "connection refused"
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _retry_after(response, default: float) -> float:
    value = response.headers.get("retry-after")
    if value is None:
        return default
    try:
        return min(BACKOFF_CAP, max(0.0, float(value)))
    except ValueError:
        return default
