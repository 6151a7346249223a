"""The OpenAI-compatible back end: any server with /v1/chat/completions (vllm serve, SGLang, llama.cpp, a hosted API).

Requests go through the official `openai` SDK (AsyncOpenAI), which times out, retries 408/409/429/5xx and lost
connections with exponential backoff and honours Retry-After. Ours is only which server (repeated --base-url)
takes a request, at most --concurrency in flight per server, and the mapping of answers to Completions; a
conversation that still fails gets a Completion with `error` set, which the runner turns into a failed row.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EngineError
from .base import Completion, Conversation, Sampling, option_continuation, render_with_tokenizer, seeds_or_default

if TYPE_CHECKING:
    from . import EngineOptions

START_TIMEOUT = 10.0  # for GET /v1/models at start: a live server answers at once
DOWN_FOR = 30.0  # after a lost connection, the other servers take the work for this long


def normalize_base_url(url: str) -> str:
    """'http://host:8000', 'http://host:8000/' and 'http://host:8000/v1' all mean the same server."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EngineError(f"--base-url {url}: expected an http:// or https:// URL, such as http://127.0.0.1:8000/v1")
    return url if url.endswith("/v1") else url + "/v1"


def _tokenizer_folder(value: str | None) -> Path | None:
    path = Path(value).expanduser() if value else None
    return path if path and path.is_dir() and any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")) else None


def option_token_ids(tokenizer, prompt: str, option: str) -> tuple[list[int], list[int]]:
    """(context ids, option ids) as the model reads prompt+option (see base.option_continuation)."""
    ids = lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return option_continuation(ids(prompt), ids(prompt + option), option)


@dataclass
class _Replica:
    url: str
    client: Any  # openai.AsyncOpenAI
    slots: asyncio.Semaphore  # --concurrency
    load: int = 0  # requests assigned to it and not finished
    down_until: float = 0.0


class _Failed(str):
    """Why a request failed for good (the SDK's retries spent, or an answer no retry changes)."""


class OpenAIEngine:
    name = "openai"

    def __init__(self, opts: EngineOptions):
        try:
            import openai
        except ImportError:
            raise EngineError("--engine openai needs the openai package: pip install 'cai-cli[openai]'") from None
        server = opts.server
        self._openai, self.timeout, self.max_retries = openai, server.request_timeout, max(0, server.max_retries)
        if not server.base_url:
            raise EngineError("--engine openai needs --base-url URL, e.g. --base-url http://127.0.0.1:8000/v1 (repeat it for several replicas)")
        key = os.environ.get(server.api_key_env) if server.api_key_env else "EMPTY"  # a local server ignores the key
        if not key:
            raise EngineError(f"--api-key-env {server.api_key_env}: that environment variable is not set or is empty")
        self._loop = asyncio.new_event_loop()
        self.replicas: list[_Replica] = []
        served: list[dict[str, dict]] = []
        problems: list[str] = []
        for url in dict.fromkeys(normalize_base_url(u) for u in server.base_url):
            client = openai.AsyncOpenAI(base_url=url, api_key=key, timeout=self.timeout, max_retries=self.max_retries)
            try:
                models = {m.id: m.to_dict() for m in self._run(client.with_options(max_retries=0, timeout=min(self.timeout, START_TIMEOUT)).models.list()).data}
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise EngineError(f"{url}: the server refused the request (HTTP {exc.status_code}); check the key in --api-key-env") from None
            except openai.APIError as exc:
                problems.append(self._describe(url, exc, tries=1))
                continue
            if not models:
                problems.append(f"{url}/models lists no model")
            else:
                served.append(models)
                self.replicas.append(_Replica(url, client, asyncio.Semaphore(max(1, server.concurrency))))
        if not self.replicas:
            raise EngineError(f"no OpenAI-compatible server answered: {'; '.join(problems)}. Start one (vllm serve MODEL) or fix --base-url")
        self.model, folder = self._choose_model(opts.model, served[0])
        for replica, models in list(zip(self.replicas, served))[1:]:
            if self.model not in models:
                problems.append(f"{replica.url} does not serve {self.model} (it serves {', '.join(models)})")
                self.replicas.remove(replica)
        for problem in problems:
            print(f"cai: warning: {problem}; going on with the other servers", file=sys.stderr)
        length = served[0][self.model].get("max_model_len")
        self._max_model_len = length if isinstance(length, int) and length > 0 else None
        self._tokenizer_folder = folder
        self._tokenizer: Any = None  # loaded on first use
        self._label_reads: bool | None = None  # does the server take vLLM's logprob_token_ids? Asked once.

    def _choose_model(self, wanted: str | None, served: dict[str, dict]) -> tuple[str, Path | None]:
        """The served model id to request, and a local folder holding its tokenizer (or None)."""
        ids = list(served)
        if wanted is None or wanted in served:
            return wanted or ids[0], _tokenizer_folder(wanted or ids[0])
        folder = _tokenizer_folder(wanted)
        # vLLM serves a folder under the path it was given, which may be spelled differently here.
        same = [i for i in ids if folder and _tokenizer_folder(i) and Path(i).resolve() == folder.resolve()]
        if folder and (same or len(ids) == 1):
            return (same or ids)[0], folder
        raise EngineError(f"--model {wanted}: not served at {self.replicas[0].url}; it serves: {', '.join(ids)}")

    # ---- the interface ----------------------------------------------------------------------------

    @property
    def max_context(self) -> int | None:
        # Only where prompts can be counted here; otherwise the server rejects overlong rows itself (error rows).
        return self._max_model_len if self._tokenizer_folder else None

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        return render_with_tokenizer(self._tokenizer_or_fail("renders chats for option scoring with"), conversation, add_generation_prompt)

    def count_tokens(self, conversation: Conversation) -> int:
        tok = self._tokenizer_or_fail("counts prompt tokens with")
        return len(tok(render_with_tokenizer(tok, conversation), add_special_tokens=False)["input_ids"])

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        def request(messages: list[dict], seed: int) -> Callable:
            # One seed per request (the row's own): a row samples the same whatever else is in its batch.
            args = dict(model=self.model, messages=messages, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                        top_p=sampling.top_p, n=sampling.n, seed=seed, **({"stop": list(sampling.stop)} if sampling.stop else {}),
                        **{k: v for k, v in (("frequency_penalty", sampling.frequency_penalty), ("presence_penalty", sampling.presence_penalty)) if v})
            return lambda client: client.chat.completions.create(**args)

        messages = [[{"role": m["role"], "content": m["content"]} for m in c] for c in conversations]
        seeds = seeds_or_default(seeds, sampling, len(conversations))
        results = self._run_all([request(m, s) for m, s in zip(messages, seeds)], [[tuple(m.values()) for m in ms] for ms in messages])
        return [_completion(r, sampling.n) for r in results]

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """log P(option | prompt), prefill only: vLLM's logprob_token_ids for one-token options, else echoed prompt log-probs."""
        tok = self._tokenizer_or_fail("scores options with")
        split = [[option_token_ids(tok, p, o) for o in options] for p in prompts]
        one_token = all(len(ids) == 1 and context == pairs[0][0] for pairs in split for context, ids in pairs)
        if self._label_reads is not False and one_token:
            reads = [(pairs[0][0], [ids[0] for _, ids in pairs]) for pairs in split]
            probe = self._score_labels(reads[:1]) if self._label_reads is None else []
            self._label_reads = probe is not None
            if probe is not None:
                rest = self._score_labels(reads[len(probe) :])
                if rest is None:
                    raise EngineError("the server stopped returning the log-probs asked for with logprob_token_ids")
                return probe + rest
        # Echo: the prompt log-probs of prompt+option, one request per prompt holding all its options.
        batches = [[p + o for p, o in pairs] for pairs in split]
        results = self._run_all([self._completions(prompt=b, echo=True, logprobs=0) for b in batches], batches)
        return [_echo_scores(r, [(len(p), len(o)) for p, o in pairs]) for r, pairs in zip(results, split)]

    def close(self) -> None:
        if not self._loop.is_closed():
            for replica in self.replicas:
                self._run(replica.client.close())
            self._loop.close()

    # ---- requests --------------------------------------------------------------------------------

    def _completions(self, **args) -> Callable:
        # max_tokens=1 as not every server takes 0; the one sampled token is ignored.
        return lambda client: client.completions.create(model=self.model, max_tokens=1, temperature=0.0, **args)

    def _score_labels(self, reads: list[tuple[list[int], list[int]]]) -> list[list[float]] | None:
        """Each label token's log-prob at the next position; None where the server does not return them all."""
        extra = [{"logprob_token_ids": labels, "return_tokens_as_token_ids": True} for _, labels in reads]
        results = self._run_all([self._completions(prompt=ids, logprobs=1, extra_body=e) for (ids, _), e in zip(reads, extra)], [r[0] for r in reads])
        failed = next((r for r in results if isinstance(r, _Failed)), None)
        if failed is not None and self._label_reads:
            # The server took the parameter before: this is a lost request, not a server without the feature.
            raise EngineError(f"option scoring failed ({failed}); rerun the same command to resume")
        tops = [None if isinstance(r, _Failed) else (getattr(r.choices[0].logprobs, "top_logprobs", None) or [None])[0] for r in results]
        if not all(isinstance(top, dict) and all(f"token_id:{t}" in top for t in labels) for top, (_, labels) in zip(tops, reads)):
            return None  # a server without logprob_token_ids ignores or refuses it
        return [[float(top[f"token_id:{t}"]) for t in labels] for top, (_, labels) in zip(tops, reads)]  # type: ignore[index]

    def _run(self, coroutine):
        return self._loop.run_until_complete(coroutine)

    def _run_all(self, requests: list[Callable], keys: list) -> list:
        """Every request at once (bounded per server), sent in order of `keys` so requests sharing a prefix reach a
        server together and hit its prefix cache; results come back in the order given."""
        order = sorted(range(len(requests)), key=lambda i: keys[i])
        done = self._run(_gather([self._send(requests[i]) for i in order]))
        return [result for _, result in sorted(zip(order, done), key=lambda pair: pair[0])]

    async def _send(self, request: Callable):
        """One request on the least-loaded server, the SDK retrying; a lost server hands it to the next one."""
        tried: list[_Replica] = []
        while True:
            now = time.monotonic()
            replica = min((r for r in self.replicas if r not in tried), key=lambda r: (r.down_until > now, r.load))
            replica.load += 1
            try:
                async with replica.slots:
                    return await request(replica.client)
            except self._openai.APIError as exc:
                tried.append(replica)
                if not isinstance(exc, self._openai.APIConnectionError) or len(tried) == len(self.replicas):
                    return self._describe(replica.url, exc, self.max_retries + 1)
                replica.down_until = now + DOWN_FOR
            finally:
                replica.load -= 1

    def _describe(self, url: str, exc: Exception, tries: int) -> _Failed:
        openai, code = self._openai, getattr(exc, "status_code", None)
        retried = tries > 1 and (code is None or code in (408, 409, 429) or code >= 500)  # what the SDK retries
        what = f"no answer within {self.timeout:.0f}s" if isinstance(exc, openai.APITimeoutError) else str(exc)
        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            cause = " ".join(str(exc.__cause__ or exc).split())[:200]
            what = "connection refused" if "refused" in cause.lower() else f"connection lost ({cause})"
        elif isinstance(exc, openai.APIStatusError):
            body = exc.body.get("message", exc.body) if isinstance(exc.body, dict) else exc.body
            what = f"HTTP {code} ({' '.join(str(body or exc.message).split())[:300]})"
        return _Failed(f"{f'gave up after {tries} attempts: ' if retried else ''}{url}: {what}")

    def _tokenizer_or_fail(self, what: str):
        if self._tokenizer is None and self._tokenizer_folder is not None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self._tokenizer_folder))
            except (OSError, ValueError) as exc:
                raise EngineError(f"{self._tokenizer_folder}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from exc
        if self._tokenizer is None:
            raise EngineError(f"the openai engine {what} the model's tokenizer, but the served model {self.model!r} is not a "
                              "local folder here; pass --model with a local folder of the same model")
        return self._tokenizer


async def _gather(coroutines: list) -> list:
    return await asyncio.gather(*coroutines)


def _completion(result, n: int) -> Completion:
    if isinstance(result, _Failed):
        return Completion([], error=result)
    choices = sorted(result.choices, key=lambda c: c.index)
    if len(choices) < n:
        return Completion([], error=f"the server returned {len(choices)} of the {n} replies asked for (--n)")
    usage = result.usage
    return Completion(
        [c.message.content or "" for c in choices[:n]],
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        finish_reasons=["length" if getattr(c, "finish_reason", None) == "length" else "stop" for c in choices[:n]],
        cached_tokens=getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0,
    )


def _echo_scores(result, plan: list[tuple[int, int]]) -> list[float]:
    if isinstance(result, _Failed):
        raise EngineError(f"option scoring failed ({result}); it needs /v1/completions with echo and logprobs (vLLM's server has them): "
                          "rerun the same command to resume, or score with --engine vllm or transformers")
    logprobs = [getattr(c.logprobs, "token_logprobs", None) or [] for c in sorted(result.choices, key=lambda c: c.index)]
    picked = [values[start : start + length] for values, (start, length) in zip(logprobs, plan)]
    if len(picked) < len(plan) or any(len(p) < length or None in p for p, (_, length) in zip(picked, plan)):
        raise EngineError("the server returns no prompt log-probs for every option (echo with logprobs, batched prompts) at /v1/completions, "
                          "which option scoring needs (vLLM's server has them); or score with --engine vllm or transformers")
    return [float(sum(p)) for p in picked]
