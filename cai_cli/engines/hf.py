"""The transformers back end: batched decoding (per-row seeds, shared-prefix reuse) and packed option scoring, on CPU or GPU."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ..errors import ModelError
from .base import Completion, Conversation, Dtype, Sampling, render_with_tokenizer, seeds_or_default
from .hf_scoring import OptionScoring
from .packing import common_prefix


def pick_dtype(torch, device: str, requested: Dtype | str = Dtype.auto):
    if Dtype(requested) is not Dtype.auto:
        return getattr(torch, Dtype(requested).value)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Without native bfloat16 (most laptop CPUs) reduced precision is several times slower.
    return torch.float32


class TransformersEngine(OptionScoring):
    name = "transformers"

    def __init__(
        self, model: str, *, batch_size: int = 16, dtype: str = "auto", device: str | None = None, prefix_reuse: bool = True
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.model = model
        self.batch_size = max(1, batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = pick_dtype(torch, self.device, dtype)
        try:
            # Typed Any: transformers' own annotations on these Auto classes are looser than what they return.
            self.tokenizer: Any = AutoTokenizer.from_pretrained(model)
            self.lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model}: cannot load ({str(exc).splitlines()[0]})") from exc
        self.lm.to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to's wrapper for models, not devices
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self._eos_ids = self._stop_token_ids()
        config = self.lm.config
        # Models that scale or cap their logits after the projection need the full forward to do it.
        self._plain_head = not any(getattr(config, a, None) for a in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        # Packing sets positions and a custom mask itself: models that take no position_ids (ALiBi) cannot be
        # told the positions, and a sliding window would not be applied to the custom mask.
        self._pack_window = getattr(config, "sliding_window", None) or None
        forward_params = inspect.signature(self.lm.forward).parameters
        self._can_pack = "position_ids" in forward_params
        self._one_logit = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        # Prefix reuse hands the model a cache built beforehand: only plain per-layer key/value caches take that.
        self.prefix_reuse = prefix_reuse
        self._plain_cache = _plain_dynamic_cache(config)
        self._kept_prefix: tuple[list[int], list] = ([], [])  # the last batch's shared prefix and its keys/values
        # Rows attend to the shared prefix stored once (engines/prefix_attention.py) where the model runs sdpa
        # attention with no logit soft-capping; otherwise the prefix is copied into every row's cache.
        self.shared_attention = self._use_shared_attention(config)

    def _use_shared_attention(self, config) -> bool:
        # Soft-capped logits (Gemma 2) and attention sinks (gpt-oss) are not computed by shared-prefix attention.
        if not (self._can_pack and self._plain_cache) or getattr(config, "attn_logit_softcapping", None):
            return False
        if getattr(config, "model_type", "") == "gpt_oss":
            return False
        if getattr(config, "_attn_implementation", None) != "sdpa":
            return False
        from .prefix_attention import register

        self.lm.set_attn_implementation(register())
        return True

    def _stop_token_ids(self) -> list[int]:
        ids = set()
        gen_eos = getattr(self.lm.generation_config, "eos_token_id", None)
        for value in (self.tokenizer.eos_token_id, gen_eos):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
        return sorted(ids)

    @property
    def max_context(self) -> int | None:
        value = getattr(self.lm.config, "max_position_embeddings", None)
        return int(value) if value else None

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        return render_with_tokenizer(self.tokenizer, conversation, add_generation_prompt)

    def count_tokens(self, conversation: Conversation) -> int:
        return len(self.tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        return self._continue([self.render_chat(c) for c in conversations], sampling, seeds)

    def complete(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        """Continue each text as it is, with no chat template: the judge's plain (paper) format with --cot."""
        return self._continue(list(prompts), sampling, seeds)

    def _continue(self, texts: list[str], sampling: Sampling, seeds: Sequence[int] | None) -> list[Completion]:
        row_seeds = seeds_or_default(seeds, sampling, len(texts))
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        results: list[Completion | None] = [None] * len(encoded)
        # Similar lengths share a batch, so little compute goes to padding; the order changes no row's text.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        per_batch = max(1, self.batch_size // max(1, sampling.n))
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            batch = self._generate([encoded[i] for i in idx], sampling, [row_seeds[i] for i in idx])
            for i, completion in zip(idx, batch):
                results[i] = completion
        return results  # type: ignore[return-value]

    def _reusable_prefix(self, prompts: list[list[int]], sampling: Sampling) -> int:
        """Tokens at the start of every prompt whose key/value cache can be computed once for the batch.

        Exact only where the model takes position ids (the suffixes sit after a gap of padding) and no
        sliding window cuts the sequence; at least one token per prompt stays out, to be run for its logits.
        """
        if not (self.prefix_reuse and self._can_pack and self._plain_cache):
            return 0
        longest = max(len(p) for p in prompts) + sampling.max_tokens
        if self._pack_window is not None and longest > self._pack_window:
            return 0
        shared = min(len(p) for p in prompts) - 1
        first = prompts[0]
        for p in prompts[1:]:
            shared = min(shared, common_prefix(first, p))
        return max(shared, 0)

    def _prefix_cache(self, prefix: list[int]):
        """Per layer (keys, values) of PREFIX, batch 1, reusing the kept cache for the part it shares.

        Returns (layers, tokens taken from the kept cache). The kept cache is replaced by this prefix's.
        """
        from transformers import DynamicCache

        kept_tokens, kept_layers = self._kept_prefix
        reuse = common_prefix(kept_tokens, prefix)
        if reuse == len(prefix):
            layers = [(k[:, :, :reuse], v[:, :, :reuse]) for k, v in kept_layers]
        else:
            cache = self._cache_from(kept_layers, reuse) if reuse else DynamicCache(config=self.lm.config)
            torch = self.torch
            ids = torch.tensor([prefix[reuse:]], device=self.device)
            positions = torch.arange(reuse, len(prefix), device=self.device)[None]
            with torch.inference_mode():
                out = self.lm(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True, **self._one_logit)
            layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        self._kept_prefix = (list(prefix), layers)
        return layers, reuse

    def _cache_from(self, layers, length: int):
        """A fresh batch-1 DynamicCache holding the first LENGTH tokens of LAYERS (views: nothing copied)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        cache_layers: list[Any] = list(cache.layers)  # plain key/value layers (checked by _plain_dynamic_cache)
        for layer, (k, v) in zip(cache_layers, layers):
            k, v = k[:, :, :length], v[:, :, :length]
            layer.lazy_initialization(k, v)
            # DynamicLayer.update concatenates into new tensors, so the kept prefix is never written to.
            layer.keys, layer.values = k, v
        return cache

    def _generate(self, prompts: list[list[int]], sampling: Sampling, seeds: list[int]) -> list[Completion]:
        """Decode a batch: [shared prefix, from the cache][left padding][each prompt's own tokens][new tokens].

        Positions come from the attention mask (the padding takes none), so a row's logits are the ones it
        would get alone; tokens are chosen per row by RowSampler, so its text depends on its own seed.
        """
        from .sampling import RowSampler, sample_seed

        torch = self.torch
        n = max(1, sampling.n)
        shared = self._reusable_prefix(prompts, sampling)
        reused, prefix_layers = 0, None
        if shared:
            prefix_layers, reused = self._prefix_cache(prompts[0][:shared])
        suffixes = [p[shared:] for p in prompts]
        width = max(len(s) for s in suffixes)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for b, s in enumerate(suffixes):
            input_ids[b, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[b, shared + width - len(s) :] = 1
        rows = [(b, k) for b in range(len(prompts)) for k in range(n)]
        pick = [b for b, _ in rows]
        input_ids, mask = input_ids[pick].to(self.device), mask[pick].to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        # With shared attention the cache holds each row's own tokens only; the prefix stays in prefix_layers.
        apart = bool(shared) and self.shared_attention
        extra: dict[str, Any] = {"shared_prefix": prefix_layers} if apart else {}
        cache = None  # the model builds its own, where its cache is not a plain one
        if self._plain_cache:
            from .kv_cache import batch_cache

            if apart:
                cache = batch_cache(self.lm.config, len(rows), width + sampling.max_tokens)
            else:
                cache = batch_cache(self.lm.config, len(rows), shared + width + sampling.max_tokens, prefix_layers)
        sampler = RowSampler(torch, self.device, [sample_seed(seeds[b], k) for b, k in rows], sampling.temperature, sampling.top_p,
                             sampling.frequency_penalty, sampling.presence_penalty)
        ends = set(self._eos_ids) | ({pad_id} if pad_id is not None else set())
        stop_window = max((len(s) for s in sampling.stop), default=0) + 4  # tokens: enough to hold any stop string
        produced: list[list[int]] = [[] for _ in rows]
        reasons = ["length"] * len(rows)
        done = [False] * len(rows)
        in_batch = list(range(len(rows)))  # the rows the model still runs, in batch order
        droppable = cache is not None
        step_ids, step_positions = input_ids, positions[:, shared:]
        with torch.inference_mode():
            for step in range(sampling.max_tokens):
                kwargs = {"position_ids": step_positions} if self._can_pack else {}
                step_mask = _own_mask(torch, mask[:, shared:], step_ids.shape[1]) if apart else mask
                out = self.lm(input_ids=step_ids, attention_mask=step_mask, past_key_values=cache, use_cache=True, **kwargs, **extra, **self._one_logit)
                cache = out.past_key_values
                tokens = sampler.pick(out.logits[:, -1].float()).tolist()
                for r, t in zip(in_batch, tokens):
                    if done[r]:
                        continue
                    if t in ends:
                        reasons[r], done[r] = "stop", True
                        continue
                    produced[r].append(t)
                    if sampling.stop and any(s in self.tokenizer.decode(produced[r][-stop_window:]) for s in sampling.stop):
                        reasons[r], done[r] = "stop", True
                live = [j for j, r in enumerate(in_batch) if not done[r]]
                if not live or step + 1 == sampling.max_tokens:
                    break
                if droppable and len(live) < len(in_batch):
                    # Finished rows leave the batch: the rest stop paying for them.
                    keep = torch.tensor(live, device=self.device)
                    cache.batch_select_indices(keep)
                    mask, step_positions = mask[keep], step_positions[keep]
                    sampler.keep(live)
                    in_batch = [in_batch[j] for j in live]
                    tokens = [tokens[j] for j in live]
                step_ids = torch.tensor(tokens, device=self.device)[:, None]
                step_positions = step_positions[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones((len(in_batch), 1))], dim=1)
        prompt_counts = [len(p) for p in prompts]
        completions = []
        for b, count in enumerate(prompt_counts):
            texts, why, made = [], [], 0
            for r in range(b * n, (b + 1) * n):
                text = self.tokenizer.decode(produced[r], skip_special_tokens=True)
                reply = _cut_at_stop(text, sampling.stop)
                texts.append(reply)
                why.append("stop" if reasons[r] == "stop" or reply != text else "length")
                made += len(produced[r])
            # The prefix was computed once for the batch: every row but the first got it from the cache.
            cached = shared if b else reused
            completions.append(Completion(texts, prompt_tokens=count, completion_tokens=made, finish_reasons=why, cached_tokens=cached))
        return completions

    def close(self) -> None:
        self.lm = None
        self._kept_prefix = ([], [])
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def _plain_dynamic_cache(config) -> bool:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=config).layers
    except (AttributeError, KeyError, TypeError, ValueError):  # not a plain key/value cache (state-space, hybrid)
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _own_mask(torch, own, queries: int):
    """(B, 1, Q, L) booleans for the last Q of L own tokens: each query sees the non-padding keys up to itself."""
    length = own.shape[1]
    causal = torch.ones((queries, length), dtype=torch.bool, device=own.device).tril(length - queries)
    return own.bool()[:, None, None, :] & causal[None, None]


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        pos = text.find(s)
        if pos >= 0:
            text = text[:pos]
    return text

