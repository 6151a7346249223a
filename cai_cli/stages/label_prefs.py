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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..constitution import behaviours as bh
from ..constitution.passages import budget_for
from ..constitution.requests import sized
from ..constitution.routing import DEFAULT_RANKER, Ranker, check_ranker
from ..errors import CaiError, ConstitutionError, RowFailure, choice
from ..judge import (
    DEFAULT_PRINCIPLES,
    DEFAULT_PRIORITY,
    TIER_CONFIDENCE,
    VIOLATION_THRESHOLD,
    Ask,
    Decision,
    Gate,
    GateResult,
    JudgeConfig,
    JudgeExample,
    JudgeFailure,
    JudgeFormat,
    PairwiseJudge,
    Priority,
    TieredJudge,
    askable,
    comparison_record,
    orient,
    principles_for,
    rank,
    tier_pools,
    with_plain_stop,
)
from ..judge.checks import Cost, conversation_text, cost, gold_first, ordered
from ..judge.gold import GoldPair
from ..judge.tiers import quoted_questions, units_used
from ..rows import (
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    cut_replies,
    is_cut,
    meta_finish_reason,
    set_meta,
    stable_hash,
)
from ..runner import Dropped, Outcome, Tally
from .base import EngineStage
from .label_prefs_summary import LabelTally

if TYPE_CHECKING:
    from ..constitution import ComparisonPrinciple, Constitution


class Mode(str, Enum):
    """--mode: where the label comes from."""

    judge = "judge"  # the AI judge's soft label
    revision_wins = "revision-wins"  # the revision is chosen over the first reply (p_chosen 1.0)


class PairSource(str, Enum):
    """--pair: which responses are compared."""

    candidates = "candidates"  # `candidates`, from `generate --n N`
    initial_vs_final = "initial-vs-final"  # `initial_response` against the revised `response`


class Pairs(str, Enum):
    """--pairs: with more than two candidates, which pairs become rows."""

    best_worst = "best-worst"  # one row: best against worst by mean win probability
    all = "all"  # one row per pair


@dataclass
class LabelConfig:
    mode: str = Mode.judge.value
    pair: str | None = None  # None: candidates (initial-vs-final under revision-wins)
    pairs: str = Pairs.best_worst.value
    principles: int = DEFAULT_PRINCIPLES
    fmt: str = JudgeFormat.chat.value
    swap: bool = True
    cot: bool = False
    clamp: tuple[float, float] | None = None
    min_confidence: float | None = None
    gold: str | None = None
    examples: tuple[JudgeExample, ...] = ()
    examples_source: str | None = None
    priority: str = DEFAULT_PRIORITY.value
    tier_confidence: float = TIER_CONFIDENCE
    gate_threshold: float = VIOLATION_THRESHOLD
    ranker: str = DEFAULT_RANKER.value  # how a document's passage is routed for each tier's question

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(fmt=self.fmt, swap=self.swap, cot=self.cot, clamp=self.clamp, examples=self.examples)

    def __post_init__(self):
        self.mode = choice(Mode, self.mode, "--mode").value
        self.pairs = choice(Pairs, self.pairs, "--pairs").value
        self.fmt = choice(JudgeFormat, self.fmt, "--format").value
        self.priority = choice(Priority, self.priority, "--priority").value
        self.ranker = choice(Ranker, self.ranker, "--ranker").value
        if self.pair is None:
            self.pair = PairSource.initial_vs_final.value if self.mode == Mode.revision_wins else PairSource.candidates.value
        self.pair = choice(PairSource, self.pair, "--pair").value
        if self.mode == "revision-wins" and self.pair != "initial-vs-final":
            raise CaiError("--mode revision-wins compares the revision with the first reply: it needs --pair initial-vs-final")


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


class LabelPrefs(EngineStage):
    name = "label-prefs"
    # Under --ray only the token counts travel back from the actors: the summary's pairs, bias and gold agreement are
    # recounted from the finished rows in the driver (recount); the judge's speed is the driver's own (none under --ray).
    tallies = ("stats",)

    def __init__(self, engine_opts, sampling, constitution: Constitution | None, config: LabelConfig, passage_tokens: int | None = None):
        super().__init__(engine_opts, sampling)
        if constitution is not None:
            # A document's passages sized for the judge (or --passage-tokens): what each question quotes, whole.
            constitution = sized(constitution, budget_for(engine_opts.model, engine_opts.max_model_len, passage_tokens))
        self.cfg = config
        self.constitution = constitution
        if config.mode == "judge":
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
        self.gate = Gate(constitution, config.gate_threshold) if constitution is not None and config.mode == "judge" else None

    def settings(self) -> dict:
        """The options that shape the rows (for the side file's fingerprint); --gold-field only adds to the summary."""
        cfg = self.cfg
        return {
            "mode": cfg.mode, "pair": cfg.pair, "pairs": cfg.pairs, "principles": cfg.principles, "min_confidence": cfg.min_confidence,
            "priority": cfg.priority, "tier_confidence": cfg.tier_confidence, **({"gate_threshold": cfg.gate_threshold} if self.gate else {}),
            **({"passage_tokens": self.constitution.passage_tokens, "ranker": cfg.ranker}
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
        """The responses being compared and where each came from (recorded as chosen_source/rejected_source)."""
        if self.cfg.pair == "initial-vs-final":
            # The revision comes first, so an exact tie goes to it.
            return [row["response"], row["initial_response"]], ["response", "initial_response"]
        return list(row["candidates"]), [f"candidates[{i}]" for i in range(len(row["candidates"]))]

    def check(self, row: dict) -> None:
        check_conversation(row)
        bh.check_field(row)
        if self.cfg.pair == "initial-vs-final":
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
        if self.cfg.pair == "candidates":
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
        want = ("a candidate index, \"A\"/\"B\"" if self.cfg.pair == "candidates" else "\"revision\"/\"initial\"") + " or the exact text of the better response"
        raise FieldProblem(field, f"expected {want}, got {json.dumps(value, ensure_ascii=False)[:60]}")

    # ------------------------------------------------------------------ engine

    def start(self) -> None:
        if self.cfg.mode == "judge":
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
        if self.cfg.mode != "judge":
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
        field = "candidates" if self.cfg.pair == "candidates" else "response"
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
            if self.cfg.pair == "initial-vs-final":
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

        field = "candidates" if self.cfg.pair == "candidates" else "response"
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

    # ------------------------------------------------------------------ measured on gold pairs first (--gold-field FILE)

    def gold_rows(self, pairs: list[GoldPair]) -> list[dict]:
        """Gold pairs as this stage's own input rows (candidates, or the revision and the first reply), the gold answer
        first or second by judge.checks.ordered, so they are judged exactly as the run's rows will be."""
        rows = []
        for pair in pairs:
            first, second = ordered(pair)
            row: dict = {"id": f"gold:{pair.id}", "messages": pair.conversation}
            if self.cfg.pair == PairSource.initial_vs_final.value:
                row.update(response=first, initial_response=second)
            else:
                row["candidates"] = [first, second]
            rows.append(row)
        return rows

    def gold_cost(self, pairs: list[GoldPair]) -> Cost:
        """What judging PAIRS asks of the judge: each question in one or both orders, each hard constraint per answer."""
        items: list[tuple[Sequence[str], int]] = []
        orders = 2 if self.cfg.swap else 1
        charter = self.judge_constitution()
        for row in self.gold_rows(pairs):
            conv = conversation(row)
            texts, _ = self.responses(row)
            said = conversation_text(conv)
            for q in self.principles_for(str(row["id"]), 0, 1, conv, bh.of_row(charter, row)):
                items.append(((said, *texts, q.question), orders))
            if self.gate:
                items += [((said, text, h.text), 2) for text in texts for h in self.gate.constraints]
        return cost(items)

    def gold_probabilities(self, pairs: list[GoldPair], progress) -> list[float | None]:
        """Per gold pair, the label this run would give it, as P(the gold answer is better) (None: the judge failed on
        it), a batch at a time (PROGRESS counts them); the run's own summary counts none of it."""
        self.start()
        saved_tally, saved_stats = self.tally, self.stats
        self.tally, self.stats = LabelTally(self.cfg.mode, None, None), type(self.stats)()
        try:
            rows = self.gold_rows(pairs)
            out: list[float | None] = []
            for at in range(0, len(rows), max(1, self.engine_opts.batch_size)):
                batch = rows[at : at + max(1, self.engine_opts.batch_size)]
                checked: list[dict] = []
                for row in batch:
                    try:
                        self.check_loaded(row)
                        checked.append(row)
                    except RowFailure:
                        pass
                judged = dict(zip((r["id"] for r in checked), self.judge(checked))) if checked else {}
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
            self.tally, self.stats = saved_tally, saved_stats

    def gold_identity(self) -> dict:
        """Who judged the gold pairs and how: what the run's rows will record."""
        return {"model": self._model_name(), "engine": self.engine_opts.engine, "constitution": self.judge_constitution().name,
                "constitution_hash": self.judge_constitution().hash, **self.settings()}

    # ------------------------------------------------------------------ rows out

    def process(self, rows: list[dict]) -> list[Outcome]:
        """Per input row, its pairs: one output row each (a Dropped row for a pair left out), and a Tally of what the
        summary counts beyond them (every comparison made, the gold answer); or a RowFailure."""
        keys = [self.amend_keys(row) for row in rows]
        judged = self.judge(rows) if self.cfg.mode == "judge" else [None] * len(rows)
        out: list[Outcome] = []
        for row, pairs, key in zip(rows, judged, keys):
            if isinstance(pairs, RowFailure):
                out.append(pairs)
                continue
            entries, scored = self._revision_wins(row) if pairs is None else (self._entries(row, pairs), pairs)
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

    def _side(self, row: dict, text: str) -> list[dict]:
        return conversation(row) + [{"role": "assistant", "content": text}]

    def truncated_indices(self, row: dict) -> set[int]:
        """Which compared responses were cut at --max-tokens, by the finish reasons the pipeline recorded."""
        if self.cfg.pair == "candidates":
            reasons = meta_finish_reason(row, "generate")
            return {i for i, r in enumerate(reasons if isinstance(reasons, list) else [reasons]) if is_cut(r)}
        # The revised response and the first reply, each judged by the round (or generate) that wrote it.
        cut = cut_replies(row)
        return {k for k, text in enumerate((row.get("response"), row.get("initial_response"))) if isinstance(text, str) and cut.get(text, False)}

    def _entry(self, row, texts, sources, chosen: int, rejected: int, p_chosen: float, extra: dict) -> dict:
        cut = self.truncated_indices(row)
        pref = {
            "p_chosen": round(p_chosen, 6),
            "margin": round(2.0 * p_chosen - 1.0, 6),
            "method": self.cfg.mode,
            "chosen_source": sources[chosen],
            "rejected_source": sources[rejected],
            # A side cut at --max-tokens may have lost (or won) for being cut: marked, never dropped silently.
            "truncated": [side for side, k in (("chosen", chosen), ("rejected", rejected)) if k in cut],
            **extra,
        }
        entry = {"chosen": self._side(row, texts[chosen]), "rejected": self._side(row, texts[rejected]), "preference": pref}
        if self.cfg.min_confidence is not None and p_chosen < self.cfg.min_confidence:
            entry["dropped"] = f"p_chosen {p_chosen:.4f} is below --min-confidence {self.cfg.min_confidence}"
        return entry

    def _identical(self, row, texts, sources, i: int, j: int) -> dict:
        return {
            "chosen": self._side(row, texts[i]),
            "rejected": self._side(row, texts[j]),
            "preference": {"p_chosen": 0.5, "margin": 0.0, "method": self.cfg.mode, "chosen_source": sources[i], "rejected_source": sources[j]},
            "dropped": "identical responses: no preference to learn",
        }

    def _revision_wins(self, row: dict) -> tuple[list[dict], list[Pair] | None]:
        """The row's one entry, and the pair scored against --gold-field (None for identical texts: no pair at all)."""
        texts, sources = self.responses(row)
        if texts[0] == texts[1]:
            return [self._identical(row, texts, sources, 0, 1)], None
        return [self._entry(row, texts, sources, 0, 1, 1.0, {"votes": [], "orders_agreed": None})], [Pair(0, 1, 1.0, [], None)]

    def _entries(self, row: dict, pairs: list[Pair]) -> list[dict]:
        texts, sources = self.responses(row)
        by_ij = {(p.i, p.j): p for p in pairs}
        if self.cfg.pair == "candidates" and self.cfg.pairs == "all":
            entries = []
            for i in range(len(texts)):
                for j in range(i + 1, len(texts)):
                    e = self._pair_entry(row, texts, sources, by_ij[(i, j)]) if (i, j) in by_ij else self._identical(row, texts, sources, i, j)
                    e["id"] = f"{row['id']}:{i}-{j}"
                    entries.append(e)
            return entries
        if len(texts) == 2 or self.cfg.pair == "initial-vs-final":
            return [self._pair_entry(row, texts, sources, pairs[0]) if pairs else self._identical(row, texts, sources, 0, 1)]
        # Identical candidates tie (0.5) without being asked.
        p_beats = {(i, j): (by_ij[(i, j)].p_i if (i, j) in by_ij else 0.5) for i in range(len(texts)) for j in range(i + 1, len(texts))}
        order, rates = rank(len(texts), p_beats)
        best, worst = order[0], order[-1]
        ranking = {"ranking": order, "win_rates": [round(x, 6) for x in rates]}
        key = (min(best, worst), max(best, worst))
        if key not in by_ij:
            return [{**self._identical(row, texts, sources, best, worst)}]
        # In a preference cycle the direct comparison, not the ranking, decides which side is chosen.
        return [self._pair_entry(row, texts, sources, by_ij[key], ranking)]

    def _pair_entry(self, row, texts, sources, pair: Pair, extra: dict | None = None) -> dict:
        i_wins, p_chosen = orient(pair.p_i)
        chosen, rejected = (pair.i, pair.j) if i_wins else (pair.j, pair.i)
        votes = [
            {"principle": v["principle"], **({"passage": v["passage"]} if "passage" in v else {}),
             "first": "chosen" if v["first"] == chosen else "rejected", "p_first": round(v["p_first"], 6),
             **({"reasoning": v["reasoning"]} if "reasoning" in v else {})}
            for v in pair.votes
        ]
        tiers = self._tier_fields(pair.decision, chosen == pair.i, row) if pair.decision is not None else {}
        return self._entry(row, texts, sources, chosen, rejected, p_chosen, {"votes": votes, "orders_agreed": pair.agreed, **tiers, **(extra or {})})

    def _tier_fields(self, decision: Decision, chosen_is_x: bool, row: dict) -> dict:
        """preference's record of the tiers, the gate and what the label was made from, from the chosen side."""

        def oriented(p: float) -> float:
            return round(p if chosen_is_x else 1.0 - p, 6)

        constitution = self.judge_constitution()
        shown = {q.id: q for q in decision.asked}

        def tier_record(t) -> dict:
            quoted = [shown[pid] for pid in t.principles if getattr(shown.get(pid), "passage", None) is not None]
            where = {"passage": quoted[0].passage, "passage_hash": quoted[0].passage_hash} if quoted else {}
            return {"p_chosen": oriented(t.p_x), "principles": {pid: oriented(p) for pid, p in t.principles.items()}, **where}

        fields: dict = {
            "priority": self.cfg.priority,
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
            fields["used"]["ranker"] = self.cfg.ranker  # what routed the passages the questions quoted
        return fields

    def _provenance(self) -> dict:
        cfg = self.cfg
        if cfg.mode == "revision-wins":
            return {"mode": cfg.mode, "pair": cfg.pair}
        constitution = self.judge_constitution()
        info = self.provenance(
            mode=cfg.mode,
            pair=cfg.pair,
            pairs=cfg.pairs if cfg.pair == "candidates" else None,
            constitution=constitution.name,
            constitution_hash=constitution.hash,
            constitution_source=constitution.source,
            principles=cfg.principles,
            seed=self.sampling.seed,
            format=cfg.fmt,
            swap=cfg.swap,
            cot=cfg.cot,
            clamp=list(cfg.clamp) if cfg.clamp else None,
            clamp_applies_to="each principle, after its two orders are combined" if cfg.clamp else None,
            min_confidence=cfg.min_confidence,
            priority=cfg.priority,
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
