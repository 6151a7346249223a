"""Batch-invariant token choice for the transformers engine: each row draws from its own generator.

Gumbel-max: argmax(log p + G), G ~ Gumbel(0, 1) drawn independently per token, is an exact sample
from p. Drawing G from a generator seeded by the row's own seed (one draw of the vocabulary per
step) makes a row's tokens depend on its seed and its own logits only: the same row samples the
same text alone, in a batch of 3 or of 32, on a resume or in another shard (up to float rounding
of padded batches, which moves a choice only when two tokens tie to within ~1e-6).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..rows import row_seed


def sample_seed(seed: int, k: int) -> int:
    """The seed of a conversation's k-th sample: its own seed for the first, so --n 1 and --n 3 agree on it."""
    return int(seed) if k == 0 else row_seed(seed, "sample", k)


class RowSampler:
    """Picks the next token of every row; rows can be dropped as they finish (`keep`)."""

    def __init__(self, torch, device: str, seeds: Sequence[int], temperature: float, top_p: float,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0):
        self.torch = torch
        self.temperature = temperature
        self.top_p = top_p
        self.frequency_penalty = frequency_penalty
        self.presence_penalty = presence_penalty
        self.counts = None  # [rows, vocab]: how often each row has produced each token (only with a penalty)
        self.generators = []
        if temperature > 0:
            for s in seeds:
                g = torch.Generator(device=device)
                g.manual_seed(int(s))
                self.generators.append(g)

    def keep(self, rows: Sequence[int]) -> None:
        if self.generators:
            self.generators = [self.generators[r] for r in rows]
        if self.counts is not None:
            self.counts = self.counts[list(rows)]

    def pick(self, logits):
        """One token per row from logits [rows, vocab] (float32)."""
        tokens = self._choose(self._penalised(logits))
        if self.counts is not None:
            self.counts[self.torch.arange(len(tokens), device=tokens.device), tokens] += 1
        return tokens

    def _penalised(self, logits):
        """The OpenAI penalties, on the row's own output so far: frequency (per repeat) and presence (once used)."""
        if not (self.frequency_penalty or self.presence_penalty):
            return logits
        if self.counts is None:
            self.counts = self.torch.zeros_like(logits)
        return logits - self.frequency_penalty * self.counts - self.presence_penalty * (self.counts > 0).float()

    def _choose(self, logits):
        torch = self.torch
        if self.temperature <= 0:
            return logits.argmax(dim=-1)
        scores = logits / self.temperature
        if self.top_p < 1.0:
            scores = top_p_filter(torch, scores, self.top_p)
        # Gumbel(0,1) = -log(E), E ~ Exp(1); one draw per row from that row's own generator.
        noise = torch.empty_like(scores)
        for r, g in enumerate(self.generators):
            noise[r].exponential_(generator=g)
        return (scores - noise.log_()).argmax(dim=-1)


def top_p_filter(torch, scores, top_p: float):
    """Keep, per row, the most likely tokens whose probability adds up to top_p (at least one); the rest -inf."""
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    probs = sorted_scores.softmax(dim=-1)
    # A token stays when the mass before it is below top_p, so the token crossing the threshold stays too.
    drop = (probs.cumsum(dim=-1) - probs) >= top_p
    drop[:, 0] = False
    sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
    return torch.empty_like(scores).scatter_(-1, order, sorted_scores)
