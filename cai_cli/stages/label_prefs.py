"""label-prefs: soft, position-debiased, principle-ensembled AI preference labels (RL from AI feedback).

For each pair of responses the judge is asked one or more of the constitution's comparison
principles as a multiple-choice question, in both orders; the answer is read from the
option tokens' log-probs (no decoding), so the label is a probability, not a parsed letter.
The arithmetic lives in `cai_cli.judge`; see docs/label-prefs.md for the output fields.

One input row gives zero (a near-tie under --min-confidence, identical responses: each returned
as a `Dropped` row with its reason, which the runner writes to OUT.dropped.jsonl and counts), one
(best-worst, or a single pair) or several (--pairs all) output rows: `process` returns them as a
list per input row, and the plain runner streams, resumes and finishes them like any stage's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

from ..constitution import ComparisonPrinciple, Constitution, sample_principles
from ..errors import CaiError, ConstitutionError, InputError, RowFailure
from ..judge import (
    ANSWER_PREFIX,
    COT_ANSWER_PREFIX,
    OPTIONS,
    JudgeExample,
    clamp_logodds,
    ensemble,
    judge_messages,
    logodds,
    orders_disagree,
    orient,
    pair_logodds,
    plain_prompt,
    rank,
    sigmoid,
)
from ..rows import (
    FieldProblem,
    check_conversation,
    check_string,
    conversation,
    row_seed,
    set_meta,
    stable_hash,
)
from ..runner import Dropped, Outcome, run_stage, split_outcome
from .base import EngineStage

MODES = ("judge", "revision-wins")
PAIR_SOURCES = ("candidates", "initial-vs-final")
PAIRS = ("best-worst", "all")
FORMATS = ("chat", "plain")
SALT = "label-prefs"


@dataclass
class LabelConfig:
    mode: str = "judge"
    pair: str | None = None  # None: candidates (initial-vs-final under revision-wins)
    pairs: str = "best-worst"
    principles: int = 1
    fmt: str = "chat"
    swap: bool = True
    cot: bool = False
    clamp: tuple[float, float] | None = None
    min_confidence: float | None = None
    gold: str | None = None
    examples: tuple[JudgeExample, ...] = ()
    examples_source: str | None = None

    def __post_init__(self):
        for name, value, allowed in (("--mode", self.mode, MODES), ("--pairs", self.pairs, PAIRS), ("--format", self.fmt, FORMATS)):
            if value not in allowed:
                raise CaiError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
        if self.pair is None:
            self.pair = "initial-vs-final" if self.mode == "revision-wins" else "candidates"
        if self.pair not in PAIR_SOURCES:
            raise CaiError(f"--pair: expected one of {', '.join(PAIR_SOURCES)}, got {self.pair!r}")
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


def load_judge_examples(path: str) -> tuple[JudgeExample, ...]:
    """--judge-examples FILE: JSONL of {prompt|messages, a, b, answer: "A"|"B", question?}."""
    from ..jsonl import display_name, read_lines

    name = display_name(path)
    out = []
    for item in read_lines(path):
        if item.error is not None:
            raise item.error
        row = item.row
        try:
            check_conversation(row)
            check_string(row, "a", "the response shown as (A)")
            check_string(row, "b", "the response shown as (B)")
            if row.get("answer") not in ("A", "B"):
                raise FieldProblem("answer", f"expected \"A\" or \"B\", got {row.get('answer')!r}")
            if "question" in row:
                check_string(row, "question")
        except FieldProblem as problem:
            raise InputError(problem.message, file=name, line=item.line, field=problem.field) from None
        conv = tuple((m["role"], m["content"]) for m in conversation(row))
        out.append(JudgeExample(conv, row["a"], row["b"], row["answer"], row.get("question")))
    if not out:
        raise CaiError(f"{name}: no judge examples (the file is empty)")
    return tuple(out)


class LabelPrefs(EngineStage):
    name = "label-prefs"

    def __init__(self, engine_opts, sampling, constitution: Constitution | None, config: LabelConfig):
        super().__init__(engine_opts, sampling)
        self.cfg = config
        self.constitution = constitution
        if config.mode == "judge":
            if constitution is None or not constitution.comparisons:
                source = constitution.source if constitution is not None else "the constitution"
                raise ConstitutionError(
                    f"{source}: has no comparison questions, which `cai label-prefs` needs "
                    "(use a constitution with `comparisons`, or --mode revision-wins)"
                )
            if not 1 <= config.principles <= len(constitution.comparisons):
                raise CaiError(f"--principles {config.principles}: the constitution has {len(constitution.comparisons)} comparison questions")
        self.clamp = config.clamp
        self.counts = {
            "kept": 0, "dropped_confidence": 0, "dropped_identical": 0, "comparisons": 0,
            "votes": 0, "p_first_sum": 0.0, "swapped": 0, "disagreed": 0,
            "gold_pairs": 0, "gold_correct": 0.0, "gold_p_sum": 0.0, "no_gold": 0,
        }
        self.judge_seconds = 0.0

    # ------------------------------------------------------------------ checks (before any model loads)

    def responses(self, row: dict) -> tuple[list[str], list[str]]:
        """The responses being compared and where each came from (recorded as chosen_source/rejected_source)."""
        if self.cfg.pair == "initial-vs-final":
            # The revision comes first, so an exact tie goes to it.
            return [row["response"], row["initial_response"]], ["response", "initial_response"]
        return list(row["candidates"]), [f"candidates[{i}]" for i in range(len(row["candidates"]))]

    def check(self, row: dict) -> None:
        check_conversation(row)
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
        """Which compared response --gold names: a candidate index, "A"/"B" (candidates 0/1),
        "initial"/"revision" (with --pair initial-vs-final), or the exact text of the better response.
        None when the row has no gold value."""
        field = self.cfg.gold
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

    def check_loaded(self, row: dict) -> None:
        if self.cfg.mode != "judge":
            return
        limit = self.engine.max_context
        if not limit:
            return
        texts, _ = self.responses(row)
        a, b = sorted(texts, key=len)[-2:]
        longest = max((p.question for p in self.constitution.comparisons), key=len)
        msgs = judge_messages(conversation(row), longest, a, b, self.cfg.examples, self.cfg.cot)
        # The answer prefix and the option add a handful of tokens; the reasoning adds up to --max-tokens.
        used = self.engine.count_tokens(msgs) + 16 + (self.sampling.max_tokens if self.cfg.cot else 0)
        if used > limit:
            field = "candidates" if self.cfg.pair == "candidates" else "response"
            raise RowFailure(f"the judge's question is about {used} tokens, longer than the judge's context of {limit}", field=field)

    def _head(self, messages: list[dict]) -> str:
        text = self.engine.render_chat(messages) if self.cfg.fmt == "chat" else plain_prompt(messages)
        # Plain formats end on "Assistant:"; the answer must not run into it.
        return text if not text or text[-1].isspace() else text + " "

    # ------------------------------------------------------------------ judging

    def principles_for(self, row_id: str, i: int, j: int) -> list[ComparisonPrinciple]:
        """K principles drawn per comparison (seeded by --seed), so the ensemble spreads over the constitution."""
        comps = self.constitution.comparisons
        picks = sample_principles(len(comps), self.cfg.principles, self.sampling.seed, f"{row_id}:{i}-{j}", SALT)
        return [comps[k] for k in picks]

    def judge(self, rows: list[dict]) -> list[list[Pair] | RowFailure]:
        """Every pair each row needs (identical responses are not asked: they tie by definition)."""
        jobs = []  # (row index, pair, principle, first, second)
        plans: list[list[tuple[int, int]]] = []
        for r, row in enumerate(rows):
            texts, _ = self.responses(row)
            if self.cfg.pair == "initial-vs-final":
                wanted = [(0, 1)]
            else:
                wanted = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
            wanted = [(i, j) for i, j in wanted if texts[i] != texts[j]]
            plans.append(wanted)
            for i, j in wanted:
                for p in self.principles_for(str(row["id"]), i, j):
                    jobs.append((r, (i, j), p, i, j))
                    if self.cfg.swap:
                        jobs.append((r, (i, j), p, j, i))
        if not jobs:
            return [[] for _ in rows]
        started = time.monotonic()
        convs = [conversation(row) for row in rows]
        texts = [self.responses(row)[0] for row in rows]
        msgs = [judge_messages(convs[r], p.question, texts[r][a], texts[r][b], self.cfg.examples, self.cfg.cot) for r, _, p, a, b in jobs]
        reasoning: list[str | None] = [None] * len(jobs)
        failed: dict[int, RowFailure] = {}
        if self.cfg.cot:
            seeds = [row_seed(self.sampling.seed, SALT, rows[r]["id"], i, j, p.id, a) for r, (i, j), p, a, _ in jobs]
            for k, comp in enumerate(self.chat(msgs, seeds)):
                if comp.error:
                    failed.setdefault(jobs[k][0], RowFailure(comp.error))
                reasoning[k] = (comp.texts[0] if comp.texts else "").strip()
            prompts = [self._head(m) + reasoning[k] + COT_ANSWER_PREFIX for k, m in enumerate(msgs)]
        else:
            prompts = [self._head(m) + ANSWER_PREFIX for m in msgs]
        # Similar lengths side by side, so an engine that batches in order pads little.
        order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
        scores: list = [None] * len(prompts)
        for k, s in zip(order, self.engine.score_options([prompts[k] for k in order], list(OPTIONS))):
            scores[k] = s
        self.judge_seconds += time.monotonic() - started

        by_pair: dict[tuple[int, tuple[int, int]], list] = {}
        for k, (r, pair, p, a, b) in enumerate(jobs):
            d = logodds(scores[k])
            if math.isnan(d):
                failed.setdefault(r, RowFailure("the judge gave no probability to either option (A) or (B)", field="candidates" if self.cfg.pair == "candidates" else "response"))
                continue
            by_pair.setdefault((r, pair), []).append((p, a, clamp_logodds(d, self.clamp), reasoning[k]))

        out: list[list[Pair] | RowFailure] = []
        for r, wanted in enumerate(plans):
            if r in failed:
                out.append(failed[r])
                continue
            out.append([self._combine(i, j, by_pair[(r, (i, j))]) for i, j in wanted])
        return out

    def _combine(self, i: int, j: int, asked: list) -> Pair:
        votes, per_principle, agreed = [], [], []
        # Jobs were made principle by principle, i-first then (with swap) j-first.
        step = 2 if self.cfg.swap else 1
        for s in range(0, len(asked), step):
            group = asked[s : s + step]
            d_i_first = group[0][2]
            d_j_first = group[1][2] if self.cfg.swap else None
            per_principle.append(pair_logodds(d_i_first, d_j_first))
            if d_j_first is not None:
                agreed.append(not orders_disagree(d_i_first, d_j_first))
            for p, first, d, why in group:
                vote = {"principle": p.id, "first": first, "p_first": sigmoid(d)}
                if why is not None:
                    vote["reasoning"] = why
                votes.append(vote)
        return Pair(i, j, ensemble(per_principle), votes, all(agreed) if self.cfg.swap else None)

    # ------------------------------------------------------------------ rows out

    def settings(self) -> dict:
        """The options that shape the rows (for the side file's fingerprint); --gold only adds to the summary."""
        cfg = {k: v for k, v in asdict(self.cfg).items() if k not in ("gold", "examples", "examples_source")}
        cfg["examples"] = stable_hash([asdict(e) for e in self.cfg.examples]) if self.cfg.examples else None
        return cfg

    def process(self, rows: list[dict]) -> list[Outcome]:
        """Per input row, its pairs: one output row each (a Dropped row for a pair left out), or a RowFailure."""
        judged = self.judge(rows) if self.cfg.mode == "judge" else [None] * len(rows)
        out: list[Outcome] = []
        for row, pairs in zip(rows, judged):
            if isinstance(pairs, RowFailure):
                out.append(pairs)
                continue
            entries = self._revision_wins(row) if pairs is None else self._entries(row, pairs)
            set_meta(row, self.name, self._provenance())
            rows_out: list = []
            for e in entries:
                pair_row = {**row, **{k: v for k, v in e.items() if k != "dropped"}}
                if e.get("dropped"):
                    self.counts["dropped_identical" if e["dropped"].startswith("identical") else "dropped_confidence"] += 1
                    rows_out.append(Dropped(pair_row, e["dropped"]))
                else:
                    self.counts["kept"] += 1
                    rows_out.append(pair_row)
            out.append(rows_out)
        return out

    def _side(self, row: dict, text: str) -> list[dict]:
        return conversation(row) + [{"role": "assistant", "content": text}]

    def _entry(self, row, texts, sources, chosen: int, rejected: int, p_chosen: float, extra: dict) -> dict:
        pref = {
            "p_chosen": round(p_chosen, 6),
            "margin": round(2.0 * p_chosen - 1.0, 6),
            "method": self.cfg.mode,
            "chosen_source": sources[chosen],
            "rejected_source": sources[rejected],
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

    def _revision_wins(self, row: dict) -> list[dict]:
        texts, sources = self.responses(row)
        if texts[0] == texts[1]:
            return [self._identical(row, texts, sources, 0, 1)]
        self._score_gold(row, [Pair(0, 1, 1.0, [], None)])
        return [self._entry(row, texts, sources, 0, 1, 1.0, {"votes": [], "orders_agreed": None})]

    def _entries(self, row: dict, pairs: list[Pair]) -> list[dict]:
        texts, sources = self.responses(row)
        self._score_stats(pairs)
        self._score_gold(row, pairs)
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
            {"principle": v["principle"], "first": "chosen" if v["first"] == chosen else "rejected", "p_first": round(v["p_first"], 6),
             **({"reasoning": v["reasoning"]} if "reasoning" in v else {})}
            for v in pair.votes
        ]
        return self._entry(row, texts, sources, chosen, rejected, p_chosen, {"votes": votes, "orders_agreed": pair.agreed, **(extra or {})})

    def _score_stats(self, pairs: list[Pair]) -> None:
        c = self.counts
        for pair in pairs:
            c["comparisons"] += 1
            for v in pair.votes:
                c["votes"] += 1
                c["p_first_sum"] += v["p_first"]
            if self.cfg.swap:
                for a, b in zip(pair.votes[0::2], pair.votes[1::2]):
                    c["swapped"] += 1
                    c["disagreed"] += orders_disagree(a["p_first"] - 0.5, b["p_first"] - 0.5)

    def _score_gold(self, row: dict, pairs: list[Pair]) -> None:
        if self.cfg.gold is None:
            return
        g = self.gold_index(row)
        if g is None:
            self.counts["no_gold"] += 1
            return
        for pair in pairs:
            if g not in (pair.i, pair.j):
                continue
            p_gold = pair.p_i if g == pair.i else 1.0 - pair.p_i
            self.counts["gold_pairs"] += 1
            self.counts["gold_p_sum"] += p_gold
            self.counts["gold_correct"] += 1.0 if p_gold > 0.5 else (0.5 if p_gold == 0.5 else 0.0)

    def _provenance(self) -> dict:
        cfg = self.cfg
        if cfg.mode == "revision-wins":
            return {"mode": cfg.mode, "pair": cfg.pair}
        info = self.provenance(
            mode=cfg.mode,
            pair=cfg.pair,
            pairs=cfg.pairs if cfg.pair == "candidates" else None,
            constitution=self.constitution.name,
            constitution_hash=self.constitution.hash,
            constitution_source=self.constitution.source,
            principles=cfg.principles,
            seed=self.sampling.seed,
            format=cfg.fmt,
            swap=cfg.swap,
            cot=cfg.cot,
            clamp=list(cfg.clamp) if cfg.clamp else None,
            min_confidence=cfg.min_confidence,
            judge_examples=len(cfg.examples),
            judge_examples_source=cfg.examples_source,
        )
        if not cfg.cot:
            info.pop("sampling", None)  # no text is generated: sampling settings played no part
        return info

    def summary(self) -> str:
        c = self.counts
        dropped = c["dropped_confidence"] + c["dropped_identical"]
        parts = [f"pairs {c['kept']} kept, {dropped} dropped"]
        if dropped:
            why = []
            if c["dropped_confidence"]:
                why.append(f"{c['dropped_confidence']} below --min-confidence {self.cfg.min_confidence}")
            if c["dropped_identical"]:
                why.append(f"{c['dropped_identical']} identical")
            parts[0] += f" ({', '.join(why)})"
        if c["votes"]:
            if c["swapped"]:
                parts.append(f"orders disagreed {c['disagreed']}/{c['swapped']} ({100.0 * c['disagreed'] / c['swapped']:.0f}%)")
            parts.append(f"mean p(first shown) {c['p_first_sum'] / c['votes']:.3f}")
            if self.judge_seconds > 0:
                parts.append(f"{c['comparisons'] / self.judge_seconds:.2f} comparisons/s")
        if self.cfg.gold is not None:
            if c["gold_pairs"]:
                parts.append(
                    f"gold accuracy {c['gold_correct'] / c['gold_pairs']:.3f} on {c['gold_pairs']} pairs, mean p(gold) {c['gold_p_sum'] / c['gold_pairs']:.3f}"
                )
            else:
                parts.append("gold accuracy n/a (no pair involved a gold response)")
            if c["no_gold"]:
                parts.append(f"{c['no_gold']} rows without {self.cfg.gold}")
        return " | ".join(parts)


# --------------------------------------------------------------------------- rows out


def expand(outcome: Outcome) -> tuple[list[dict], list[dict]]:
    """One input row's outcome -> (output rows, dropped rows with their `dropped` reason)."""
    return split_outcome(outcome)


def run_label_prefs(stage: LabelPrefs, opts):
    """The plain runner: with -o OUT, dropped pairs go to OUT.dropped.jsonl (counted in the summary)."""
    return run_stage(stage, opts)


__all__ = ["LabelConfig", "LabelPrefs", "expand", "load_judge_examples", "run_label_prefs"]
