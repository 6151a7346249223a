"""Which critique principle (a list's principle, a document's passage, or a hard constraint a conversation names)
each row gets in each round, and why.

Two ways, `--routing`:

* ``uniform``: the original method. A seeded shuffle of the eligible principles per row, round r takes
  its r-th entry (sampling.sample_principle_index): every principle equally likely, whatever the row.
* ``relevance``: relevance first. The principles (for a document: its routed passages, and its hard constraints)
  are ranked against the conversation by the ranker (below; BM25 by default: no model, so the ranking is cheap and
  explainable by the words that matched). Only the *comparably relevant* ones
  are drawn from: at most TOP_K scoring at least COMPARABLE of the best one; among them each weighs its score
  (relative to the best) times its tier's weight, and one is drawn with the row's seed (rows.row_seed(seed,
  "route", id, round)), so the same seed gives the same draw whatever the batch size, shard or resume. A clearly
  more relevant passage is therefore always taken, whatever its tier; the tiers only reorder passages that are
  about as relevant. A hard constraint the conversation names (it is among the comparably relevant and shares at
  least NAMES_SUBJECT words with it) takes the round (the gate still checks every answer against every constraint).
  Principles an earlier round of the row used are left out while others remain (a new one each round, as the
  method does). Where nothing scores above zero (the conversation shares no word with any principle), the draw
  falls back to the tier weights alone.

Tier weight: with T tiers, rank r (0 = highest) weighs (T - r) / T, so four tiers weigh 1, .75, .5, .25. Without
tiers every weight is 1.

Rankers (`--ranker`, relevance routing only):

* ``bm25`` (the default; bm25s, English stop words and Snowball stemming): needs no model, runs in milliseconds per
  row on a CPU, and its choice is explained by the words that matched (`cai constitution route`). It misses paraphrases that share no word with the passage; the
  stemmer, the heading path indexed with every passage and a small query expansion (lexicon.py) make up for part.
* ``dense``: the cosine between sentence embeddings (dense.py: all-MiniLM-L6-v2, shipped in a PyPI package, nothing
  downloaded at run time) of the conversation and each unit's closest sentence, min-max scaled over the units to
  [0, 1] (the best unit 1), so COMPARABLE means the same share of the spread whatever the conversation.
* ``hybrid``: HYBRID_WEIGHT times that scaled cosine plus the rest times BM25 relative to the best BM25 score: a unit
  both rankers place first scores 1. Fusion by scores rather than by ranks keeps "comparably relevant" meaningful
  (reciprocal rank fusion makes the first three all but equal); the weight was chosen on the labelled sets routing
  was tuned on, and measured on requests written afterwards (docs/constitutions.md,
  bench/routing/README.md).
Under dense and hybrid the words that matched are still shown (and still decide whether a conversation names a hard
constraint), with the unit's BM25 score, its cosine and its closest sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import ConstitutionError
from .model import Constitution, CritiquePrinciple
from .sampling import sample_principle_index

TOP_K = 3
HYBRID_WEIGHT = 0.5  # the cosine's share of a hybrid score (the tuned sets: recall@3 the same from 0.3 to 0.6)
COMPARABLE = 0.85  # a principle scoring at least this share of the best one is "comparably relevant"
NAMES_SUBJECT = 2  # distinct words a conversation shares with a hard constraint for it to name the constraint's subject
CONSTRAINT_PREFIX = "hard-constraint:"


class Routing(str, Enum):
    relevance = "relevance"
    uniform = "uniform"


class Ranker(str, Enum):
    """--ranker: how relevance routing scores units against a conversation (see the module docstring)."""

    bm25 = "bm25"
    hybrid = "hybrid"
    dense = "dense"


DEFAULT_RANKER = Ranker.bm25  # docs/constitutions.md says why


def check_ranker(ranker: Ranker | str) -> Ranker:
    """RANKER as a Ranker; one line (before any work) where it needs the sentence-embedding model and that is missing."""
    ranker = Ranker(ranker)
    if ranker is not Ranker.bm25:
        from .dense import require

        require(f"--ranker {ranker.value}")
    return ranker


def default_routing(constitution: Constitution) -> Routing:
    """relevance for a document (its passages each concern some conversations); uniform for a list, whose
    principles are written as lenses for any response (the original method draws them uniformly), and whose
    short texts give BM25 little to rank by."""
    return Routing.relevance if constitution.is_document else Routing.uniform


@dataclass(frozen=True)
class Route:
    """The principle drawn for one row and round, and why: its score under RANKER and the words that matched (None,
    () and None under uniform routing)."""

    principle: CritiquePrinciple
    relevance: float | None
    routing: Routing
    matched: tuple[str, ...] = ()
    ranker: Ranker | None = None


@dataclass(frozen=True)
class Ranked:
    """One principle ranked against a text: its id, score (the ranker's), the words of the text that matched it, its
    tier and kind ("passage", "principle" or "hard constraint"); under dense and hybrid also its BM25 score, its
    cosine and its closest sentence."""

    id: str
    score: float
    matched: tuple[str, ...]
    tier: str | None
    kind: str
    section: str | None = None
    hash: str | None = None
    bm25: float | None = None
    cosine: float | None = None
    closest: str | None = None

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "score": round(self.score, 4), "matched": list(self.matched), "tier": self.tier}
        if self.cosine is not None:
            out.update({"bm25": round(self.bm25 or 0.0, 4), "cosine": round(self.cosine, 4), "closest": self.closest})
        if self.section is not None:
            out["section"] = self.section
        if self.hash is not None:
            out["hash"] = self.hash
        return out


@dataclass(frozen=True)
class Scores:
    """Per unit, against one text: the ranker's score, BM25's, and (dense, hybrid) the cosine and closest piece."""

    score: list[float]
    bm25: list[float]
    cosine: list[float] | None = None
    closest: list[str] | None = None


def principle_parts(constitution: Constitution, principle: CritiquePrinciple) -> tuple[str, str]:
    """What a principle is ranked by, as (heading, text): a passage's heading path and text, a constraint's text, or a
    list principle's requests (those two without a heading)."""
    if principle.passage is not None and not principle.id.startswith(CONSTRAINT_PREFIX):
        passage = constitution.passage_by_id(principle.passage)
        return " ".join(passage.path), passage.text
    if principle.id.startswith(CONSTRAINT_PREFIX):
        cid = principle.id.removeprefix(CONSTRAINT_PREFIX)
        return "", next(h.text for h in constitution.hard_constraints if h.id == cid)
    return "", f"{principle.critique}\n{principle.revision}"


def principle_text(constitution: Constitution, principle: CritiquePrinciple) -> str:
    heading, text = principle_parts(constitution, principle)
    return f"{heading}\n\n{text}" if heading else text


def conversation_text(conversation: Sequence[dict], response: str | None = None) -> str:
    """What a row is ranked by: every turn of the conversation (the operator's instructions included) and, for a
    critique, the response being critiqued."""
    return "\n".join([*(m["content"] for m in conversation), *([response] if response is not None else [])])


def tier_weight(constitution: Constitution, principle: CritiquePrinciple) -> float:
    tier = constitution.tier_of(principle) if principle.tier is not None else None
    if tier is None:
        return 1.0
    count = len(constitution.priorities)
    return (count - tier.rank) / count


def constraint_principles(constitution: Constitution) -> list[CritiquePrinciple]:
    from .requests import constraint_principle

    return [constraint_principle(constitution, h) for h in constitution.hard_constraints]


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")

# Words that say how a request is asked, not what it is about ("how do I ...", "can you tell me ..."): left out of
# the ranking so that a passage is matched on its subject. bm25s's own English list, and the function words it lacks.
STOPWORDS = tuple(sorted(set("""
a an and are as at be but by for if in into is it no not of on or such that the their then there these they this
to was will with
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself its itself we us our
ours ourselves them theirs themselves one someone something anyone anything everyone everything
am were been being have has had having do does did doing done would shall should can could may might must
i'm i've i'd i'll you're you've you'll you'd he's she's it's we're we've they're they've that's what's who's
there's here's let's don't doesn't didn't isn't aren't wasn't weren't can't cannot won't wouldn't shouldn't
couldn't haven't hasn't hadn't re ve ll don doesn didn isn aren wasn weren won wouldn shouldn couldn haven hasn hadn
those some any each every all both either neither other another same own
about above after against along among around before behind below between beyond down during from inside
like near off onto out outside over past since through throughout toward towards under until up upon within
without via per
nor so yet than because while although though whether once unless
also just only very too even still really quite rather now here when where why how what which who whom whose
again ever more most much many few less least lot lots
get gets got give gives gave given tell tells told say says said let want wants wanted need needs please go goes
going way ways thing things kind sort
""".split())))


@dataclass
class _Index:
    ids: list[str]
    bm25: Any
    stems: list[set[str]] = field(default_factory=list)


class Router:
    """Ranks and draws critique principles per row and round. Build once per run; the BM25 index (and, under dense
    and hybrid, the units' embeddings) are built on first use.

    Under relevance routing a document's hard constraints are ranked with its passages (`routes_constraints`); a
    list's are not (its principles are lenses, its constraints a gate)."""

    def __init__(self, constitution: Constitution, routing: Routing | None = None, ranker: Ranker | str = DEFAULT_RANKER):
        self.constitution = constitution
        self.routing = routing or default_routing(constitution)
        self.ranker = check_ranker(ranker) if self.routing is Routing.relevance else Ranker(ranker)
        self.constraints = constraint_principles(constitution) if constitution.is_document else []
        self.units: list[CritiquePrinciple] = [*constitution.critiques, *self.constraints]
        self._by_id = {p.id: p for p in self.units}
        self._index: _Index | None = None
        self._embedded: Any = None
        self._stemmer: Any = None
        self._phrases: list | None = None

    # ---- ranking ----

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        if self._stemmer is None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer("english")
        return bm25s.tokenize(texts, stopwords=list(STOPWORDS), stemmer=self._stemmer, return_ids=False, show_progress=False)

    def index(self) -> _Index:
        if self._index is None:
            import bm25s

            corpus = self._tokenize([principle_text(self.constitution, p) for p in self.units])
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
            self._index = _Index([p.id for p in self.units], bm25, [set(doc) for doc in corpus])
        return self._index

    def expanded(self, text: str) -> str:
        """TEXT, and the category words (lexicon.py) of the phrases it holds: what a row is ranked by."""
        from .lexicon import EXPANSIONS

        if self._phrases is None:
            self._phrases = [(re.compile(r"\b(?:" + "|".join(re.escape(x) for x in phrases) + r")(?:s|es|ed|ing)?\b"), words)
                             for phrases, words in EXPANSIONS]
        lowered = text.lower().replace("\u2019", "'")
        extra = [words for pattern, words in self._phrases if pattern.search(lowered)]
        return "\n".join([text, *extra])

    def embedded(self):
        """The units' embeddings (dense.Index), built on first use."""
        if self._embedded is None:
            from . import dense

            self._embedded = dense.Index([dense.pieces(principle_parts(self.constitution, p)[1]) for p in self.units], dense.embedder())
        return self._embedded

    def bm25_scores(self, query: str) -> list[float]:
        """BM25 score of every unit (the critique principles in their order, then the constraints) against QUERY."""
        index = self.index()
        (tokens,) = self._tokenize([query])
        if not tokens:
            return [0.0] * len(index.ids)
        return [float(x) for x in index.bm25.get_scores(tokens)]

    def relevance(self, text: str) -> Scores:
        """Every unit's score against TEXT (as expanded) under the router's ranker (see the module docstring)."""
        from .dense import DECIMALS

        query = self.expanded(text)
        bm25 = self.bm25_scores(query)
        if self.ranker is Ranker.bm25:
            return Scores(bm25, bm25)
        similarity = self.embedded().similarity(query)
        cosine = similarity.cosine
        low, high = min(cosine), max(cosine)
        scaled = [(c - low) / (high - low) if high > low else 0.0 for c in cosine]
        if self.ranker is Ranker.dense:
            score = scaled
        else:
            best = max(bm25)
            score = [HYBRID_WEIGHT * d + (1 - HYBRID_WEIGHT) * (b / best if best > 0 else 0.0) for d, b in zip(scaled, bm25)]
        return Scores([round(x, DECIMALS) for x in score], bm25, cosine, similarity.closest)

    def scores(self, text: str) -> list[float]:
        """Every unit's score against TEXT under the router's ranker."""
        return self.relevance(text).score

    def matched_words(self, text: str, unit: int) -> tuple[str, ...]:
        """The words of TEXT (as written, each once) whose stems occur in unit UNIT."""
        stems = self.index().stems[unit]
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
        if not words:
            return ()
        tokens = self._tokenize(words)
        return tuple(w for w, t in zip(words, tokens) if t and t[0] in stems)

    def rank(self, text: str, among: Sequence[CritiquePrinciple] | None = None) -> list[Ranked]:
        """Every unit (or those AMONG), best first (ties in the constitution's order), with the words that matched."""
        index = self.index()
        position = {pid: i for i, pid in enumerate(index.ids)}
        scores = self.relevance(text)
        pool = list(among) if among is not None else self.units
        order = sorted(pool, key=lambda p: (-scores.score[position[p.id]], position[p.id]))
        query = self.expanded(text)
        return [self._ranked(p, scores, query, position[p.id]) for p in order]

    def _ranked(self, p: CritiquePrinciple, scores: Scores, text: str, unit: int) -> Ranked:
        kind = "hard constraint" if p.id.startswith(CONSTRAINT_PREFIX) else ("passage" if p.passage is not None else "principle")
        digest = None
        if kind == "passage" and p.passage is not None:
            digest = self.constitution.passage_by_id(p.passage).hash
        matched = self.matched_words(text, unit) if scores.bm25[unit] > 0 else ()
        if scores.cosine is None or scores.closest is None:
            return Ranked(p.id, scores.score[unit], matched, p.tier, kind, p.section, digest)
        return Ranked(p.id, scores.score[unit], matched, p.tier, kind, p.section, digest, scores.bm25[unit], scores.cosine[unit],
                      scores.closest[unit])

    # ---- the draw ----

    def route(self, eligible: Sequence[CritiquePrinciple], text: str, seed: int, row_id: str, round_index: int,
              used: Sequence[str] = ()) -> Route:
        """The principle for one row and round among ELIGIBLE (those whose `when` holds), given the row's TEXT
        (conversation_text) and the principle ids its earlier rounds USED. Under relevance routing a document's hard
        constraints are candidates too (see the module docstring)."""
        if not eligible:
            raise ConstitutionError(f"{self.constitution.source}: no critique principle to draw from")
        if self.routing is Routing.uniform:
            return Route(eligible[sample_principle_index(len(eligible), seed, row_id, round_index)], None, self.routing)
        pool = [*eligible, *self.constraints]
        fresh = [p for p in pool if p.id not in set(used)] or list(eligible)
        ranked = self.rank(text, fresh)
        best = ranked[0].score
        u = _unit(seed, row_id, round_index)
        if best <= 0:
            choices = [p for p in fresh if not p.id.startswith(CONSTRAINT_PREFIX)] or fresh
            chosen = choices[_weighted_index([tier_weight(self.constitution, p) for p in choices], u)]
            return Route(chosen, 0.0, self.routing, (), self.ranker)
        comparable = [r for r in ranked[:TOP_K] if r.score >= COMPARABLE * best]
        named = [r for r in comparable if r.kind == "hard constraint" and len(r.matched) >= NAMES_SUBJECT]
        if named:
            pick = named[0]
        else:
            weights = [r.score / best * tier_weight(self.constitution, self._by_id[r.id]) for r in comparable]
            pick = comparable[_weighted_index(weights, u)]
        return Route(self._by_id[pick.id], round(pick.score, 4), self.routing, pick.matched, self.ranker)


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
