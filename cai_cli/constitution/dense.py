"""Sentence embeddings for routing (`--ranker dense` and `hybrid`, routing.py): how close each unit (a passage, a hard
constraint, a list's principle) is in meaning to a conversation, where BM25 sees only the words they share.

The model is sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions; models.embedder_dir: shipped
inside a PyPI package, nothing downloaded at run time), run as sentence-transformers runs it: the last hidden states
mean-pooled over the attention mask, then L2-normalised, so a dot product is a cosine. It reads at most MAX_TOKENS
word pieces, about 200 words: a whole passage would be cut, and what is cut could never count.

What is embedded: each unit as pieces, its sentences (a list item is one; a longer stretch than PIECE_WORDS words is
cut into windows). A unit is as close to a conversation as its closest piece (`cai constitution route` shows that
piece), so every word of a passage counts. A conversation longer than QUERY_WORDS words is embedded in windows, and
a unit's similarity is the mean over the windows of its closest piece's cosine: each part of the conversation counts
once. On the labelled sets routing was tuned on (bench/bench_routing.py), sentences beat 60- and 150-word windows,
and sentences alone beat sentences after their heading path, which pulls every sentence of a section towards the
section's theme (bench/routing/README.md).

Cost: the pieces of a document are embedded once (the one-off cost; bench/routing/README.md) and kept, per process
(one Index per Router) and on disk in cai's cache folder (cache_dir()/routing/<hash>.npz, written through
cai_cli.output), keyed by the model and the pieces' texts, so a changed passage or passage budget is embedded afresh. A conversation is
one forward pass per window. The model runs on the CPU in float32, one conversation at a time, so a row's scores do
not depend on the batch it came in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (its sentence_bert_config.json)
PIECE_WORDS = 128  # a sentence longer than this is cut into windows (well under MAX_TOKENS word pieces)
QUERY_WORDS = 128
BATCH = 32
DECIMALS = 6  # cosines are rounded, so the last bits of a float sum do not reorder units

# Where a piece ends: after a sentence, at a blank line, and at a list item (whose marker is dropped). A single line
# break inside a paragraph is a Markdown soft wrap (assistant.md is wrapped at about 110 characters), not an end.
_LIST_MARKER = re.compile(r"(?:^|\n)[ \t]*(?:[-*+]|\d+[.)])[ \t]+")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n\s*\n")


def pieces(text: str) -> list[str]:
    """TEXT as the pieces it is embedded in: its sentences and list items (windows of PIECE_WORDS words where longer),
    each word once, in order."""
    out = []
    for sentence in _SENTENCE_END.split(_LIST_MARKER.sub("\n\n", text)):
        words = sentence.split()
        out += [" ".join(words[start:start + PIECE_WORDS]) for start in range(0, len(words), PIECE_WORDS)]
    return out or [""]


def windows(text: str) -> list[str]:
    """A conversation's text in windows of at most QUERY_WORDS words."""
    words = text.split()
    return [" ".join(words[i:i + QUERY_WORDS]) for i in range(0, len(words), QUERY_WORDS)] or [""]


def require(asked_by: str) -> None:
    """Stop with one line (before any work) where the model is neither cached nor installed."""
    from ..model_specs import embedder_available, embedder_missing

    if not embedder_available():
        raise embedder_missing(asked_by)


class Embedder:
    """A sentence-embedding model folder (BERT-like, as transformers' AutoModel loads it), mean-pooled and normalised."""

    def __init__(self, folder: str):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        """An (n, dim) float32 array of unit vectors, one per text. Texts are batched by length (less padding); the
        attention mask keeps padding out of every vector."""
        import numpy as np
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), BATCH):
                chunk = order[start:start + BATCH]
                batch = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[chunk] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


@lru_cache(maxsize=2)
def embedder(folder: str | None = None) -> Embedder:
    """The model of FOLDER (None: the shipped all-MiniLM-L6-v2), loaded once per process."""
    from ..model_specs import embedder_dir

    return Embedder(folder or str(embedder_dir("--ranker dense/hybrid")))


@dataclass(frozen=True)
class Similarity:
    """Per unit: its cosine with the conversation and its closest piece."""

    cosine: list[float]
    closest: list[str]


class Index:
    """The pieces of a list of units (each unit's pieces, in order), embedded once."""

    def __init__(self, unit_pieces: Sequence[Sequence[str]], model: Embedder):
        import numpy as np

        self.model = model
        self.pieces = [p for ps in unit_pieces for p in ps]
        self.starts = np.cumsum([0, *(len(ps) for ps in unit_pieces)])[:-1]
        self.vectors = self._load_or_embed()

    def _cache_path(self):
        from pathlib import Path

        from ..model_specs import cache_dir
        from ..rows import stable_hash

        folder = Path(self.model.folder).resolve()
        weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.glob("*.safetensors"))]
        return cache_dir() / "routing" / f"{stable_hash([str(folder), weights, self.pieces], 32)}.npz"

    def _load_or_embed(self):
        import time

        import numpy as np

        path = self._cache_path()
        dim = int(self.model.model.config.hidden_size)
        try:
            with np.load(path) as saved:
                vectors = saved["vectors"]
            if vectors.shape == (len(self.pieces), dim):
                return vectors
        except (OSError, KeyError, ValueError):
            pass
        started = time.perf_counter()
        vectors = self.model.embed(self.pieces)
        print(f"cai: embedded {len(self.pieces)} constitution pieces for routing in {time.perf_counter() - started:.1f}s "
              f"(kept in {path.parent})", file=sys.stderr)
        from ..output import write_npz

        try:
            write_npz(path, vectors=vectors)
        except OSError as exc:  # a cache that cannot be written costs the next run the same seconds, nothing else
            print(f"cai: could not keep the embeddings in {path} ({exc.strerror or exc})", file=sys.stderr)
        return vectors

    def similarity(self, text: str) -> Similarity:
        """Each unit's cosine with TEXT (windows: the mean of each window's best) and its closest piece."""
        import numpy as np

        query = self.model.embed(windows(text))  # (w, dim)
        sims = self.vectors @ query.T  # (pieces, w)
        best = np.maximum.reduceat(sims, self.starts, axis=0).mean(axis=1)  # (units,)
        mean = sims.mean(axis=1)
        ends = [*self.starts[1:], len(self.pieces)]
        closest = [self.pieces[s + int(np.argmax(mean[s:e]))] for s, e in zip(self.starts, ends)]
        return Similarity([round(float(x), DECIMALS) for x in best], closest)
