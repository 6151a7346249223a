"""label-prefs: soft, position-debiased, principle-ensembled AI preference labels (RL from AI feedback).

For each pair of responses the judge is asked one or more of the constitution's comparison
principles as a multiple-choice question, in both orders; the answer is read from the
option tokens' log-probs (no decoding), so the label is a probability, not a parsed letter.
With priority tiers, each tier's questions are asked and each tier's verdict kept; --priority combines them
(cai_cli.judge.priority). Every compared response is first checked against every hard constraint (the gate,
cai_cli.judge.gate): a response that crosses one the other does not is rejected whatever the questions say.
The arithmetic lives in `cai_cli.judge`; see docs/label-prefs.md for the output fields.

One input row gives zero (a near-tie under --min-confidence, identical responses: each returned
as a `Dropped` row with its reason, which the runner writes to OUT.dropped.jsonl and counts), one
(best-worst, or a single pair) or several (--pairs all) output rows: `process` returns them as a
list per input row, and the plain runner streams, resumes and finishes them like any stage's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..constitution import behaviours as bh
from ..constitution.passages import budget_for
from ..constitution.requests import sized
from ..constitution.routing import check_ranker
from ..errors import CaiError, ConstitutionError, RowFailure
from ..judge import (
    Ask,
    Gate,
    GateResult,
    JudgeFailure,
    PairwiseJudge,
    TieredJudge,
    askable,
    comparison_record,
    principles_for,
    tier_pools,
    with_plain_stop,
)
from ..judge.tiers import quoted_questions
from ..rows import (
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    set_meta,
    stable_hash,
)
from ..runner import Dropped, Outcome, Tally
from .base import EngineStage
from .label_prefs_config import LabelConfig, Mode, Pairs, PairSource, responses
from .label_prefs_rows import Pair, PreferenceRows, decided_by_passage
from .label_prefs_summary import LabelTally

__all__ = ["LabelConfig", "LabelPrefs", "Mode", "PairSource", "Pairs", "decided_by_passage"]

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution


class LabelPrefs(EngineStage):
    name = "label-prefs"
    # Under --ray only the token counts travel back from the actors: the summary's pairs, bias and gold agreement are
    # recounted from the finished rows in the driver (recount); the judge's speed is the driver's own (none under --ray).
    tallies = ("stats",)
    writes_summary = True  # OUT.summary.json: counts, the judge's bias, accuracy against --gold-field

    def __init__(self, engine_opts, sampling, constitution: Constitution | None, config: LabelConfig, passage_tokens: int | None = None):
        super().__init__(engine_opts, sampling)
        if constitution is not None:
            # A document's passages sized for the judge (or --passage-tokens): what each question quotes, whole.
            constitution = sized(constitution, budget_for(engine_opts.model, engine_opts.vllm.max_model_len, passage_tokens))
        self.cfg = config
        self.constitution = constitution
        if config.mode is Mode.judge:
            if constitution is None or not askable(constitution):
                source = constitution.source if constitution is not None else "the constitution"
                raise ConstitutionError(
                    f"{source}: has no comparison questions, which `cai label-prefs` needs "
                    "(use a constitution with `comparisons`, or --mode revision-wins)"
                )
            if not 1 <= config.principles <= askable(constitution):
                raise CaiError(f"--principles {config.principles}: the constitution has {askable(constitution)} comparison questions")
            if constitution.is_document:
                check_ranker(config.ranker)
        self.judge_cfg = config.judge_config()
        self.tally = LabelTally(config.mode, config.gold, config.min_confidence)
        self._judge: PairwiseJudge | None = None
        self.gate = Gate(constitution, config.gate_threshold) if constitution is not None and config.mode is Mode.judge else None
        self.rows_out = PreferenceRows(config, constitution, self.gate)

    def settings(self) -> dict:
        """The options that shape the rows (for the side file's fingerprint); --gold-field only adds to the summary."""
        cfg = self.cfg
        return {
            "mode": cfg.mode.value, "pair": cfg.source.value, "pairs": cfg.pairs.value, "principles": cfg.principles,
            "min_confidence": cfg.min_confidence, "priority": cfg.priority.value, "tier_confidence": cfg.tier_confidence, **({"gate_threshold": cfg.gate_threshold} if self.gate else {}),
            **({"passage_tokens": self.constitution.passage_tokens, "ranker": cfg.ranker.value}
               if self.constitution is not None and self.constitution.is_document else {}),
            **self.judge_cfg.settings(),
            "judge_examples": stable_hash([asdict(e) for e in cfg.examples]) if cfg.examples else None,
        }

    def input_files(self) -> dict[str, str]:
        files = super().input_files()
        if self.cfg.examples_source:
            files["--judge-examples"] = self.cfg.examples_source
        return files

    # ------------------------------------------------------------------ checks (before any model loads)

    def responses(self, row: dict) -> tuple[list[str], list[str]]:
        return responses(row, self.cfg.source)

    def check(self, row: dict) -> None:
        check_conversation(row)
        bh.check_field(row)
        if self.cfg.pair is PairSource.initial_vs_final:
            check_string(row, "response", "the revised reply; run `cai critique | cai revise` first")
            check_string(row, "initial_response", "the first reply, set by `cai generate`")
        else:
            cands = row.get("candidates")
            if cands is None:
                raise FieldProblem("candidates", "missing; run `cai generate --n 2` (or more) first, or use --pair initial-vs-final")
            if not isinstance(cands, list):
                raise FieldProblem("candidates", f"expected a list of strings, got {type(cands).__name__}")
            if len(cands) < 2:
                raise FieldProblem("candidates", f"has {len(cands)} candidate{'s' if len(cands) != 1 else ''}; need at least 2 to compare")
            for i, c in enumerate(cands):
                if not isinstance(c, str):
                    raise FieldProblem(f"candidates[{i}]", f"expected a string, got {type(c).__name__}")
        if self.cfg.gold is not None:
            self.gold_index(row)

    def gold_index(self, row: dict) -> int | None:
        """Which compared response --gold-field names: a candidate index, "A"/"B" (candidates 0/1),
        "initial"/"revision" (with --pair initial-vs-final), or the exact text of the better response.
        None when the row has no gold value."""
        field = self.cfg.gold
        assert field is not None, "gold_index is asked only under --gold-field"
        value = row.get(field)
        if value is None:
            return None
        texts, _ = self.responses(row)
        if self.cfg.pair is PairSource.candidates:
            if isinstance(value, int) and not isinstance(value, bool):
                if 0 <= value < len(texts):
                    return value
                raise FieldProblem(field, f"candidate index {value} is out of range (the row has {len(texts)} candidates)")
            if value in ("A", "B"):
                return "AB".index(value)
        elif isinstance(value, str):
            named = {"revision": 0, "final": 0, "response": 0, "initial": 1, "initial_response": 1}
            if value.lower() in named:
                return named[value.lower()]
        if isinstance(value, str) and value in texts:
            return texts.index(value)
        want = ("a candidate index, \"A\"/\"B\"" if self.cfg.pair is PairSource.candidates else "\"revision\"/\"initial\"") + " or the exact text of the better response"
        raise FieldProblem(field, f"expected {want}, got {json.dumps(value, ensure_ascii=False)[:60]}")

    # ------------------------------------------------------------------ engine

    def start(self) -> None:
        if self.cfg.mode is Mode.judge:
            super().start()

    def pairwise_judge(self) -> PairwiseJudge:
        """The one judge (cai_cli.judge), on this stage's engine; its generations count in the summary line."""
        if self._judge is None:
            complete = None
            engine_complete = getattr(self.engine, "complete", None)  # only engines that can continue raw text have it
            if callable(engine_complete):
                complete = lambda prompts, seeds: self.count(engine_complete(prompts, with_plain_stop(self.sampling), seeds=seeds))
            self._judge = PairwiseJudge(self.engine, self.judge_cfg, self.sampling, chat=self.chat, complete=complete)
        return self._judge

    def check_loaded(self, row: dict) -> None:
        if self.cfg.mode is not Mode.judge:
            return
        judge = self.pairwise_judge()  # fails here, before any work, when the engine cannot run the chosen format
        limit = self.started_engine().max_context
        if not limit:
            return
        texts, _ = self.responses(row)
        a, b = sorted(texts, key=len)[-2:]
        conv = conversation(row)
        # Every question this row could ask, as the judge is shown it (after the passage routed for its tier).
        every = [q for _, pool in tier_pools(self.judge_constitution()) for q in pool]
        states = bh.of_row(self.judge_constitution(), row)
        longest = max((q.question for q in quoted_questions(self.judge_constitution(), every, conv, states, self.cfg.ranker)), key=len)
        # The answer prefix and the option add a handful of tokens; the reasoning adds up to --max-tokens.
        used = judge.prompt_tokens(conv, longest, a, b) + 16 + (self.sampling.max_tokens if self.cfg.cot else 0)
        field = "candidates" if self.cfg.pair is PairSource.candidates else "response"
        if used > limit:
            raise RowFailure(f"the judge's question is about {used} tokens, longer than the judge's context of {limit}", field=field)
        if self.gate:
            told = bh.note(self.judge_constitution(), states)
            gate_used = self.started_engine().count_tokens(self.gate.longest_question(conv, max(texts, key=len), told)) + 4
            if gate_used > limit:
                raise RowFailure(f"the hard-constraint gate's question is about {gate_used} tokens, longer than the judge's context of {limit}", field=field)

    # ------------------------------------------------------------------ judging

    def judge_constitution(self) -> Constitution:
        """The constitution whose comparisons the judge asks; __init__ requires one under --mode judge."""
        assert self.constitution is not None, "--mode judge has a constitution (checked in __init__)"
        return self.constitution

    def principles_for(self, row_id: str, i: int, j: int, conv: list[dict] | None = None, behaviours: dict | None = None) -> list[ComparisonPrinciple]:
        """The questions one comparison asks (cai_cli.judge.tiers): K per tier under holistic and strict, K of all
        under flat, drawn per comparison (seeded by --seed), so the ensemble spreads over the constitution. With the
        row's conversation CONV, each as the judge is shown it (a document's: after the passage routed for its tier, told
        the instructable BEHAVIOURS in force)."""
        return principles_for(self.judge_constitution(), self.cfg.principles, self.sampling.seed, f"{row_id}:{i}-{j}", self.cfg.priority, conv, behaviours,
                              self.cfg.ranker)

    def gate_results(self, rows: list[dict]) -> list[dict[str, GateResult]]:
        """Per row, each compared response's gate result (by text; every response once), in one scoring call."""
        if not self.gate:
            return [{} for _ in rows]
        items = [(r, text) for r, row in enumerate(rows) for text in dict.fromkeys(self.responses(row)[0])]
        told = [bh.note(self.judge_constitution(), bh.of_row(self.judge_constitution(), rows[r])) for r, _ in items]
        checked = self.gate.check(self.started_engine(), [(conversation(rows[r]), text) for r, text in items], told)
        out: list[dict[str, GateResult]] = [{} for _ in rows]
        for (r, text), result in zip(items, checked):
            out[r][text] = result
        return out

    def judge(self, rows: list[dict]) -> list[list[Pair] | RowFailure]:
        """Every pair each row needs (identical responses are not asked: they tie by definition)."""
        asks: list[Ask] = []
        where: list[tuple[int, int, int]] = []  # (row index, i, j) per ask
        plans: list[list[tuple[int, int]]] = []
        started = time.monotonic()
        gates = self.gate_results(rows)
        pair_gates: list[tuple[GateResult, GateResult] | None] = []
        for r, row in enumerate(rows):
            texts, _ = self.responses(row)
            if self.cfg.pair is PairSource.initial_vs_final:
                wanted = [(0, 1)]
            else:
                wanted = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
            wanted = [(i, j) for i, j in wanted if texts[i] != texts[j]]
            plans.append(wanted)
            for i, j in wanted:
                key = f"{row['id']}:{i}-{j}"
                conv = conversation(row)
                states = bh.of_row(self.judge_constitution(), row)
                asks.append(Ask(conv, texts[i], texts[j], self.principles_for(str(row["id"]), i, j, conv, states), key=key))
                where.append((r, i, j))
                pair_gates.append((gates[r][texts[i]], gates[r][texts[j]]) if gates[r] else None)
        if not asks:
            self.tally.judge_seconds += time.monotonic() - started
            return [[] for _ in rows]
        tiered = TieredJudge(self.pairwise_judge(), self.judge_constitution(), self.cfg.priority, self.cfg.tier_confidence)
        decisions = tiered.decide(asks, pair_gates)
        self.tally.judge_seconds += time.monotonic() - started
        self.tally.compared_here += len(asks)

        field = "candidates" if self.cfg.pair is PairSource.candidates else "response"
        failed: dict[int, RowFailure] = {}
        by_pair: dict[tuple[int, int, int], Pair] = {}
        for (r, i, j), ask, decision in zip(where, asks, decisions):
            if isinstance(decision, JudgeFailure):
                failed.setdefault(r, RowFailure(decision.reason, field=field))
                continue
            votes = [{"principle": v.principle, **({"passage": pid} if (pid := decision.passage_of(v.principle)) else {}),
                      "first": i if v.x_first else j, "p_first": v.p_first, **({"reasoning": v.reasoning} if v.reasoning is not None else {})}
                     for v in decision.verdict.votes]
            by_pair[(r, i, j)] = Pair(i, j, decision.p_x, votes, decision.verdict.orders_agreed, decision, comparison_record(ask, decision.verdict))
        return [failed[r] if r in failed else [by_pair[(r, i, j)] for i, j in wanted] for r, wanted in enumerate(plans)]

    # ------------------------------------------------------------------ rows out

    def process(self, rows: list[dict]) -> list[Outcome]:
        """Per input row, its pairs: one output row each (a Dropped row for a pair left out), and a Tally of what the
        summary counts beyond them (every comparison made, the gold answer); or a RowFailure."""
        keys = [self.amend_keys(row) for row in rows]
        judged = self.judge(rows) if self.cfg.mode is Mode.judge else [None] * len(rows)
        out: list[Outcome] = []
        for row, pairs, key in zip(rows, judged, keys):
            if isinstance(pairs, RowFailure):
                out.append(pairs)
                continue
            entries, scored = self.rows_out.revision_wins(row) if pairs is None else (self.rows_out.entries(row, pairs), pairs)
            set_meta(row, self.name, {**self._provenance(), **key})
            rows_out: list = []
            for e in entries:
                pair_row = {**row, **{k: v for k, v in e.items() if k != "dropped"}}
                rows_out.append(Dropped(pair_row, e["dropped"]) if e.get("dropped") else pair_row)
            tally: dict = {"compared": [p.compared for p in scored or () if p.compared is not None]}
            if self.cfg.gold is not None and scored is not None:
                tally["gold"] = {"index": self.gold_index(row), "pairs": [[p.i, p.j, p.p_i] for p in scored]}
            out.append([*rows_out, Tally(tally)])
        return out

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """Count one finished input row into the summary (see label_prefs_summary)."""
        self.tally.recount(rows, dropped, tallies)

    def _provenance(self) -> dict:
        cfg = self.cfg
        if cfg.mode is Mode.revision_wins:
            return {"mode": cfg.mode.value, "pair": cfg.source.value}
        constitution = self.judge_constitution()
        info = self.provenance(
            mode=cfg.mode.value,
            pair=cfg.source.value,
            pairs=cfg.pairs.value if cfg.pair is PairSource.candidates else None,
            constitution=constitution.name,
            constitution_hash=constitution.hash,
            constitution_source=constitution.source,
            principles=cfg.principles,
            seed=self.sampling.seed,
            format=cfg.fmt.value,
            swap=cfg.swap,
            cot=cfg.cot,
            clamp=list(cfg.clamp) if cfg.clamp else None,
            clamp_applies_to="each principle, after its two orders are combined" if cfg.clamp else None,
            min_confidence=cfg.min_confidence,
            priority=cfg.priority.value,
            tier_confidence=cfg.tier_confidence,
            gate_threshold=cfg.gate_threshold if self.gate else None,
            judge_examples=len(cfg.examples),
            judge_examples_source=cfg.examples_source,
        )
        if not cfg.cot:
            info.pop("sampling", None)  # no text is generated: sampling settings played no part
        return info

    def summary_dict(self) -> dict:
        """The summary JSON (`OUT.summary.json`): counts, the judge's bias, and accuracy against --gold-field."""
        return self.tally.as_dict(self.settings())

    def summary(self) -> str:
        return self.tally.line()
