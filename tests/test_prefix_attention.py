"""Shared-prefix attention equals plain attention over [prefix, own keys], for decode steps and prefills."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


class Layer:
    layer_idx = 1
    num_key_value_groups = 3
    is_causal = True


@pytest.mark.parametrize(("rows", "queries", "own"), [(6, 1, 40), (4, 9, 12), (3, 1, 1)])
def test_matches_attention_over_the_prefix_copied_into_every_row(rows, queries, own):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from cai_cli.engines import prefix_attention

    torch.manual_seed(0)
    prefix = 50
    query = torch.randn(rows, 6, queries, 16)
    key, value = torch.randn(rows, 2, own, 16), torch.randn(rows, 2, own, 16)
    layers = [None, (torch.randn(1, 2, prefix, 16), torch.randn(1, 2, prefix, 16))]
    own_mask = torch.rand(rows, 1, queries, own) > 0.4
    own_mask[0, :, :, :] = False  # a padding query that sees none of its row's own keys: the prefix still holds it
    full_keys = torch.cat([layers[1][0].expand(rows, -1, -1, -1), key], dim=2)
    full_values = torch.cat([layers[1][1].expand(rows, -1, -1, -1), value], dim=2)
    full_mask = torch.cat([torch.ones(rows, 1, queries, prefix, dtype=torch.bool), own_mask], dim=-1)
    expected, _ = sdpa_attention_forward(Layer(), query, full_keys, full_values, full_mask)
    got, _ = prefix_attention.shared_prefix_attention(Layer(), query, key, value, own_mask, shared_prefix=layers)
    assert got.shape == expected.shape == (rows, queries, 6, 16)
    assert torch.allclose(got, expected, atol=1e-5)


def test_prefill_in_chunks_of_rows_gives_the_same_result(monkeypatch):
    from cai_cli.engines import prefix_attention

    torch.manual_seed(1)
    query, key, value = torch.randn(5, 6, 4, 16), torch.randn(5, 2, 4, 16), torch.randn(5, 2, 4, 16)
    layers = [None, (torch.randn(1, 2, 30, 16), torch.randn(1, 2, 30, 16))]
    mask = torch.ones(4, 4, dtype=torch.bool).tril().expand(5, 1, 4, 4)
    whole, _ = prefix_attention.shared_prefix_attention(Layer(), query, key, value, mask, shared_prefix=layers)
    monkeypatch.setattr(prefix_attention, "COPY_ELEMENTS", 1)  # one row per chunk
    chunked, _ = prefix_attention.shared_prefix_attention(Layer(), query, key, value, mask, shared_prefix=layers)
    assert torch.allclose(whole, chunked, atol=1e-6)
