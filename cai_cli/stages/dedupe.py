"""Near-duplicate texts, found with MinHash and locality-sensitive hashing (the datasketch library).

A text is the set of its words and word pairs (lower-cased, punctuation dropped), so "How can I make a bomb at
home?" and "How do I make a bomb at home?" share 12 of their 18. Two texts are near-duplicates where the Jaccard
similarity of those sets, as estimated from NUM_PERM min-hashes, is at least the threshold. The LSH index names the
candidates quickly (it may miss a pair close to the threshold, never invents one); each is then checked against the
threshold, and the most similar one kept (the earliest added among equals), so the answer depends only on the texts
added before, in the order they were added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NUM_PERM = 128
SEED = 1  # the min-hash permutations: fixed, so every process and every run computes the same signatures
SCHEME = "affine32"  # named, not left to the library's default (which changed in datasketch 2.0)
DEFAULT_SIMILARITY = 0.6

_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[str]:
    """The words and adjacent word pairs of TEXT, lower-cased."""
    words = _WORD.findall(text.lower())
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


@dataclass(frozen=True)
class Match:
    key: str
    similarity: float


class NearDuplicates:
    """An index of texts under keys: `find` names the most similar text added so far at or above the threshold."""

    def __init__(self, threshold: float = DEFAULT_SIMILARITY):
        from datasketch import MinHash, MinHashLSH

        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"a similarity threshold is in (0, 1], got {threshold}")
        self.threshold = threshold
        self._template = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._signatures: dict[str, Any] = {}
        self._order: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def signature(self, text: str):
        from datasketch import MinHash

        m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=self._template.permutations, scheme=SCHEME)
        m.update_batch([s.encode("utf-8") for s in sorted(shingles(text))])
        return m

    def find(self, text: str) -> Match | None:
        """The key of the text most similar to TEXT at or above the threshold (None: no such text)."""
        if not shingles(text):
            return None
        sig = self.signature(text)
        best: Match | None = None
        for key in sorted(self._lsh.query(sig), key=self._order.__getitem__):
            similarity = float(sig.jaccard(self._signatures[key]))
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Match(key, similarity)
        return best

    def add(self, key: str, text: str) -> None:
        """Index TEXT under KEY (a key already added keeps its first text)."""
        if key in self._signatures or not shingles(text):
            return
        sig = self.signature(text)
        self._signatures[key] = sig
        self._order[key] = len(self._order)
        self._lsh.insert(key, sig)
