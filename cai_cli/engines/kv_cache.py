"""A key/value cache for one decoded batch, written in place (imported by the transformers engine only when it decodes).

transformers' DynamicCache grows by concatenation: every decoded token copies the whole cache of
the batch, which for long prompts (critique and revision prompts with worked examples: ~1,500
tokens x 32 rows) costs more than the model's own work. The batch's final length is known
(prefix + prompt + --max-tokens), so each layer is allocated once and new keys are written into it.
"""

from __future__ import annotations

from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    _layer_type = None  # not registered as a default layer type
    # Set by lazy_initialization before any use (DynamicLayer declares them Optional).
    keys: Any
    values: Any

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states, value_states) -> None:
        rows, heads, _, dim = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_empty((rows, heads, self.capacity, dim))
        self.values = value_states.new_empty((rows, value_states.shape[1], self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"key/value cache full: {end} tokens, room for {self.capacity}")
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a batch cache is never cropped")

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]


def batch_cache(config, rows: int, capacity: int, prefix_layers=None) -> DynamicCache:
    """A cache for ROWS rows of up to CAPACITY tokens, holding PREFIX_LAYERS ((keys, values) per layer, batch 1) first."""
    cache = DynamicCache(config=config)
    layers = [PreallocatedLayer(capacity) for _ in cache.layers]
    cache.layers = list(layers)
    for layer, (keys, values) in zip(layers, prefix_layers or ()):
        layer.lazy_initialization(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
        layer.keys[:, :, : keys.shape[-2]] = keys
        layer.values[:, :, : values.shape[-2]] = values
        layer.length = keys.shape[-2]
    return cache
