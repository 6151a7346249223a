"""eval's phases: each a stage on the runner (cai_cli/runner.py) over the run's prompts, with its own output, side file
and errors in the work folder, so resume, the fingerprint, --restart, progress and the summary line are those of every
stage. A rerun reruns every phase: a finished one resumes all its rows from its side file without loading a model.

The answer phases (the model's answers, the baseline's) generate; the judging phases (the pairwise judge, the refusal
judge, the reward model) read the answers through an AnswerSource, whose identity (the answer phases' fingerprints)
is part of their own fingerprint. Every phase reads the same prompts file, so its input, and its side file, stay valid
when an answer that failed under --on-error skip succeeds on a rerun.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EngineError, ModelError
from ..jsonl import display_name, read_done_rows
from ..rows import FieldProblem, check_conversation
from ..runner import RunOptions, run_stage
from ..stages.generate import Generate
from .engines import EnginePool, PooledStage, engine_key, in_terms_of


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


class Answers(PooledStage, Generate):
    """An answer phase: `generate` under the phase's name (the name seeds each row's sample), on the run's shared engine.
    Each row gains `response` and meta.<name> with its token counts and finish_reason."""

    def __init__(self, name: str, engine_opts, sampling):
        super().__init__(engine_opts, sampling)
        self.name = name


class Reward:
    """The reward phase: the reward model (`cai score`) scores each answer; rows gain `reward` (and `baseline_reward`)."""

    name = "eval reward"

    def __init__(self, score, answers: AnswerSource):
        self.score = score
        self.answers = answers
        self.stats = score.stats

    def settings(self) -> dict:
        return {**self.score.settings(), "answers": self.answers.identity}

    def check(self, row: dict) -> None:
        check_conversation(row)
        self.answers.of(row)

    def start(self) -> None:
        self.score.start()

    def _candidates(self, row: dict) -> dict:
        model, base = self.answers.of(row)
        scored = {k: row[k] for k in ("id", "prompt", "messages") if k in row}
        scored["candidates"] = [model] + ([base] if base is not None else [])
        return scored

    def check_loaded(self, row: dict) -> None:
        self.score.check_loaded(self._candidates(row))

    def process(self, rows: list[dict]) -> list[dict]:
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
    (OPTIONS, such as {"--model": "--judge"}), so an engine's error names the option to change."""

    file: str
    stage: Any
    options: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> str | None:
        opts = getattr(self.stage, "engine_opts", None)
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
    """Runs phases on the runner, each over PROMPTS into its own output in WORK, sharing the engines of POOL."""

    def __init__(self, prompts: Path, work: Path, run: RunOptions, pool: EnginePool):
        self.prompts, self.work, self.run, self.pool = prompts, work, run, pool

    def output(self, phase: Phase) -> Path:
        return self.work / f"{phase.file}.jsonl"

    def errors_file(self, phase: Phase) -> Path:
        return self.work / f"{phase.file}.errors.jsonl"

    def __call__(self, phase: Phase, later: list[Phase]) -> dict[str, dict]:
        """Run PHASE (resuming what an earlier run finished); its rows by id. Engines no LATER phase needs are closed."""
        if isinstance(phase.stage, PooledStage):
            phase.stage.pool = self.pool
        opts = RunOptions(
            input=str(self.prompts),
            output=str(self.output(phase)),
            on_error=self.run.on_error,
            errors_file=str(self.errors_file(phase)),
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
        return {str(r["id"]): r for r in read_done_rows(self.output(phase))}

    def error_records(self, phases: list[Phase]) -> list[dict]:
        """The phases' bad and failed rows, one per prompt: the first phase's (a failed answer also leaves the judges
        without it, which they report too)."""
        out: dict = {}
        for phase in phases:
            for rec in read_done_rows(self.errors_file(phase)):
                out.setdefault((rec.get("file"), rec.get("line")), rec)
        return list(out.values())

    def files(self, phase: Phase) -> list[Path]:
        """Everything PHASE wrote in the work folder."""
        out = self.output(phase)
        return [out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".dropped.jsonl"), self.errors_file(phase)]


class Origins:
    """Where each line of the work folder's prompts file came from (the user's file and line), so that a phase's failure
    names the line of the user's file, as a stage's does."""

    def __init__(self, prompts: Path, rows: list[dict], where: dict[str, tuple[str, int]]):
        self.name = display_name(str(prompts))
        self.by_line = {n: where[str(r["id"])] for n, r in enumerate(rows, 1) if str(r["id"]) in where}
        self.at = re.compile(rf"^{re.escape(self.name)}:(\d+): ")

    def message(self, text: str) -> str:
        found = self.at.match(text)
        if found is None or int(found.group(1)) not in self.by_line:
            return text
        file, line = self.by_line[int(found.group(1))]
        return f"{file}:{line}: " + text[found.end():]

    def record(self, rec: dict) -> dict:
        if rec.get("file") == self.name and rec.get("line") in self.by_line:
            file, line = self.by_line[rec["line"]]
            return {**rec, "file": file, "line": line}
        return rec
