"""eval's phases: each a stage on the runner (cai_cli/runner/) over the run's prompts, with its own output, side file
and errors in the work folder, so resume, the fingerprint, --restart, progress and the summary line are those of every
stage. A rerun reruns every phase: a finished one resumes all its rows from its side file without loading a model.

The answer phases (the model's answers, the baseline's) generate; the judging phases (the pairwise judge, the refusal
judge, the reward model) read the answers through an AnswerSource, whose identity (the answer phases' fingerprints)
is part of their own fingerprint. Every phase reads the user's prompt files themselves (eval/prompt_sets.py), so its
input, and its side file, stay valid when an answer that failed under --on-error skip succeeds on a rerun, and every
message names the user's file and line.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.pool import EnginePool, engine_key
from ..errors import EngineError, ModelError, RowFailure
from ..jsonl import InputSpec
from ..rows import FieldProblem, check_conversation
from ..runner import RunOptions, run_stage
from ..stages.base import Stage
from ..stages.generate import Generate
from .model_options import in_terms_of


class AnswerSource:
    """Where a judging phase reads a prompt's two answers: the answer phases' outputs by id (`use`, once they have
    finished), or the row's own fields (--answers: `response` and --baseline-field). IDENTITY says which answers these
    are (the answer phases' fingerprints), so a judging phase never resumes verdicts on other answers."""

    def __init__(self, identity: dict, baseline_field: str | None):
        self.identity = identity
        self.baseline_field = baseline_field  # None: no baseline
        self.by_id: dict[str, tuple[str | None, str | None]] | None = None

    def use(self, model: dict[str, dict], baseline: dict[str, dict] | None) -> None:
        """The answer phases' rows by id: each prompt's answers (a failed one is missing)."""
        ids = set(model) | set(baseline or {})
        self.by_id = {rid: (_text(model.get(rid)), _text((baseline or {}).get(rid))) for rid in ids}

    def check(self, row: dict) -> None:
        """Before any work: a row of --answers holds the answers this phase needs (FieldProblem otherwise). The answer
        phases' answers are looked up only for the rows a run takes (`missing`), since --limit and --shard leave the
        others unanswered."""
        if self.by_id is None:
            self.of(row)

    def missing(self, row: dict) -> RowFailure | None:
        """Why ROW cannot be judged (an answer phase failed on it), or None."""
        try:
            self.of(row)
        except FieldProblem as problem:
            return RowFailure(problem.message, problem.field)
        return None

    def answered(self, rows: list[dict], process: Callable[[list[dict]], Sequence]) -> list:
        """PROCESS over the ROWS that have their answers; each other row a RowFailure, in place."""
        missing = [self.missing(r) for r in rows]
        done = iter(process([r for r, m in zip(rows, missing) if m is None]))
        return [m if m is not None else next(done) for m in missing]

    def of(self, row: dict) -> tuple[str, str | None]:
        """(the model's answer, the baseline's or None); FieldProblem when an answer this phase needs is missing."""
        if self.by_id is None:
            model, base = row.get("response"), row.get(self.baseline_field) if self.baseline_field else None
        else:
            model, base = self.by_id.get(str(row["id"]), (None, None))
        if not isinstance(model, str):
            raise FieldProblem("response", "no answer to judge: the model's answer to this prompt failed (see the errors of the answers phase)")
        if self.baseline_field and not isinstance(base, str):
            raise FieldProblem(self.baseline_field, "no baseline answer to judge: the baseline's answer to this prompt failed")
        return model, base


def _text(row: dict | None) -> str | None:
    value = (row or {}).get("response")
    return value if isinstance(value, str) else None


class Answers(Generate):
    """An answer phase: `generate` under the phase's name (the name seeds each row's sample), on the run's shared engine.
    Each row gains `response` and meta.<name> with its token counts and finish_reason."""

    def __init__(self, name: str, engine_opts, sampling, pool: EnginePool | None = None):
        super().__init__(engine_opts, sampling, pool)
        self.name = name


class Reward(Stage):
    """The reward phase: the reward model (`cai score`) scores each answer; rows gain `reward` (and `baseline_reward`)."""

    name = "eval reward"

    def __init__(self, score, answers: AnswerSource):
        super().__init__()
        self.score = score
        self.answers = answers
        self.stats = score.stats

    def settings(self) -> dict:
        return {**self.score.settings(), "answers": self.answers.identity}

    def check(self, row: dict) -> None:
        check_conversation(row)
        self.answers.check(row)

    def start(self) -> None:
        self.score.start()

    def _candidates(self, row: dict) -> dict:
        model, base = self.answers.of(row)
        scored = {k: row[k] for k in ("id", "prompt", "messages") if k in row}
        scored["candidates"] = [model] + ([base] if base is not None else [])
        return scored

    def check_loaded(self, row: dict) -> None:
        if self.answers.missing(row) is None:
            self.score.check_loaded(self._candidates(row))

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        return self.answers.answered(rows, self._scored)

    def _scored(self, rows: list[dict]) -> list[dict]:
        if not rows:
            return []
        for row, scored in zip(rows, self.score.process([self._candidates(r) for r in rows])):
            values = scored["rewards"]["candidates"]
            row["reward"] = values[0]
            if len(values) > 1:
                row["baseline_reward"] = values[1]
        return rows

    def summary(self) -> str:
        return self.score.summary()


@dataclass
class Phase:
    """One phase: its stage, its output's name in the work folder, and how the user named its model and engine
    (OPTIONS, such as {"--model": "--judge-model"}), so an engine's error names the option to change."""

    file: str
    stage: Stage
    options: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> str | None:
        opts = self.stage.engine_opts
        return engine_key(opts) if opts is not None else None


def peak_engines(order: list[Phase]) -> int:
    """The most engines open at once when each stays open from its first phase to its last."""
    keys = [p.engine for p in order]
    spans = {k: (keys.index(k), len(keys) - 1 - keys[::-1].index(k)) for k in keys if k is not None}
    return max((sum(1 for lo, hi in spans.values() if lo <= i <= hi) for i in range(len(keys))), default=0)


def ordered(answering: list[Phase], judging: list[Phase]) -> list[Phase]:
    """The answer phases, then the judging ones, each group in the order (of the few possible) that keeps the fewest
    engines open at once: with the judge being the model under test, the baseline answers first, then the model's
    answers and the judge on one engine. Ties keep the given order."""
    orders = [list(a) + list(j) for a in itertools.permutations(answering) for j in itertools.permutations(judging)]
    return min(orders, key=peak_engines)


class PhaseRunner:
    """Runs phases on the runner, each over the eval's prompt files (INPUTS, read as one) into its own output in WORK,
    sharing the engines of POOL."""

    def __init__(self, inputs: list[InputSpec], work: Path, run: RunOptions, pool: EnginePool):
        self.inputs, self.work, self.run, self.pool = inputs, work, run, pool

    def output(self, phase: Phase) -> Path:
        return self.work / f"{phase.file}.jsonl"

    def errors_file(self, phase: Phase) -> Path:
        return self.work / f"{phase.file}.errors.jsonl"

    def __call__(self, phase: Phase, later: list[Phase]) -> dict[str, dict]:
        """Run PHASE (resuming what an earlier run finished); its rows by id. Engines no LATER phase needs are closed."""
        opts = RunOptions(
            inputs=self.inputs,
            limit=self.run.limit,
            limit_each_input=True,
            shard=self.run.shard,
            output=str(self.output(phase)),
            on_error=self.run.on_error,
            errors=str(self.errors_file(phase)),
            batch_size=self.run.batch_size,
            progress=self.run.progress,
            restart=self.run.restart,
            keep_side_file=True,
            executor=self.run.executor,  # --ray: each phase's batches on the cluster, its engine on the actors
        )
        try:
            run_stage(phase.stage, opts)
        except (EngineError, ModelError) as exc:
            exc.args = (in_terms_of(str(exc), phase.options),)
            raise
        finally:
            self.pool.release({p.engine for p in later if p.engine is not None})
        return {str(r["id"]): r for r in written_rows(self.output(phase))}

    def failures(self, phases: list[Phase]) -> dict[str, dict]:
        """Why a prompt has no result, by id: the first phase's error record for it (a failed answer also leaves the
        judges without it, which they report too)."""
        out: dict[str, dict] = {}
        for phase in phases:
            for rec in written_rows(self.errors_file(phase)):
                row = rec.get("row")
                if isinstance(row, dict) and row.get("id") is not None:
                    out.setdefault(str(row["id"]), rec)
        return out

    def files(self, phase: Phase) -> list[Path]:
        """Everything PHASE wrote in the work folder."""
        out = self.output(phase)
        return [out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".dropped.jsonl"), self.errors_file(phase)]


def written_rows(path: Path) -> list[dict]:
    """The rows of a file a phase wrote in the work folder, read strictly (none where there is no file)."""
    from ..jsonl import EmptyInput, read_rows

    if not path.exists():
        return []
    try:
        return read_rows(str(path))
    except EmptyInput:
        return []
