"""Pure numbers, the ground floor of every statistic cai reports: rates with Wilson intervals, means with
bootstrap intervals, and Bradley–Terry ratings on the Elo scale with bootstrap intervals.

A rate k/n gets the Wilson score interval (scipy): unlike a bootstrap of 0/1 values, it gives a 0% (or
100%) rate a real interval, 0 of 10 is [0, 0.28], not [0, 0]. A mean gets a percentile bootstrap interval.

A comparison says how strongly player `a` beat player `b`: ``p_a`` is 1 for a clear win, 0 for a
clear loss, and anything between for a soft judgement (the judge's probability, 0.5 for a tie).
Bradley–Terry models P(a beats b) = σ(s_a − s_b); the strengths s maximise

    Σ w · [p_a · log σ(s_a − s_b) + (1 − p_a) · log σ(s_b − s_a)] − (λ/2) · Σ s²

(Newton's method; the small ridge λ keeps a player who won every game finite, still on top).
Ratings are s on the Elo scale, 400/ln 10 points per unit, so a 400-point gap means 10:1 odds;
the anchor player (the baseline) sits at 1000, or the mean does when there is no anchor.
Unlike online Elo, the fit does not depend on the order of the games.

Ratings compare players only within a connected set of games: players linked by a chain of comparisons
(scipy.sparse.csgraph finds the sets). Two sets that no game links have no common scale (adding any
constant to one set's strengths leaves the likelihood unchanged), so each set is fitted and anchored on
its own and every rating names its set; ratings from different sets must not be compared.

Confidence intervals resample whole groups (a group is one prompt, whose comparisons are
correlated) with replacement and refit: the 2.5th and 97.5th percentiles of 1000 refits.

Calibration of a judge against known answers (`calibration`): each decided comparison gives the judge's
confidence c = max(p, 1 − p) in the side it chose (0.5–1) and whether that side was the right one. The
confidences are cut into equal-width bins over [0.5, 1] (5 by default: 0.5–0.6, …, 0.9–1.0, each bin
closed below and open above, the last closed at 1); per bin, the mean confidence is what the judge
promised and the share right is what it delivered (with its Wilson interval). The expected calibration
error is their gap weighted by the bin's share of the comparisons, ECE = Σ_b (n_b / N) · |right_b − conf_b|
(Guo et al. 2017): 0 for a judge whose 0.8 means right 80% of the time. With few comparisons per bin the
ECE is biased upwards (sampling noise never cancels in an absolute value), so read it with the counts.
Pure numpy (scipy for the Wilson interval and the connected sets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where the numbers are computed: the command line starts without it
    import numpy as np

ELO_SCALE = 400.0 / math.log(10.0)
ELO_BASE = 1000.0
DEFAULT_BOOTSTRAP = 1000  # resamples behind every bootstrap interval (`--bootstrap`)
CALIBRATION_BINS = 5  # equal-width bins of the judge's confidence over [0.5, 1]: 0.1 wide


def proportion(k: int, n: int, confidence: float = 0.95) -> dict:
    """{"value": k/n, "ci": [low, high], "n": n, "k": k} with the Wilson score interval (computed by scipy)."""
    from scipy.stats import binomtest

    if n <= 0:
        return {"value": None, "ci": [None, None], "n": 0, "k": 0}
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return {"value": round(k / n, 4), "ci": [round(float(ci.low), 4), round(float(ci.high), 4)], "n": int(n), "k": int(k)}


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    p_a: float  # how strongly a beat b, 0..1
    group: str | None = None  # comparisons in one group (one prompt) are resampled together


@dataclass(frozen=True)
class Rating:
    player: str
    rating: float
    ci_low: float
    ci_high: float
    games: int
    score: float  # soft wins / games
    connected_set: int = 1  # which connected set of games (1, 2, ...): ratings compare only within one

    def as_dict(self) -> dict:
        return {
            "model": self.player,
            "rating": round(self.rating, 1),
            "ci": [round(self.ci_low, 1), round(self.ci_high, 1)],
            "games": self.games,
            "score": round(self.score, 4),
            "set": self.connected_set,
        }


def _fit(k: int, ia: np.ndarray, ib: np.ndarray, p: np.ndarray, w: np.ndarray, ridge: float, start: np.ndarray | None = None) -> np.ndarray:
    """Strengths maximising the ridge-penalised soft Bradley–Terry log-likelihood (Newton with step halving)."""
    import numpy as np

    s = np.zeros(k) if start is None else start.copy()

    def objective(x: np.ndarray) -> float:
        d = x[ia] - x[ib]
        # log σ(d) = −log(1 + e^−d), computed stably
        return float(np.sum(w * (-p * np.logaddexp(0.0, -d) - (1 - p) * np.logaddexp(0.0, d))) - 0.5 * ridge * np.dot(x, x))

    current = objective(s)
    for _ in range(100):
        d = s[ia] - s[ib]
        sig = 1.0 / (1.0 + np.exp(-d))
        r = w * (p - sig)
        grad = np.bincount(ia, r, k) - np.bincount(ib, r, k) - ridge * s
        c = w * sig * (1.0 - sig)
        hess = np.zeros((k, k))
        np.add.at(hess, (ia, ia), -c)
        np.add.at(hess, (ib, ib), -c)
        np.add.at(hess, (ia, ib), c)
        np.add.at(hess, (ib, ia), c)
        hess -= ridge * np.eye(k)
        step = np.linalg.solve(hess, -grad)
        t = 1.0
        while True:
            trial = s + t * step
            value = objective(trial)
            if value >= current - 1e-12 or t < 1e-6:
                break
            t *= 0.5
        if value < current - 1e-12:
            break  # no step improves: at the optimum up to rounding
        s, current = trial, value
        if np.max(np.abs(t * step)) < 1e-9:
            break
    return s


def _to_elo(s: np.ndarray, anchor: int | None) -> np.ndarray:
    centre = s[anchor] if anchor is not None else s.mean()
    return ELO_BASE + ELO_SCALE * (s - centre)


def connected_sets(comparisons: Sequence[Comparison]) -> list[list[str]]:
    """The players split into connected sets of games (linked by a chain of comparisons), in order of first appearance."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    players = list(dict.fromkeys(name for c in comparisons for name in (c.a, c.b)))
    if not players:
        return []
    index = {name: i for i, name in enumerate(players)}
    ia = np.array([index[c.a] for c in comparisons])
    ib = np.array([index[c.b] for c in comparisons])
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(len(players), len(players)))
    _, labels = connected_components(graph, directed=False)
    order = list(dict.fromkeys(int(x) for x in labels))  # the set of the first player first
    return [[p for p, lab in zip(players, labels) if lab == want] for want in order]


def bradley_terry(
    comparisons: Sequence[Comparison],
    *,
    anchor: str | Sequence[str] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = 0.95,
    ridge: float = 0.01,
) -> list[Rating]:
    """Ratings for every player in COMPARISONS with bootstrap CIs (none when bootstrap=0): each connected set of
    games fitted on its own, sets in order of first appearance, best first within a set.

    ANCHOR: the player at 1000 (it must have played), or several (baselines): a set holding exactly one of them
    is anchored at it, any other set at its mean."""
    if not comparisons:
        return []
    anchors = [anchor] if isinstance(anchor, str) else list(anchor or [])
    if isinstance(anchor, str) and not any(anchor in (c.a, c.b) for c in comparisons):
        raise ValueError(f"anchor {anchor!r} played no game")
    out: list[Rating] = []
    for number, members in enumerate(connected_sets(comparisons), start=1):
        inside = set(members)
        games = [c for c in comparisons if c.a in inside]
        held = [a for a in dict.fromkeys(anchors) if a in inside]
        fitted = _bradley_terry_connected(games, held[0] if len(held) == 1 else None, bootstrap, seed, confidence, ridge)
        out += sorted((replace(r, connected_set=number) for r in fitted), key=lambda r: -r.rating)
    return out


def _bradley_terry_connected(
    comparisons: Sequence[Comparison], anchor: str | None, bootstrap: int, seed: int, confidence: float, ridge: float
) -> list[Rating]:
    """Ratings of one connected set of games (unsorted)."""
    import numpy as np

    players = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    index = {name: i for i, name in enumerate(players)}
    k = len(players)
    ia = np.array([index[c.a] for c in comparisons])
    ib = np.array([index[c.b] for c in comparisons])
    p = np.clip(np.array([float(c.p_a) for c in comparisons]), 0.0, 1.0)
    w = np.ones(len(comparisons))
    anchor_i = index[anchor] if anchor is not None else None

    s = _fit(k, ia, ib, p, w, ridge)
    point = _to_elo(s, anchor_i)
    low, high = point.copy(), point.copy()
    if bootstrap > 0:
        groups = [c.group if c.group is not None else f"#{i}" for i, c in enumerate(comparisons)]
        gindex = {g: j for j, g in enumerate(dict.fromkeys(groups))}
        g = np.array([gindex[x] for x in groups])
        rng = np.random.default_rng(seed)
        draws = np.empty((bootstrap, k))
        for b in range(bootstrap):
            counts = rng.multinomial(len(gindex), np.full(len(gindex), 1.0 / len(gindex)))
            draws[b] = _to_elo(_fit(k, ia, ib, p, counts[g].astype(float), ridge, start=s), anchor_i)
        tail = 100.0 * (1.0 - confidence) / 2.0
        low, high = np.percentile(draws, tail, axis=0), np.percentile(draws, 100.0 - tail, axis=0)

    games = np.bincount(ia, minlength=k) + np.bincount(ib, minlength=k)
    wins = np.bincount(ia, p, k) + np.bincount(ib, 1.0 - p, k)
    return [Rating(players[i], float(point[i]), float(low[i]), float(high[i]), int(games[i]), float(wins[i] / games[i])) for i in range(k)]


def bootstrap_mean(values: Sequence[float], *, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, confidence: float = 0.95) -> dict | None:
    """{"value": mean, "ci": [low, high], "n": count}: a percentile bootstrap CI of the mean; None when empty."""
    import numpy as np

    x = np.asarray([float(v) for v in values], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if bootstrap <= 0 or x.size == 1:
        return {"value": mean, "ci": [mean, mean], "n": int(x.size)}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(bootstrap, x.size))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    return {"value": mean, "ci": [float(np.percentile(means, tail)), float(np.percentile(means, 100.0 - tail))], "n": int(x.size)}


def calibration(confidences: Sequence[float], correct: Sequence[bool], *, bins: int = CALIBRATION_BINS, low: float = 0.5) -> dict | None:
    """How far confidences in [LOW, 1] match the share of right answers: equal-width bins over [LOW, 1] (each closed
    below, the last closed at 1 too), per bin the count, the mean confidence and the share right with its Wilson
    interval, and ECE = Σ_b (n_b / N) · |right_b − mean confidence_b|. None when there is nothing to bin."""
    import numpy as np

    conf = np.asarray([float(c) for c in confidences], dtype=float)
    right = np.asarray([bool(x) for x in correct], dtype=bool)
    if conf.size == 0:
        return None
    if conf.size != right.size:
        raise ValueError("calibration: one `correct` per confidence")
    if np.any(conf < low - 1e-12) or np.any(conf > 1.0 + 1e-12):
        raise ValueError(f"calibration: confidences must lie in [{low}, 1]")
    edges = np.linspace(low, 1.0, bins + 1)
    # floor of the position in bin widths; the nudge puts an edge value (0.6 - 0.5 = 0.0999…) in the bin it opens
    which = np.clip(np.floor((conf - low) * bins / (1.0 - low) + 1e-9).astype(int), 0, bins - 1)
    table, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        entry: dict = {"range": [round(float(edges[b]), 4), round(float(edges[b + 1]), 4)], "n": n}
        if n:
            mean_conf = float(conf[inside].mean())
            k = int(right[inside].sum())
            share = proportion(k, n)
            entry.update(confidence=round(mean_conf, 4), observed=share["value"], ci=share["ci"], k=k)
            gap += n * abs(k / n - mean_conf)
        table.append(entry)
    return {"ece": round(gap / conf.size, 4), "n": int(conf.size), "bins": table, "binning": f"{bins} equal-width bins of confidence over [{low}, 1]"}


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of paired values (scipy; ties share ranks); None with fewer than 3 pairs or where
    either side is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    if len(x) != len(y):
        raise ValueError("rank_correlation: one y per x")
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return round(float(spearmanr(x, y).statistic), 4)
