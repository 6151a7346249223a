"""Attention that reads a batch's shared prefix once (cascade attention), for the transformers engine.

Every row of a critique or revision batch starts with the same ~1,500 tokens (system prompt and worked
examples). Copying their keys/values into every row of the batch cache makes each decode step read them
once per row: at 32 rows that is ~2 GB of memory traffic per token on the embedded model, more than the
model's own weights. Here the prefix is stored once (batch 1) and all rows' queries of one key/value head
meet its keys in one matrix product (a decode step); each row's own keys (its prompt suffix and new
tokens) are attended per row as usual, and the two softmaxes are merged through a common maximum, which
is exact. A prefill (many queries per row) is compute-bound instead: there the prefix is copied beside
each row's keys for the one call and torch's fused attention runs.

Registered with transformers as an attention implementation that behaves as "sdpa" unless a forward call
passes `shared_prefix` (per layer (keys, values), batch 1) and a 4-D boolean mask over the rows' own tokens.
"""

from __future__ import annotations

from typing import Any

NAME = "cai_shared_prefix"

# A prefill copies the prefix's keys/values next to each row's own (see _prefill): rows go in chunks whose
# copies stay under this many elements (512 MB in float32), which matters only for big batches of long prefixes.
COPY_ELEMENTS = 1 << 27


def register() -> str:
    """Make NAME a valid attn_implementation (idempotent); masks built for it are sdpa's."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


def shared_prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, shared_prefix=None, **kwargs: Any):
    """transformers' attention signature: query (B, Hq, Q, D), key/value (B, Hkv, L, D), returns ((B, Q, Hq, D), None).

    With shared_prefix, attention_mask is (B, 1, Q, L) booleans over the rows' own keys (True: visible);
    every query sees the whole prefix.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if kwargs.get("softcap") or kwargs.get("s_aux") is not None:
        # The engine turns this attention on only for models without either (see TransformersEngine).
        raise NotImplementedError("shared-prefix attention does not apply logit soft-capping or attention sinks")
    prefix_keys, prefix_values = shared_prefix[module.layer_idx]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if query.shape[2] == 1:
        return _decode(query, key, value, attention_mask, prefix_keys, prefix_values, scale), None
    return _prefill(query, key, value, attention_mask, prefix_keys, prefix_values, scale), None


def _prefill(query, key, value, own_mask, prefix_keys, prefix_values, scale):
    """Many queries per row (the rows' own prompt tokens): compute-bound, so the prefix is copied next to each
    row's keys and torch's fused attention runs (it never holds the scores), a chunk of rows at a time."""
    import torch

    rows, kv_heads, own, dim = key.shape
    prefix = prefix_keys.shape[-2]
    step = max(1, COPY_ELEMENTS // (kv_heads * (prefix + own) * dim))
    parts = []
    for r in range(0, rows, step):
        n = min(step, rows - r)
        keys = torch.cat([prefix_keys.expand(n, -1, -1, -1), key[r : r + n]], dim=2)
        values = torch.cat([prefix_values.expand(n, -1, -1, -1), value[r : r + n]], dim=2)
        mask = own_mask[r : r + n]
        mask = torch.cat([mask.new_ones((n, 1, mask.shape[2], prefix)), mask], dim=-1)
        out = torch.nn.functional.scaled_dot_product_attention(query[r : r + n], keys, values, attn_mask=mask, scale=scale, enable_gqa=True)
        parts.append(out.transpose(1, 2))
    return torch.cat(parts).contiguous()


def _decode(query, key, value, own_mask, prefix_keys, prefix_values, scale):
    """One query per row: memory-bound, so the prefix is read once for all rows, never copied."""
    rows, query_heads, queries, dim = query.shape
    kv_heads, own = key.shape[1], key.shape[-2]
    group = query_heads // kv_heads  # query head h reads key/value head h // group
    # Own keys in the cache's layout, (B, Hkv, group*Q, L): batched products with no copies of the cache.
    q = query.reshape(rows, kv_heads, group * queries, dim)
    own_scores = (q @ key.transpose(-1, -2)).float().mul_(scale)
    visible = own_mask.expand(rows, group, queries, own).reshape(rows, 1, group * queries, own)
    own_scores.masked_fill_(~visible, float("-inf"))
    # The prefix: a key/value head's queries from every row side by side, (Hkv, B*group*Q, P): one product.
    q_by_head = q.transpose(0, 1).reshape(kv_heads, rows * group * queries, dim)
    prefix_scores = (q_by_head @ prefix_keys[0].transpose(-1, -2)).float().mul_(scale)
    prefix_top = prefix_scores.amax(-1, keepdim=True)  # (Hkv, B*group*Q, 1)
    # Every query sees the whole prefix, so the maximum is finite even where a (padding) query sees no own key.
    top = prefix_top.view(kv_heads, rows, group * queries, 1).transpose(0, 1).maximum(own_scores.amax(-1, keepdim=True))
    top_by_head = top.transpose(0, 1).reshape(kv_heads, rows * group * queries, 1)
    prefix_weights = prefix_scores.sub_(top_by_head).exp_()
    own_weights = own_scores.sub_(top).exp_()
    total = own_weights.sum(-1, keepdim=True) + prefix_weights.sum(-1, keepdim=True).view(kv_heads, rows, group * queries, 1).transpose(0, 1)
    dtype = value.dtype
    from_prefix = (prefix_weights.to(dtype) @ prefix_values[0]).view(kv_heads, rows, group * queries, dim).transpose(0, 1)
    out = (own_weights.to(dtype) @ value).add_(from_prefix).div_(total.to(dtype))
    # (B, Hkv, group, Q, D) -> (B, Q, Hq, D), the layout transformers' attention functions return.
    return out.view(rows, query_heads, queries, dim).transpose(1, 2).contiguous()
