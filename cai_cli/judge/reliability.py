"""What a batch of verdicts says about the judge itself: position bias, order disagreement, length bias, and each
principle's agreement with the ensemble (label-prefs reports it per run, eval per criterion); and, against known
answers (`--gold-field`), its accuracy and its calibration (`gold_agreement`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..stats import calibration, proportion
from .maths import orders_disagree
from .pairwise import Ask, JudgeFailure, Verdict


def comparison_record(ask: Ask, verdict: Verdict | JudgeFailure) -> dict:
    """What JudgeStats counts of one comparison, as plain JSON: label-prefs keeps it beside the row it judged, so
    its summary after a resume counts every comparison, whichever run made it. `longer`: 1 when x is the longer
    response, -1 when y is, 0 for equal lengths."""
    if isinstance(verdict, JudgeFailure):
        return {"failed": True}
    return {
        "votes": [[v.principle, v.p_first] for v in verdict.votes],
        "p_x": verdict.p_x,
        "longer": (len(ask.x) > len(ask.y)) - (len(ask.x) < len(ask.y)),
        "principles": dict(verdict.principles),
    }


@dataclass
class JudgeStats:
    """What a batch of verdicts says about the judge itself: position bias, order disagreement, length bias,
    and how often each principle agreed with the ensemble."""

    comparisons: int = 0
    votes: int = 0
    p_first_sum: float = 0.0
    swapped: int = 0
    disagreed: int = 0
    length_pairs: int = 0  # comparisons whose responses differ in length and whose verdict is not a tie
    longer_chosen: int = 0
    failed: int = 0
    principles: dict = field(default_factory=dict)  # id -> [asked, agreed with the ensemble]

    def add(self, ask: Ask, verdict: Verdict | JudgeFailure) -> None:
        self.add_record(comparison_record(ask, verdict))

    def add_record(self, rec: dict) -> None:
        """Count one comparison, as `comparison_record` keeps it."""
        if rec.get("failed"):
            self.failed += 1
            return
        self.comparisons += 1
        by_principle: dict[str, list[float]] = {}
        for principle, p_first in rec["votes"]:
            self.votes += 1
            self.p_first_sum += p_first
            by_principle.setdefault(principle, []).append(p_first)
        for ps in by_principle.values():
            if len(ps) == 2:
                self.swapped += 1
                self.disagreed += orders_disagree(ps[0] - 0.5, ps[1] - 0.5)
        p_x = rec["p_x"]
        if rec["longer"] and p_x != 0.5:
            self.length_pairs += 1
            self.longer_chosen += (p_x > 0.5) == (rec["longer"] > 0)
        for pid, p in rec["principles"].items():
            c = self.principles.setdefault(pid, [0, 0])
            c[0] += 1
            c[1] += (p > 0.5) == (p_x > 0.5) if p != 0.5 else 0

    def as_dict(self) -> dict:
        out: dict = {"comparisons": self.comparisons, "failed": self.failed}
        if self.votes:
            out["position_bias"] = {"mean_p_first": round(self.p_first_sum / self.votes, 4), "votes": self.votes, "unbiased": 0.5}
        if self.swapped:
            out["orders_disagreed"] = proportion(self.disagreed, self.swapped)
        if self.length_pairs:
            out["length_bias"] = {**proportion(self.longer_chosen, self.length_pairs), "chance": 0.5}
        out["principles"] = {pid: {"asked": a, "agreed": g, "agreement": round(g / a, 4)} for pid, (a, g) in sorted(self.principles.items())}
        return out

    def line(self) -> str:
        """The judge's part of a summary line."""
        parts = []
        if self.swapped:
            parts.append(f"orders disagreed {self.disagreed}/{self.swapped} ({100.0 * self.disagreed / self.swapped:.0f}%)")
        if self.votes:
            parts.append(f"mean p(first shown) {self.p_first_sum / self.votes:.3f}")
        if self.length_pairs:
            parts.append(f"longer chosen {self.longer_chosen}/{self.length_pairs} ({100.0 * self.longer_chosen / self.length_pairs:.0f}%, chance 50%)")
        if len(self.principles) > 1:
            worst = sorted(self.principles.items(), key=lambda kv: (kv[1][1] / kv[1][0], kv[0]))
            shown = ", ".join(f"{pid} {100.0 * g / a:.0f}%" for pid, (a, g) in worst[:3])
            parts.append(f"agreement with ensemble, lowest: {shown}")
        if self.failed:
            parts.append(f"{self.failed} judge failures")
        return " | ".join(parts)


def gold_agreement(p_gold: Sequence[float]) -> dict | None:
    """The judge against known answers, from P(the gold response is better) per judged comparison.

    `accuracy`: the share of decided comparisons (p ≠ 0.5) that favoured the gold response, with its Wilson
    interval; exact ties are neither right nor wrong (`ties`, outside the accuracy); `mean_p_gold` is the soft
    version over all. `calibration`: the judge's confidence in the side it chose, max(p, 1 − p), against whether
    that side was the gold one, binned (cai_cli.stats.calibration: per-bin counts and the ECE). None when no
    comparison was decided."""
    values = [float(p) for p in p_gold]
    decided = [p for p in values if p != 0.5]
    if not decided:
        return None
    right = [p > 0.5 for p in decided]
    accuracy = proportion(sum(right), len(decided))
    return {
        "accuracy": {**accuracy, "ties": len(values) - len(decided), "mean_p_gold": round(sum(values) / len(values), 4)},
        "calibration": calibration([max(p, 1.0 - p) for p in decided], right),
    }


def calibration_line(agreement: dict | None) -> str:
    """The calibration's part of a summary line: ECE and the pairs behind it."""
    cal = (agreement or {}).get("calibration")
    if not cal:
        return ""
    return f"ECE {cal['ece']:.3f} ({cal['n']} pairs, {len(cal['bins'])} bins of p_chosen)"
