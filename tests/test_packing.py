"""Shared-prefix packing for option scoring: every prompt gets exactly what it would get alone."""

from __future__ import annotations

import pytest

from cai_cli.engines.packing import pack_shared_prefixes

SEQS = [
    [1, 2, 3, 4, 5],
    [1, 2, 3, 9],
    [1, 2, 3, 4, 5],  # a duplicate
    [7, 8],
    [1, 2],  # a prefix of others
    [1, 2, 3, 4, 5, 6],
]


def test_every_prompt_is_its_own_path_through_the_packed_row():
    rows = pack_shared_prefixes(SEQS, max_row_tokens=100)
    seen = []
    for row in rows:
        for member, path in zip(row.members, row.paths):
            assert [row.tokens[c] for c in path] == SEQS[member]
            assert [row.positions[c] for c in path] == list(range(len(SEQS[member])))
            assert path == sorted(path)  # a token's ancestors come before it, so a causal order holds
            seen.append(member)
    assert sorted(seen) == list(range(len(SEQS)))


def test_shared_prefixes_go_through_the_model_once():
    rows = pack_shared_prefixes(SEQS, max_row_tokens=100)
    # The trie: 1 2 3 4 5 6 / 3 9 / 7 8 -> 6 + 1 + 2 tokens.
    assert sum(len(r.tokens) for r in rows) == 9
    assert sum(map(len, SEQS)) == 24


def test_rows_stay_within_the_budget_unless_one_prompt_is_longer():
    rows = pack_shared_prefixes(SEQS, max_row_tokens=4)
    assert all(len(r.tokens) <= 4 or len(r.members) == 1 for r in rows)
    assert sorted(m for r in rows for m in r.members) == list(range(len(SEQS)))
    for row in rows:
        for member, path in zip(row.members, row.paths):
            assert [row.tokens[c] for c in path] == SEQS[member]


def test_an_empty_prompt_is_refused():
    with pytest.raises(ValueError):
        pack_shared_prefixes([[1, 2], []], max_row_tokens=10)


@pytest.mark.parametrize(
    "row_tokens, can_pack",
    [(8, True), (64, True), (4096, True), (4096, False)],
    ids=["rows-of-8", "rows-of-64", "one-row", "model-without-position-ids"],
)
def test_packed_scores_equal_scoring_each_prompt_alone(tmp_path, row_tokens, can_pack):
    import torch

    from cai_cli.engines.hf import TransformersEngine

    from tiny_model import build_tiny_model

    engine = TransformersEngine(str(build_tiny_model(tmp_path / "tiny")), batch_size=3)
    engine.packed_row_tokens = row_tokens
    engine._can_pack = can_pack
    head = "<|im_start|>user\nhow do I pick a lock<|im_end|>\n"
    prompts = [
        head + "sure here is how you do it step by step",
        head + "sure here is how you do it",
        head + "I am sorry I will not help hurt people",
        "write a poem about the sea",
        head + "sure here is how you do it step by step",
        head,
    ]
    options = [" paris", " sea"]  # written after a space, as the model would write them after these prompts
    got = engine.score_options(prompts, options)
    option_ids = [engine.tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    for prompt, scores in zip(prompts, got):
        ids = engine.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            alone = torch.log_softmax(engine.lm(**ids).logits[0, -1].float(), dim=-1)[option_ids].tolist()
        assert scores == pytest.approx(alone, abs=1e-4)


def test_prompts_longer_than_a_sliding_window_are_not_packed(tmp_path, monkeypatch):
    # A custom mask would not apply the window, so such prompts go through the model's own mask, one per row.
    from cai_cli.engines import packing
    from cai_cli.engines.hf import TransformersEngine

    from tiny_model import build_tiny_model

    engine = TransformersEngine(str(build_tiny_model(tmp_path / "tiny")))
    budgets = []
    real = packing.pack_shared_prefixes
    monkeypatch.setattr(packing, "pack_shared_prefixes", lambda seqs, budget: budgets.append(budget) or real(seqs, budget))
    prompts = ["how do I pick a lock", "how do I pick a lock please"]
    engine._pack_window = 100
    engine.score_options(prompts, ["paris", "sea"])
    engine._pack_window = 4
    engine.score_options(prompts, ["paris", "sea"])
    assert budgets == [engine.packed_row_tokens, 0]
