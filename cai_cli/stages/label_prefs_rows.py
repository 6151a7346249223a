"""The rows a judged pair becomes: `chosen` and `rejected` (trl's conversational preference format) and `preference`
(p_chosen, margin, the votes, the tiers' verdicts, the gate, what the label was made from); one entry per pair under
--pairs all, the best against the worst otherwise, identical responses and near-ties marked to be dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..constitution import behaviours as bh
from ..judge import Decision, Gate, orient, rank
from ..judge.tiers import units_used
from ..rows import conversation, cut_replies, is_cut, meta_finish_reason
from .label_prefs_config import LabelConfig, Pairs, PairSource, responses

if TYPE_CHECKING:
    from ..constitution import Constitution


@dataclass
class Pair:
    """One judged pair: P(responses[i] beats responses[j]) and the votes behind it."""

    i: int
    j: int
    p_i: float
    votes: list[dict]  # {"principle", "first": index shown as (A), "p_first", "reasoning"?}
    agreed: bool | None
    decision: Decision | None = None  # the tiers' verdicts, who decided, the gate (None under revision-wins)
    compared: dict | None = None  # what the judge's statistics count of this comparison (judge.comparison_record)


def decided_by_passage(decision: Decision, tiers: dict, gate: Gate | None) -> str | None:
    """The passage behind the verdict that decided a label: the deciding tier's quoted passage, or the passage stating
    the hard constraint that decided it (None: several tiers together, flat, or nothing quoted)."""
    who = decision.decided_by
    if who is None:
        return None
    if who.startswith("hard-constraint:"):
        return gate.passages.get(who.removeprefix("hard-constraint:")) if gate else None
    return (tiers.get(who) or {}).get("passage")


class PreferenceRows:
    """Builds the entries of one input row (each becomes an output row, or a dropped one where it has `dropped`)."""

    def __init__(self, cfg: LabelConfig, constitution: Constitution | None, gate: Gate | None):
        self.cfg, self.gate = cfg, gate
        self._constitution = constitution

    @property
    def constitution(self) -> Constitution:
        assert self._constitution is not None, "--mode judge has a constitution (checked by the stage)"
        return self._constitution

    def side(self, row: dict, text: str) -> list[dict]:
        return conversation(row) + [{"role": "assistant", "content": text}]

    def truncated_indices(self, row: dict) -> set[int]:
        """Which compared responses were cut at --max-tokens, by the finish reasons the pipeline recorded."""
        if self.cfg.pair is PairSource.candidates:
            reasons = meta_finish_reason(row, "generate")
            return {i for i, r in enumerate(reasons if isinstance(reasons, list) else [reasons]) if is_cut(r)}
        # The revised response and the first reply, each judged by the round (or generate) that wrote it.
        cut = cut_replies(row)
        return {k for k, text in enumerate((row.get("response"), row.get("initial_response"))) if isinstance(text, str) and cut.get(text, False)}

    def entry(self, row, texts, sources, chosen: int, rejected: int, p_chosen: float, extra: dict) -> dict:
        cut = self.truncated_indices(row)
        pref = {
            "p_chosen": round(p_chosen, 6),
            "margin": round(2.0 * p_chosen - 1.0, 6),
            "method": self.cfg.mode.value,
            "chosen_source": sources[chosen],
            "rejected_source": sources[rejected],
            # A side cut at --max-tokens may have lost (or won) for being cut: marked, never dropped silently.
            "truncated": [side for side, k in (("chosen", chosen), ("rejected", rejected)) if k in cut],
            **extra,
        }
        entry = {"chosen": self.side(row, texts[chosen]), "rejected": self.side(row, texts[rejected]), "preference": pref}
        if self.cfg.min_confidence is not None and p_chosen < self.cfg.min_confidence:
            entry["dropped"] = f"p_chosen {p_chosen:.4f} is below --min-confidence {self.cfg.min_confidence}"
        return entry

    def identical(self, row, texts, sources, i: int, j: int) -> dict:
        return {
            "chosen": self.side(row, texts[i]),
            "rejected": self.side(row, texts[j]),
            "preference": {"p_chosen": 0.5, "margin": 0.0, "method": self.cfg.mode.value, "chosen_source": sources[i], "rejected_source": sources[j]},
            "dropped": "identical responses: no preference to learn",
        }

    def revision_wins(self, row: dict) -> tuple[list[dict], list[Pair] | None]:
        """The row's one entry, and the pair scored against --gold-field (None for identical texts: no pair at all)."""
        texts, sources = responses(row, self.cfg.source)
        if texts[0] == texts[1]:
            return [self.identical(row, texts, sources, 0, 1)], None
        return [self.entry(row, texts, sources, 0, 1, 1.0, {"votes": [], "orders_agreed": None})], [Pair(0, 1, 1.0, [], None)]

    def entries(self, row: dict, pairs: list[Pair]) -> list[dict]:
        texts, sources = responses(row, self.cfg.source)
        by_ij = {(p.i, p.j): p for p in pairs}
        if self.cfg.pair is PairSource.candidates and self.cfg.pairs is Pairs.all:
            entries = []
            for i in range(len(texts)):
                for j in range(i + 1, len(texts)):
                    e = self.pair_entry(row, texts, sources, by_ij[(i, j)]) if (i, j) in by_ij else self.identical(row, texts, sources, i, j)
                    e["id"] = f"{row['id']}:{i}-{j}"
                    entries.append(e)
            return entries
        if len(texts) == 2 or self.cfg.pair is PairSource.initial_vs_final:
            return [self.pair_entry(row, texts, sources, pairs[0]) if pairs else self.identical(row, texts, sources, 0, 1)]
        # Identical candidates tie (0.5) without being asked.
        p_beats = {(i, j): (by_ij[(i, j)].p_i if (i, j) in by_ij else 0.5) for i in range(len(texts)) for j in range(i + 1, len(texts))}
        order, rates = rank(len(texts), p_beats)
        best, worst = order[0], order[-1]
        ranking = {"ranking": order, "win_rates": [round(x, 6) for x in rates]}
        key = (min(best, worst), max(best, worst))
        if key not in by_ij:
            return [{**self.identical(row, texts, sources, best, worst)}]
        # In a preference cycle the direct comparison, not the ranking, decides which side is chosen.
        return [self.pair_entry(row, texts, sources, by_ij[key], ranking)]

    def pair_entry(self, row, texts, sources, pair: Pair, extra: dict | None = None) -> dict:
        i_wins, p_chosen = orient(pair.p_i)
        chosen, rejected = (pair.i, pair.j) if i_wins else (pair.j, pair.i)
        votes = [
            {"principle": v["principle"], **({"passage": v["passage"]} if "passage" in v else {}),
             "first": "chosen" if v["first"] == chosen else "rejected", "p_first": round(v["p_first"], 6),
             **({"reasoning": v["reasoning"]} if "reasoning" in v else {})}
            for v in pair.votes
        ]
        tiers = self.tier_fields(pair.decision, chosen == pair.i, row) if pair.decision is not None else {}
        return self.entry(row, texts, sources, chosen, rejected, p_chosen, {"votes": votes, "orders_agreed": pair.agreed, **tiers, **(extra or {})})

    def tier_fields(self, decision: Decision, chosen_is_x: bool, row: dict) -> dict:
        """preference's record of the tiers, the gate and what the label was made from, from the chosen side."""

        def oriented(p: float) -> float:
            return round(p if chosen_is_x else 1.0 - p, 6)

        constitution = self.constitution
        shown = {q.id: q for q in decision.asked}

        def tier_record(t) -> dict:
            quoted = [shown[pid] for pid in t.principles if getattr(shown.get(pid), "passage", None) is not None]
            where = {"passage": quoted[0].passage, "passage_hash": quoted[0].passage_hash} if quoted else {}
            return {"p_chosen": oriented(t.p_x), "principles": {pid: oriented(p) for pid, p in t.principles.items()}, **where}

        fields: dict = {
            "priority": self.cfg.priority.value,
            "decided_by": decision.decided_by,
            "tiers": {t.tier: tier_record(t) for t in decision.tiers},
        }
        decider = decided_by_passage(decision, fields["tiers"], self.gate)
        if decider is not None:
            fields["decided_by_passage"] = decider
        if decision.gate is not None:
            x, y = decision.gate
            chosen, rejected = (x, y) if chosen_is_x else (y, x)
            fields["gate"] = {
                "chosen": chosen.as_dict()["violations"], "rejected": rejected.as_dict()["violations"], "threshold": chosen.threshold,
                **({"reason": decision.separation.reason("rejected", "chosen")} if decision.separation is not None else {}),
            }
        fields["constitution_hash"] = constitution.hash
        states = bh.of_row(constitution, row)
        if states:  # the instructable behaviours the judge and the gate were told of
            fields["behaviours"] = states
        fields["used"] = units_used(constitution, [pid for t in decision.tiers for pid in t.principles], decision.asked)
        if "passages" in fields["used"]:
            fields["used"]["ranker"] = self.cfg.ranker.value  # what routed the passages the questions quoted
        return fields
