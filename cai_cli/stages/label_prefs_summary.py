"""What label-prefs counts and reports: pairs kept and dropped (and why), pairs with a side cut at --max-tokens,
the judge's bias (cai_cli.judge.JudgeStats) and speed, accuracy against --gold-field with a Wilson interval and the judge's
calibration (cai_cli.judge.gold_agreement: the expected calibration error over binned p_chosen, drawn by `cai report`
as a reliability diagram), and, per priority tier, how often it decided the label and how often its own verdict
agreed with the label (and how often the hard-constraint gate decided, and how often each constraint was likely
crossed); as the summary line and as OUT.summary.json (which the runner writes). The tier and gate counts are read from each
pair's `preference`, so rows copied by --amend count like recomputed ones.

Everything but the speed is counted from the finished rows (`recount`, which the runner calls once per finished
input row, in input order): the rows, the dropped rows, and the row's tally (every pair the judge compared and
its gold answer), so a summary after a resume equals an uninterrupted run's."""

from __future__ import annotations

from typing import Any

from ..filekinds import LABEL_PREFS_SUMMARY
from ..judge import JudgeStats, Priority, calibration_line, gold_agreement
from .label_prefs_config import Mode

TOP_PASSAGES = 3  # the passages behind the most deciding verdicts, named in the summary line


class LabelTally:
    """label-prefs' counts, filled as pairs are labelled."""

    def __init__(self, mode: Mode, gold: str | None, min_confidence: float | None):
        self.mode, self.gold, self.min_confidence = mode, gold, min_confidence
        self.counts = {
            "kept": 0, "dropped_confidence": 0, "dropped_identical": 0, "comparisons": 0, "truncated": 0,
            "no_gold": 0,
        }
        self.p_gold: list[float] = []  # P(gold response better) per judged pair with a gold side, unrounded
        self.judge_stats = JudgeStats()
        self.judge_seconds = 0.0  # this run's time in the judge, and the comparisons it made there (its speed)
        self.compared_here = 0
        self.tiers: dict[str, dict[str, int]] = {}  # tier -> {"asked", "decided", "agreed", "tied"}
        self.decided_by: dict[str, int] = {}  # "hard-constraint", "several tiers", or "flat" -> pairs
        self.crossed: dict[str, int] = {}  # constraint -> compared responses that likely cross it
        self.gated_responses = 0
        self.deciding_passages: dict[str, int] = {}  # passage -> labels whose deciding verdict it was asked about

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """One finished input row: its pairs (kept and dropped) and its tally (the comparisons, the gold answer)."""
        for entry in [*rows, *dropped]:
            self.add_entry(entry)
        for tally in tallies:
            for comparison in tally.get("compared", ()):
                self.judge_stats.add_record(comparison)
            if "gold" in tally:
                self.add_gold(tally["gold"]["index"], [tuple(pair) for pair in tally["gold"]["pairs"]])

    def add_entry(self, entry: dict) -> None:
        """One output pair: kept (and maybe with a side cut), or dropped with its reason."""
        if entry.get("dropped"):
            self.counts["dropped_identical" if entry["dropped"].startswith("identical") else "dropped_confidence"] += 1
        else:
            self.counts["kept"] += 1
            self.counts["truncated"] += bool(entry["preference"].get("truncated"))
        self.add_tiers(entry.get("preference") or {})

    def add_tiers(self, pref: dict) -> None:
        """A judged pair's tier verdicts, who decided its label, and its gate results."""
        tiers = pref.get("tiers")
        if not isinstance(tiers, dict):
            return
        decided = pref.get("decided_by")
        passage = pref.get("decided_by_passage")
        if isinstance(passage, str):
            self.deciding_passages[passage] = self.deciding_passages.get(passage, 0) + 1
        for tier, verdict in tiers.items():
            c = self.tiers.setdefault(tier, {"asked": 0, "decided": 0, "agreed": 0, "tied": 0})
            p = float(verdict.get("p_chosen", 0.5))
            c["asked"] += 1
            c["decided"] += decided == tier
            c["agreed"] += p > 0.5
            c["tied"] += p == 0.5
        if isinstance(decided, str) and decided.startswith("hard-constraint:"):
            key = "hard-constraint"
        elif decided is None:
            key = "flat" if pref.get("priority") == Priority.flat.value else "several tiers"
        else:
            key = None
        if key is not None:
            self.decided_by[key] = self.decided_by.get(key, 0) + 1
        gate = pref.get("gate")
        if isinstance(gate, dict):
            threshold = float(gate.get("threshold", 0.5))
            for side in ("chosen", "rejected"):
                self.gated_responses += 1
                for cid, p in (gate.get(side) or {}).items():
                    self.crossed[cid] = self.crossed.get(cid, 0) + (p is not None and p > threshold)

    def tiers_dict(self) -> dict:
        """Per tier: pairs asked, how often it decided the label, how often its own verdict agreed with the label."""
        out: dict[str, Any] = {
            tier: {**c, "agreement": round(c["agreed"] / (c["asked"] - c["tied"]), 4) if c["asked"] > c["tied"] else None}
            for tier, c in self.tiers.items()
        }
        ranked = sorted(self.deciding_passages.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"tiers": out, "decided_otherwise": dict(self.decided_by), **({"deciding_passages": dict(ranked)} if ranked else {}),
                **({"gate": {"responses": self.gated_responses, "crossed": dict(self.crossed)}} if self.gated_responses else {})}

    def add_gold(self, g: int | None, pairs: list[tuple[int, int, float]]) -> None:
        """A row's judged pairs (i, j, P(i beats j)) against its gold response G (None: the row names none)."""
        if g is None:
            self.counts["no_gold"] += 1
            return
        for i, j, p_i in pairs:
            if g not in (i, j):
                continue
            self.p_gold.append(p_i if g == i else 1.0 - p_i)

    def gold_agreement(self) -> dict | None:
        """Accuracy against --gold-field with its Wilson 95% interval (exact ties apart, mean p(gold) over all), and the
        judge's calibration (binned p_chosen against agreement with gold, ECE)."""
        return gold_agreement(self.p_gold)

    def as_dict(self, settings: dict) -> dict:
        """The summary JSON (`OUT.summary.json`): counts, the judge's bias, and accuracy against --gold-field; SETTINGS are the stage's."""
        c = self.counts
        out: dict[str, Any] = {
            "kind": LABEL_PREFS_SUMMARY,
            "pairs": {"kept": c["kept"], "dropped_confidence": c["dropped_confidence"], "dropped_identical": c["dropped_identical"], "truncated": c["truncated"]},
            "settings": settings,
        }
        if self.mode is Mode.judge:
            out["priorities"] = self.tiers_dict()
            out["judge"] = self.judge_stats.as_dict()
            if self.judge_seconds > 0:
                out["judge"]["comparisons_per_second"] = round(self.compared_here / self.judge_seconds, 3)
        if self.gold is not None:
            agreement = self.gold_agreement() or {}
            out["gold"] = {"field": self.gold, "accuracy": agreement.get("accuracy"), "calibration": agreement.get("calibration"), "rows_without_gold": c["no_gold"]}
        return out

    def line(self) -> str:
        """label-prefs' part of the summary line."""
        c = self.counts
        dropped = c["dropped_confidence"] + c["dropped_identical"]
        parts = [f"pairs {c['kept']} kept, {dropped} dropped"]
        if dropped:
            why = []
            if c["dropped_confidence"]:
                why.append(f"{c['dropped_confidence']} below --min-confidence {self.min_confidence}")
            if c["dropped_identical"]:
                why.append(f"{c['dropped_identical']} identical")
            parts[0] += f" ({', '.join(why)})"
        if c["truncated"]:
            parts.append(f"{c['truncated']} kept pairs with a side cut at --max-tokens (preference.truncated)")
        if self.tiers:
            shown = ", ".join(
                f"{tier} decided {c['decided']}/{c['asked']}, agreed {100.0 * c['agreed'] / (c['asked'] - c['tied']):.0f}%" if c["asked"] > c["tied"]
                else f"{tier} decided {c['decided']}/{c['asked']}"
                for tier, c in self.tiers.items()
            )
            parts.append(f"tiers: {shown}")
        if self.decided_by.get("hard-constraint"):
            parts.append(f"{self.decided_by['hard-constraint']} pairs decided by a hard constraint")
        if self.deciding_passages:
            top = sorted(self.deciding_passages.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PASSAGES]
            parts.append("deciding passages: " + ", ".join(f"{pid} {n}" for pid, n in top))
        judge_line = self.judge_stats.line()
        if judge_line:
            parts.append(judge_line)
        if self.compared_here and self.judge_seconds > 0:
            parts.append(f"{self.compared_here / self.judge_seconds:.2f} comparisons/s")
        if self.gold is not None:
            agreement = self.gold_agreement()
            if agreement:
                acc = agreement["accuracy"]
                parts.append(
                    f"gold accuracy {acc['value']:.3f} (95% CI {acc['ci'][0]:.3f}-{acc['ci'][1]:.3f}) on {acc['n']} pairs, mean p(gold) {acc['mean_p_gold']:.3f}"
                )
                parts.append(calibration_line(agreement))
            else:
                parts.append("gold accuracy n/a (no pair involved a gold response)")
            if c["no_gold"]:
                parts.append(f"{c['no_gold']} rows without {self.gold}")
        return " | ".join(parts)
