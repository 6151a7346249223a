"""label-prefs measured on gold pairs before it labels (`--gold FILE`, cai_cli/judge/checks.py): the pairs turned into
the stage's own input rows and judged by the stage itself (its questions, passages, gate and both orders), so the
measurement is of the judge exactly as the run will use it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..constitution import behaviours as bh
from ..errors import RowFailure
from ..judge.checks import Cost, conversation_text, cost, gold_first, ordered
from ..judge.gold import GoldPair
from ..rows import conversation
from .label_prefs_config import PairSource
from .label_prefs_summary import LabelTally

if TYPE_CHECKING:
    from .label_prefs import LabelPrefs


class LabelPrefsOnGold:
    """A LabelPrefs stage as judge.checks.GoldJudged: what judging gold pairs costs, P(gold better) per pair, who judges."""

    def __init__(self, stage: LabelPrefs):
        self.stage = stage

    def gold_rows(self, pairs: Sequence[GoldPair]) -> list[dict]:
        """Gold pairs as the stage's input rows (candidates, or the revision and the first reply), the gold answer first
        or second by judge.checks.ordered, so they are judged exactly as the run's rows will be."""
        rows = []
        for pair in pairs:
            first, second = ordered(pair)
            row: dict = {"id": f"gold:{pair.id}", "messages": pair.conversation}
            if self.stage.cfg.source is PairSource.initial_vs_final:
                row.update(response=first, initial_response=second)
            else:
                row["candidates"] = [first, second]
            rows.append(row)
        return rows

    def gold_cost(self, pairs: list[GoldPair]) -> Cost:
        """What judging PAIRS asks of the judge: each question in one or both orders, each hard constraint per answer."""
        stage = self.stage
        items: list[tuple[Sequence[str], int]] = []
        orders = 2 if stage.cfg.swap else 1
        charter = stage.judge_constitution()
        for row in self.gold_rows(pairs):
            conv = conversation(row)
            texts, _ = stage.responses(row)
            said = conversation_text(conv)
            for q in stage.principles_for(str(row["id"]), 0, 1, conv, bh.of_row(charter, row)):
                items.append(((said, *texts, q.question), orders))
            if stage.gate:
                items += [((said, text, h.text), 2) for text in texts for h in stage.gate.constraints]
        return cost(items)

    def gold_probabilities(self, pairs: list[GoldPair], progress) -> list[float | None]:
        """Per gold pair, the label this run would give it, as P(the gold answer is better) (None: the judge failed on
        it), a batch at a time (PROGRESS counts them); the run's own summary counts none of it."""
        stage = self.stage
        stage.start()
        saved_tally, saved_stats = stage.tally, stage.stats
        stage.tally, stage.stats = LabelTally(stage.cfg.mode, None, None), type(stage.stats)()
        size = max(1, stage.engine_opts.batch_size)
        try:
            rows = self.gold_rows(pairs)
            out: list[float | None] = []
            for at in range(0, len(rows), size):
                batch = rows[at : at + size]
                checked: list[dict] = []
                for row in batch:
                    try:
                        stage.check_loaded(row)
                        checked.append(row)
                    except RowFailure:
                        pass
                judged = dict(zip((r["id"] for r in checked), stage.judge(checked))) if checked else {}
                for row, pair in zip(batch, pairs[at : at + len(batch)]):
                    found = judged.get(row["id"])
                    if found is None or isinstance(found, RowFailure) or not found:
                        out.append(None)
                        continue
                    p_first = found[0].p_i
                    out.append(p_first if gold_first(pair) else 1.0 - p_first)
                progress.done(len(batch))
            return out
        finally:
            stage.tally, stage.stats = saved_tally, saved_stats

    def gold_identity(self) -> dict:
        """Who judged the gold pairs and how: what the run's rows will record."""
        stage = self.stage
        charter = stage.judge_constitution()
        return {"model": stage._model_name(), "engine": stage.engine_opts.engine, "constitution": charter.name,
                "constitution_hash": charter.hash, **stage.settings()}
