"""Which critique principle (a list's principle, or a document's section) each row gets in each round.

Two ways, `--routing`:

* ``uniform``: the original method. A seeded shuffle of the eligible principles per row, round r takes
  its r-th entry (sampling.sample_principle_index): every principle equally likely, whatever the row.
* ``relevance``: the principles are ranked against the conversation with BM25 (bm25s, English stop
  words and Snowball stemming; no model, so the ranking is deterministic and cheap). The draw keeps at
  most TOP_K principles scoring at least RELATIVE_FLOOR of the best one, weights each by its score
  (relative to the best) times its tier's weight, and draws one with the row's seed
  (rows.row_seed(seed, "route", id, round)), so the same seed gives the same draw whatever the batch
  size, shard or resume. Principles an earlier round of the row used are left out while others remain
  (a new principle each round, as the method does). Where nothing scores above zero (the conversation
  shares no word with any principle), the draw falls back to the tier weights alone.

Tier weight: with T tiers, rank r (0 = highest) weighs (T - r) / T, so four tiers weigh 1, .75, .5, .25:
a higher tier is drawn more often among equally relevant sections, but a clearly more relevant lower-tier
section still wins most draws. Without tiers every weight is 1.

BM25 rather than an embedding model: it needs no weights to download, runs in microseconds per row on
a CPU, and its choice can be explained (the words that matched). It misses paraphrases that share no
word; the stemmer and a constitution written in plain words make up for most of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import ConstitutionError
from .model import Constitution, CritiquePrinciple
from .sampling import sample_principle_index

TOP_K = 3
RELATIVE_FLOOR = 0.75


class Routing(str, Enum):
    relevance = "relevance"
    uniform = "uniform"


def default_routing(constitution: Constitution) -> Routing:
    """relevance for a document (its sections each concern some conversations); uniform for a list, whose
    principles are written as lenses for any response (the original method draws them uniformly), and whose
    short texts give BM25 little to rank by."""
    return Routing.relevance if constitution.is_document else Routing.uniform


@dataclass(frozen=True)
class Route:
    """The principle drawn for one row and round, and why: its BM25 score (None under uniform routing)."""

    principle: CritiquePrinciple
    relevance: float | None
    routing: Routing


def principle_text(constitution: Constitution, principle: CritiquePrinciple) -> str:
    """What a principle is ranked by: a section's heading path and full text, or a list principle's requests."""
    if principle.section is not None:
        section = constitution.section_by_id(principle.section)
        return f"{section.heading}\n\n{section.text}"
    return f"{principle.critique}\n{principle.revision}"


def conversation_text(conversation: Sequence[dict], response: str) -> str:
    """What a row is ranked by: every turn of the conversation (the operator's instructions included) and the
    response being critiqued."""
    return "\n".join([*(m["content"] for m in conversation), response])


def tier_weight(constitution: Constitution, principle: CritiquePrinciple) -> float:
    tier = constitution.tier_of(principle)
    if tier is None:
        return 1.0
    count = len(constitution.priorities)
    return (count - tier.rank) / count


class Router:
    """Draws a critique principle per row and round. Build once per run; the BM25 index is built on first use."""

    def __init__(self, constitution: Constitution, routing: Routing | None = None):
        self.constitution = constitution
        self.routing = routing or default_routing(constitution)
        self._index: Any = None
        self._stemmer: Any = None
        self._positions = {p.id: i for i, p in enumerate(constitution.critiques)}

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)

    def scores(self, text: str) -> list[float]:
        """BM25 score of every critique principle of the constitution (in its order) against TEXT."""
        if self._index is None:
            import bm25s
            import Stemmer

            self._stemmer = Stemmer.Stemmer("english")
            corpus = [principle_text(self.constitution, p) for p in self.constitution.critiques]
            index = bm25s.BM25()
            index.index(self._tokenize(corpus), show_progress=False)
            self._index = index
        (query,) = self._tokenize([text])
        if not query:
            return [0.0] * len(self.constitution.critiques)
        return [float(x) for x in self._index.get_scores(query)]

    def route(self, eligible: Sequence[CritiquePrinciple], text: str, seed: int, row_id: str, round_index: int,
              used: Sequence[str] = ()) -> Route:
        """The principle for one row and round among ELIGIBLE (those whose `when` holds), given the row's TEXT
        (conversation_text) and the principle ids its earlier rounds USED."""
        if not eligible:
            raise ConstitutionError(f"{self.constitution.source}: no critique principle to draw from")
        if self.routing is Routing.uniform:
            return Route(eligible[sample_principle_index(len(eligible), seed, row_id, round_index)], None, self.routing)
        fresh = [p for p in eligible if p.id not in set(used)] or list(eligible)
        all_scores = self.scores(text)
        scored = sorted(((all_scores[self._positions[p.id]], i, p) for i, p in enumerate(fresh)), key=lambda x: (-x[0], x[1]))
        best = scored[0][0]
        if best > 0:
            kept = [(score, p) for score, _, p in scored[:TOP_K] if score >= RELATIVE_FLOOR * best]
            weights = [score / best * tier_weight(self.constitution, p) for score, p in kept]
        else:
            kept = [(0.0, p) for p in fresh]
            weights = [tier_weight(self.constitution, p) for p in fresh]
        score, chosen = kept[_weighted_index(weights, _unit(seed, row_id, round_index))]
        return Route(chosen, round(score, 4), self.routing)


def _unit(seed: int, row_id: str, round_index: int) -> float:
    """A number in [0, 1) from the run seed, the row and the round alone."""
    from ..rows import row_seed

    return row_seed(seed, "route", row_id, round_index) / 2**32


def _weighted_index(weights: Sequence[float], u: float) -> int:
    total = sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w / total
        if u < acc:
            return i
    return len(weights) - 1
