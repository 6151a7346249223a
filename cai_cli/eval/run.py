"""eval: answer red-team and benign prompts with a model (and a baseline), then measure.

Every step is a stage on the runner (cai_cli/runner.py) over the user's prompt files themselves, read as one input
(eval/prompts.py: a benchmark's CSV mapped to prompt rows, each row checked and given its `eval_set`; ids are the
stages' own, and each names one prompt), so rows, ids, errors, --limit/--shard, resume and messages naming the
user's file and line are the stages' own:

1. the phases (eval/phases.py), each with its own output and side file in the work folder (OUT.work/, locked before
   anything in it is written; a temporary folder when the rows go to stdout or a device): the model's answers
   (answers.jsonl), then the baseline's (baseline.jsonl); the pairwise judge and the hard-constraint gate
   (judge.jsonl), the refusal judge (refusal-judge.jsonl), the reward model (reward.jsonl);
2. the rows (EvalRows): one row per prompt from the phases' rows and the refusal detector's verdicts, to -o OUT or
   stdout as any stage writes, a prompt a phase failed on to the errors file, and the summary (`summarize`, from
   those rows alone) to OUT's `.summary.json` or --summary.

With `--answers` the rows already hold the answers, and only the judging phases run. Whatever the rows go to, stdout
carries them and nothing else from the start: the phases load models, and what their libraries print goes to
stderr. A rerun of the same command resumes every phase (a finished one loads no model); the work folder goes once
every prompt has its row.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..constitution import Constitution
from ..engines import EngineOptions, Sampling, resolve_engine_name
from ..errors import CaiError, Interrupted, RowFailure
from ..jsonl import InputSpec, display_name
from ..judge import DEFAULT_PRINCIPLES, DEFAULT_PRIORITY, TIER_CONFIDENCE, VIOLATION_THRESHOLD, parse_principles
from ..refusal import DETECTOR_VERSION, detect
from ..rows import set_meta, stage_meta
from ..runner import RunOptions, StageStats, run_stage, stage_inputs
from ..stats import DEFAULT_BOOTSTRAP
from .engines import EnginePool, check_model_folders
from .judge import EvalJudge, EvalRefusalJudge
from .phases import Answers, AnswerSource, Phase, PhaseRunner, Reward, ordered
from .prompts import prompt_inputs
from .stats import answer_cut, judge_declined, summarize

EMBEDDED_LABEL = "embedded"
__all__ = ["EvalConfig", "parse_principles", "run_eval"]

# How the user names each judge's model and engine, for the engines' messages (written for --model, --engine, --base-url).
JUDGE_OPTIONS = {"--model": "--judge", "--engine": "--judge-engine", "--base-url": "--judge-base-url"}
REFUSAL_JUDGE_OPTIONS = {**JUDGE_OPTIONS, "--model": "--refusal-judge"}


@dataclass
class EvalConfig:
    sources: list[tuple[str | None, str | None]]  # (path or None for stdin, forced eval set or None)
    engine: EngineOptions
    sampling: Sampling
    constitution: Constitution
    run: RunOptions
    name: str | None = None
    baseline: str | None = None  # model spec ("embedded" for the embedded model); None: no baseline
    judge: str | None = None  # model spec of the pairwise judge (None: the embedded model)
    principles: int | str = DEFAULT_PRINCIPLES  # principles averaged per comparison, or "all"
    refusal_judge: str | None = None  # model spec of the refusal judge (None: none)
    reward_model: str | None = None
    summary: str | None = None
    bootstrap: int = DEFAULT_BOOTSTRAP
    answers: bool = False  # sources hold answers already (`--answers`): nothing is generated
    baseline_field: str | None = None  # with answers: the field holding the baseline's answer
    benign_field: str | None = None  # the field marking benign rows (default: the risky_looking rules)
    judge_engine: str | None = None  # the judges' back end (None: the model's, --engine)
    judge_base_urls: list[str] = field(default_factory=list)  # the judges' servers (empty: the model's, --base-url)
    suite: str | None = None  # --suite: every prompt file is this benchmark's published CSV (eval/suites.py)
    gold: str | None = None  # with answers: the field naming the better of the two answers (--gold-field)
    priority: str = DEFAULT_PRIORITY.value  # how the tiers' verdicts combine (cai_cli.judge.priority)
    tier_confidence: float = TIER_CONFIDENCE
    gate_threshold: float = VIOLATION_THRESHOLD  # "likely crosses a hard constraint": P(violation) above this

    def __post_init__(self):
        self.principles = parse_principles(self.principles, len(self.constitution.comparisons) or None)

    @property
    def principle_count(self) -> int:
        """--principles as __post_init__ parsed it: K per comparison (0: all of them)."""
        assert isinstance(self.principles, int), "__post_init__ parses --principles"
        return self.principles

    @property
    def compare(self) -> bool:
        """Whether there is a baseline to compare with (and so a pairwise judge)."""
        return self.baseline_field is not None if self.answers else self.baseline is not None

    @property
    def gated(self) -> bool:
        """Whether the constitution has hard constraints, which the judge checks every answer against."""
        return bool(self.constitution.hard_constraints)

    def judge_options(self, spec: str | None) -> EngineOptions:
        """A judge's engine: --judge-engine and --judge-base-url, else the model's own engine and servers."""
        return replace(self.engine, model=spec, engine=self.judge_engine or self.engine.engine, base_urls=list(self.judge_base_urls or self.engine.base_urls))


def model_label(spec: str | None) -> str:
    return EMBEDDED_LABEL if spec in (None, "", "embedded", "default") else str(spec)


def labels(cfg: EvalConfig) -> tuple[str, str | None]:
    """The names of the model and the baseline in rows, summaries and reports."""
    if cfg.answers:
        path = cfg.sources[0][0]
        return cfg.name or (Path(path).name.removesuffix(".jsonl") if path else "answers"), cfg.baseline_field
    model = cfg.name or model_label(cfg.engine.model)
    if cfg.baseline is None:
        return model, None
    base = model_label(cfg.baseline)
    return model, (f"{base} (baseline)" if base == model else base)


def _say(msg: str) -> None:
    print(f"cai eval: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- the phases


@dataclass
class Plan:
    answering: list[Phase]  # the answer phases (none with --answers)
    judging: list[Phase]  # the judge, the refusal judge, the reward model: after every answer phase
    answers: AnswerSource


def plan(cfg: EvalConfig) -> Plan:
    """The run's phases, their stages built before any model loads (a constitution without comparison questions or a bad
    --reward-model is reported at once, not after the answers have been generated)."""
    answering: list[Phase] = []
    if cfg.answers:
        source = AnswerSource({"baseline_field": cfg.baseline_field}, cfg.baseline_field)
    else:
        model = Answers("eval answers", cfg.engine, cfg.sampling)
        answering.append(Phase("answers", model))
        identity = {"answers": model.fingerprint()}
        if cfg.baseline is not None:
            # A model compared with itself should get two independent samples, not the same one twice.
            seed = cfg.sampling.seed + (1 if model_label(cfg.baseline) == model_label(cfg.engine.model) else 0)
            base = Answers("eval baseline answers", replace(cfg.engine, model=cfg.baseline), replace(cfg.sampling, seed=seed))
            answering.append(Phase("baseline", base, {"--model": "--baseline"}))
            identity["baseline"] = base.fingerprint()
        source = AnswerSource(identity, "baseline_response" if cfg.baseline is not None else None)
    judging: list[Phase] = []
    if cfg.compare or cfg.gated:
        judge = EvalJudge(cfg.judge_options(cfg.judge), cfg.constitution, cfg.principle_count, cfg.sampling.seed, source,
                          priority=cfg.priority, tier_confidence=cfg.tier_confidence, gate_threshold=cfg.gate_threshold)
        judging.append(Phase("judge", judge, JUDGE_OPTIONS))
    if cfg.refusal_judge:
        judging.append(Phase("refusal-judge", EvalRefusalJudge(cfg.judge_options(cfg.refusal_judge), cfg.sampling.seed, source), REFUSAL_JUDGE_OPTIONS))
    if cfg.reward_model:
        from ..stages.score import Score

        judging.append(Phase("reward", Reward(Score(cfg.reward_model, dtype=cfg.engine.dtype), source)))
    return Plan(answering, judging, source)


def check_models(cfg: EvalConfig) -> None:
    """Before any work: every judge this run needs can be named, and every local model folder exists; one line each,
    naming the option to change."""
    if (cfg.compare or cfg.gated) and cfg.judge is None and resolve_engine_name(cfg.judge_engine or cfg.engine.engine) == "openai":
        raise CaiError(
            "the judge: on the openai engine the judge is a served model too, and the embedded one is not served; name it with "
            "--judge MODEL (served at --judge-base-url, by default --base-url), or judge here with --judge-engine transformers"
        )
    judge_engine = cfg.judge_engine or cfg.engine.engine
    judged = cfg.compare or cfg.gated or cfg.refusal_judge is not None
    if judged and resolve_engine_name(judge_engine) == "openai" and not cfg.judge_options(None).base_urls:
        raise CaiError("--judge-engine openai needs --judge-base-url URL, the server that serves the judges, e.g. --judge-base-url http://127.0.0.1:8000/v1")
    specs = [] if cfg.answers else [("--model", cfg.engine.model, cfg.engine.engine), ("--baseline", cfg.baseline, cfg.engine.engine)]
    specs += [("--judge", cfg.judge, judge_engine)] if cfg.compare or cfg.gated else []
    specs += [("--refusal-judge", cfg.refusal_judge, judge_engine)]
    check_model_folders(specs)


# --------------------------------------------------------------------------- the run


def run_eval(cfg: EvalConfig) -> dict:
    """The whole evaluation; returns the summary (also written to the summary file, where there is one)."""
    from ..output import OutputLock, Outputs, RowStream, make_folder, remove, remove_empty_folder, temporary_folder

    phases = plan(cfg)
    check_models(cfg)
    rows = EvalRows(cfg)
    run = cfg.run
    reads_stdin = any(path in (None, "-") for path, _ in cfg.sources)
    outputs = Outputs.plan(run.output, run.errors_file, None, summary=True, summary_file=cfg.summary)
    user_inputs = [InputSpec(None if path in (None, "-") else path, copy_of_stdin=path in (None, "-")) for path, _ in cfg.sources]
    outputs.check(stage_inputs(rows, None, user_inputs))  # before any work: what the rows stage would find too late
    work = outputs.out.with_name(outputs.out.name + ".work") if outputs.out is not None else None
    if work is not None and (work.exists() or work.is_symlink()) and not work.is_dir():
        raise CaiError(f"{work}: exists and is not a folder; eval keeps its work there: move it away")
    created = work is not None and not work.exists()
    guard = RowStream(None)  # stdout carries the rows and nothing else, from the first model load on
    pool = EnginePool()
    lock: OutputLock | None = None
    copy: Path | None = None
    done = False
    try:
        with contextlib.ExitStack() as stack:
            if work is None:
                folder = stack.enter_context(temporary_folder("cai-eval-"))
            else:
                folder = make_folder(work)
                lock = OutputLock(folder / "lock", str(outputs.out))  # before anything in it is written
            copy = _keep_stdin(folder) if reads_stdin else None
            inputs = prompt_inputs(cfg.sources, cfg.benign_field, cfg.answers, cfg.baseline_field, cfg.gold, cfg.suite, copy)
            runner = PhaseRunner(inputs, folder, run, pool)
            order = ordered(phases.answering, phases.judging)
            got: dict[str, dict[str, dict]] = {}
            for n, phase in enumerate(order):
                if n == len(phases.answering) and not cfg.answers:
                    phases.answers.use(got["answers"], got.get("baseline"))
                got[phase.file] = runner(phase, order[n + 1 :])
            pool.close()
            rows.use(got, runner.failures(order))
            run_stage(rows, replace(run, input=None, inputs=inputs, limit_each_input=True, errors_file=run.errors_file, dropped_file=None,
                                    summary_file=cfg.summary, restart=True, keep_side_file=False, executor=None))
            done = True
            if rows.failed:
                _say(f"{rows.failed} prompts failed; rerun the same command to retry them (finished work stays in {folder})")
            elif work is not None:
                for phase in reversed(order):  # the later phases first: what is left of an interrupted clean-up stays consistent
                    for path in runner.files(phase):
                        remove(path)
                if copy is not None:
                    remove(copy)
                if lock is not None:
                    lock.release(remove=True)
                    lock = None
                remove_empty_folder(folder)  # one holding files this run did not write stays
    except KeyboardInterrupt:
        if work is None and not done:
            raise Interrupted("interrupted: eval writes its rows to stdout, so none of its work was kept; rerun to start over "
                              "(with -o FILE a rerun resumes)") from None
        raise
    finally:
        pool.close()
        if lock is not None and work is not None:
            # A folder this run made, in which no phase kept anything (bad input, a refused option): gone, as if the
            # run had not started. Otherwise it stays for the rerun to resume.
            left = {p.name for p in work.iterdir()} - {"lock", "stdin.jsonl"}
            if created and not left:
                if copy is not None:
                    remove(copy)
                lock.release(remove=True)
                remove_empty_folder(work)
            else:
                lock.release(remove=False)
        guard.close(failed=not done)
    summary = rows.summary_dict()
    where = outputs.out or outputs.stream or "stdout"
    _say(f"{len(rows.rows)} rows -> {where}" + (f", summary -> {outputs.summary}" if outputs.summary is not None else ""))
    return summary


def _keep_stdin(folder: Path) -> Path:
    """What stdin gives, kept in the work folder: every run of the eval reads the prompts again, and a pipe is read
    once."""
    from ..jsonl import stdin_chunks
    from ..output import write_stream

    return write_stream(folder / "stdin.jsonl", stdin_chunks())


class EvalRows:
    """The eval's last stage: one row per prompt from what its phases found (`use`), written where any stage writes its
    rows; a prompt a phase failed on is a failed row, with that phase's reason (the errors file, and a rerun retries
    it). Its summary JSON is counted from the rows as they leave, whichever run finished them."""

    name = "eval"

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        self.stats = StageStats()
        self.got: dict[str, dict[str, dict]] = {}
        self.why: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.failed = 0

    def use(self, got: dict[str, dict[str, dict]], why: dict[str, dict]) -> None:
        """Each phase's rows by id, and why a prompt has none (its first failed phase's error record)."""
        self.got, self.why = got, why

    def input_files(self) -> dict[str, str]:
        source = self.cfg.constitution.source
        return {} if source.startswith("builtin:") else {"the constitution": source}

    def check(self, row: dict) -> None:
        pass  # the prompt files' rows are checked as they are read (eval/prompts.py)

    def start(self) -> None:
        pass

    def check_loaded(self, row: dict) -> None:
        pass

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        out: list[dict | RowFailure] = []
        for prompt in rows:
            row = assemble(self.cfg, prompt, self.got)
            if row is None:
                self.failed += 1
                rec = self.why.get(str(prompt["id"]), {})
                out.append(RowFailure(rec.get("error") or "no result: a phase did not finish this prompt; rerun to retry it", rec.get("field")))
            else:
                out.append(row)
        return out

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        self.rows += rows

    def summary_dict(self) -> dict:
        if not self.rows:
            raise CaiError("no row could be evaluated (every row was skipped or failed; see the errors file)")
        summary = summarize(self.rows, bootstrap=self.cfg.bootstrap, seed=self.cfg.sampling.seed)
        summary["results"] = self.cfg.run.output if self.cfg.run.output not in (None, "-") else None
        summary["failed"] = self.failed
        for line in notes(self.rows, summary):
            _say(line)
        return summary

    def summary(self) -> str:
        return ""


def assemble(cfg: EvalConfig, prompt: dict, got: dict[str, dict[str, dict]]) -> dict | None:
    """One result row: the prompt (every input field kept), the answers with their finish reasons, the detector's verdicts,
    and what each judging phase found; None when a phase failed on it."""
    rid = str(prompt["id"])
    if any(rid not in rows for rows in got.values()):
        return None
    model, baseline = labels(cfg)
    row = dict(prompt)
    meta: dict = {"model": model}
    if cfg.answers:
        baseline_field = cfg.baseline_field
        meta.update(answers=[display_name(path) for path, _ in cfg.sources], baseline=baseline, baseline_field=baseline_field)
    else:
        baseline_field = "baseline_response" if cfg.baseline is not None else None
        meta.update(model_path=cfg.engine.model)
        for side, phase, stage in (("", "answers", "eval answers"), ("baseline_", "baseline", "eval baseline answers")):
            if phase not in got:
                continue
            done = got[phase][rid]
            info = stage_meta(done, stage)
            row[f"{side}response"] = done["response"]
            row[f"{side}finish_reason"] = info.get("finish_reason")
            meta[f"{side}tokens"] = {"prompt": info.get("prompt_tokens"), "completion": info.get("completion_tokens")}
        if baseline_field is not None:
            meta.update(baseline=baseline, baseline_path=cfg.baseline)
    row["refusal"] = detect(row["response"]).as_dict()
    if baseline_field is not None:
        row["baseline_refusal"] = detect(row[baseline_field]).as_dict()
    if "judge" in got:
        judged_pair = got["judge"][rid]
        for found in ("judge", "gate", "baseline_gate"):
            if found in judged_pair:
                row[found] = judged_pair[found]
    if "refusal-judge" in got:
        judged = got["refusal-judge"][rid]
        for verdict, found in (("refusal", "judge_p_refusal"), ("baseline_refusal", "baseline_judge_p_refusal")):
            if verdict in row:
                row[verdict] = {**row[verdict], **refusal_judgement(row[verdict], judged.get(found))}
    if "reward" in got:
        scored = got["reward"][rid]
        row["reward"] = scored["reward"]
        if "baseline_reward" in scored:
            row["baseline_reward"] = scored["baseline_reward"]
    info = {
        "judge": model_label(cfg.judge) if cfg.compare or cfg.gated else None,
        "refusal_judge": model_label(cfg.refusal_judge) if cfg.refusal_judge else None,
        "engine": cfg.engine.engine,
        "judge_engine": (cfg.judge_engine or cfg.engine.engine) if cfg.compare or cfg.gated or cfg.refusal_judge else None,
        "sampling": None if cfg.answers else cfg.sampling.as_meta(),
        "constitution": cfg.constitution.name,
        "constitution_hash": cfg.constitution.hash,
        "principles": cfg.principles,
        "priority": cfg.priority,
        "detector": DETECTOR_VERSION,
        "reward_model": cfg.reward_model,
        "benign_field": cfg.benign_field,
        "gold": cfg.gold,
    }
    set_meta(row, "eval", {**meta, **info})
    return row


def refusal_judgement(verdict: dict, p_refusal: float | None) -> dict:
    """The refusal judge's P(refused) beside the detector's verdict, and whether the two agree (declined or answered)."""
    if p_refusal is None:
        # A verdict the judge could not give is counted apart, never as a refusal.
        return {"judge_p_refusal": None, "judge_failed": True}
    return {"judge_p_refusal": p_refusal, "judge_agrees": (verdict.get("label") != "answer") == judge_declined(p_refusal)}


def notes(rows: list[dict], summary: dict) -> list[str]:
    """What the table does not show: answers cut at --max-tokens, and where the refusal judge and the detector disagree."""
    lines = []
    cut = {side: sum(answer_cut(r, side) for r in rows) for side in ("model", "baseline")}
    if any(cut.values()):
        where = ", ".join(f"{n} of the {side}'s" for side, n in cut.items() if n)
        lines.append(f"{where} answers were cut at --max-tokens; the summary's `without_truncated` gives every rate without them")
    for name, metrics in summary["models"].items():
        found = metrics.get("refusal_judge_disagreement")
        if found and found["n"]:
            ids = found["detector_only"] + found["judge_only"]
            shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
            lines.append(f"{name}: the refusal judge and the detector disagree on {found['k']} of {found['n']} answers"
                         + (f" ({shown})" if ids else ""))
    return lines
