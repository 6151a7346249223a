"""What label-prefs counts and reports: pairs kept and dropped (and why), pairs with a side cut at --max-tokens,
the judge's bias (cai_cli.judge.JudgeStats) and speed, and accuracy against --gold with a Wilson interval; as the
summary line and as OUT.summary.json (which the runner writes).

Everything but the speed is counted from the finished rows (`recount`, which the runner calls once per finished
input row, in input order): the rows, the dropped rows, and the row's tally (every pair the judge compared and
its gold answer), so a summary after a resume equals an uninterrupted run's."""

from __future__ import annotations

from typing import Any

from ..judge import JudgeStats
from ..stats import proportion


class LabelTally:
    """label-prefs' counts, filled as pairs are labelled."""

    def __init__(self, mode: str, gold: str | None, min_confidence: float | None):
        self.mode, self.gold, self.min_confidence = mode, gold, min_confidence
        self.counts = {
            "kept": 0, "dropped_confidence": 0, "dropped_identical": 0, "comparisons": 0, "truncated": 0,
            "gold_pairs": 0, "gold_ties": 0, "gold_correct": 0, "gold_p_sum": 0.0, "no_gold": 0,
        }
        self.judge_stats = JudgeStats()
        self.judge_seconds = 0.0  # this run's time in the judge, and the comparisons it made there (its speed)
        self.compared_here = 0

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

    def add_gold(self, g: int | None, pairs: list[tuple[int, int, float]]) -> None:
        """A row's judged pairs (i, j, P(i beats j)) against its gold response G (None: the row names none)."""
        if g is None:
            self.counts["no_gold"] += 1
            return
        for i, j, p_i in pairs:
            if g not in (i, j):
                continue
            p_gold = p_i if g == i else 1.0 - p_i
            self.counts["gold_p_sum"] += p_gold
            if p_gold == 0.5:
                self.counts["gold_ties"] += 1  # neither right nor wrong: counted apart, outside the accuracy
                continue
            self.counts["gold_pairs"] += 1
            self.counts["gold_correct"] += p_gold > 0.5

    def gold_accuracy(self) -> dict | None:
        """Accuracy against --gold with its Wilson 95% interval (exact ties apart), and the mean p(gold) over all."""
        c = self.counts
        if not c["gold_pairs"]:
            return None
        acc = proportion(int(c["gold_correct"]), int(c["gold_pairs"]))  # counts: ints beside the float gold_p_sum
        return {**acc, "ties": c["gold_ties"], "mean_p_gold": round(c["gold_p_sum"] / (c["gold_pairs"] + c["gold_ties"]), 4)}

    def as_dict(self, settings: dict) -> dict:
        """The summary JSON (`OUT.summary.json`): counts, the judge's bias, and accuracy against --gold; SETTINGS are the stage's."""
        c = self.counts
        out: dict[str, Any] = {
            "kind": "cai-label-prefs-summary",
            "pairs": {"kept": c["kept"], "dropped_confidence": c["dropped_confidence"], "dropped_identical": c["dropped_identical"], "truncated": c["truncated"]},
            "settings": settings,
        }
        if self.mode == "judge":
            out["judge"] = self.judge_stats.as_dict()
            if self.judge_seconds > 0:
                out["judge"]["comparisons_per_second"] = round(self.compared_here / self.judge_seconds, 3)
        if self.gold is not None:
            out["gold"] = {"field": self.gold, "accuracy": self.gold_accuracy(), "rows_without_gold": c["no_gold"]}
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
        judge_line = self.judge_stats.line()
        if judge_line:
            parts.append(judge_line)
        if self.compared_here and self.judge_seconds > 0:
            parts.append(f"{self.compared_here / self.judge_seconds:.2f} comparisons/s")
        if self.gold is not None:
            acc = self.gold_accuracy()
            if acc:
                parts.append(
                    f"gold accuracy {acc['value']:.3f} (95% CI {acc['ci'][0]:.3f}-{acc['ci'][1]:.3f}) on {acc['n']} pairs, mean p(gold) {acc['mean_p_gold']:.3f}"
                )
            else:
                parts.append("gold accuracy n/a (no pair involved a gold response)")
            if c["no_gold"]:
                parts.append(f"{c['no_gold']} rows without {self.gold}")
        return " | ".join(parts)
