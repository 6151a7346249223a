"""Shared-prefix packing: several prompts in one sequence, each common prefix computed once.

The judge's prompts repeat themselves: both orders of a comparison share the chat template,
the conversation and the principle's question; every comparison of one row shares the
conversation; and every prompt shares the template. Packing the token trie of a group of
prompts into one row (each token attends only to its own path from the root, and its position
is its depth) gives every prompt exactly the logits it would get alone, while the shared
tokens go through the model once.

Pure lists here; the engine turns a row into tensors (see `TransformersEngine._score_packed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class PackedRow:
    """One packed sequence: `tokens[c]` sits at position `positions[c]`."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)  # prompt indices, in packing order
    paths: list[list[int]] = field(default_factory=list)  # per member: the column of each of its tokens
    first_new: list[int] = field(default_factory=list)  # per member: the depth where its own columns start

    def ends(self) -> list[tuple[int, int]]:
        """(prompt index, column of its last token): where that prompt's next-token distribution is read."""
        return [(m, path[-1]) for m, path in zip(self.members, self.paths)]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def pack_shared_prefixes(seqs: Sequence[Sequence[int]], max_row_tokens: int) -> list[PackedRow]:
    """Rows of packed prompts, each row at most `max_row_tokens` long unless one prompt alone is longer.

    In sorted order a prompt's longest shared prefix with any earlier prompt is the one with its
    predecessor, so the trie of a run of sorted prompts is written by appending, for each prompt,
    only the tokens after that shared prefix. Empty prompts cannot be scored and are refused.
    """
    if any(len(s) == 0 for s in seqs):
        raise ValueError("an empty prompt has no last token to read a distribution from")
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    rows: list[PackedRow] = []
    row: PackedRow | None = None
    prev: Sequence[int] = ()
    prev_path: list[int] = []
    for i in order:
        seq = seqs[i]
        shared = common_prefix(prev, seq) if row is not None else 0
        if row is not None and len(row.tokens) + len(seq) - shared > max_row_tokens:
            row, shared = None, 0
        if row is None:
            row = PackedRow()
            rows.append(row)
        path = prev_path[:shared]
        for depth in range(shared, len(seq)):
            path.append(len(row.tokens))
            row.tokens.append(seq[depth])
            row.positions.append(depth)
        row.members.append(i)
        row.paths.append(path)
        row.first_new.append(shared)
        prev, prev_path = seq, path
    return rows
