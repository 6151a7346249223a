"""eval: answer red-team and benign prompts with a model (and a baseline), then measure.

Every step is a stage on the runner (cai_cli/runner/) over the user's prompt files themselves, read as one input
(eval/prompt_sets.py: a benchmark's CSV mapped to prompt rows, each row checked and given its `eval_set`; ids are the
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
from dataclasses import dataclass, replace
from pathlib import Path

from ..engines import EngineName, resolve_engine_name
from ..engines.pool import EnginePool
from ..errors import CaiError, Interrupted
from ..jsonl import InputSpec
from ..judge import parse_principles
from ..runner import run_stage, stage_inputs
from .config import JUDGE_OPTIONS, REFUSAL_JUDGE_OPTIONS, EvalConfig, model_label, say
from .judge import EvalJudge, EvalRefusalJudge
from .model_options import check_model_folders
from .phases import Answers, AnswerSource, Phase, PhaseRunner, Reward, ordered
from .prompt_sets import prompt_inputs
from .rows import EvalRows

__all__ = ["JUDGE_OPTIONS", "REFUSAL_JUDGE_OPTIONS", "EvalConfig", "parse_principles", "run_eval"]



# --------------------------------------------------------------------------- the phases


@dataclass
class Plan:
    answering: list[Phase]  # the answer phases (none with --answers)
    judging: list[Phase]  # the judge, the refusal judge, the reward model: after every answer phase
    answers: AnswerSource


def plan(cfg: EvalConfig, pool: EnginePool) -> Plan:
    """The run's phases, their stages built before any model loads (a constitution without comparison questions or a bad
    --reward-model is reported at once, not after the answers have been generated), sharing the engines of POOL."""
    answering: list[Phase] = []
    if cfg.answers:
        source = AnswerSource({"baseline_field": cfg.baseline_field}, cfg.baseline_field)
    else:
        model = Answers("eval answers", cfg.engine, cfg.sampling, pool)
        answering.append(Phase("answers", model))
        identity = {"answers": model.fingerprint()}
        if cfg.baseline is not None:
            # A model compared with itself should get two independent samples, not the same one twice.
            seed = cfg.sampling.seed + (1 if model_label(cfg.baseline) == model_label(cfg.engine.model) else 0)
            base = Answers("eval baseline answers", replace(cfg.engine, model=cfg.baseline), replace(cfg.sampling, seed=seed), pool)
            answering.append(Phase("baseline", base, {"--model": "--baseline"}))
            identity["baseline"] = base.fingerprint()
        source = AnswerSource(identity, "baseline_response" if cfg.baseline is not None else None)
    judging: list[Phase] = []
    if cfg.compare or cfg.gated:
        judge = EvalJudge(cfg.judge_options(cfg.judge_engine.judge_model), cfg.constitution, cfg.principle_count, cfg.sampling.seed, source,
                          priority=cfg.judge.priority, tier_confidence=cfg.judge.tier_confidence, gate_threshold=cfg.judge.gate_threshold)
        judging.append(Phase("judge", judge.share(pool), JUDGE_OPTIONS))
    if cfg.refusal_judge:
        refusal_judge = EvalRefusalJudge(cfg.judge_options(cfg.refusal_judge), cfg.sampling.seed, source)
        judging.append(Phase("refusal-judge", refusal_judge.share(pool), REFUSAL_JUDGE_OPTIONS))
    if cfg.reward_model:
        from ..stages.score import Score

        judging.append(Phase("reward", Reward(Score(cfg.reward_model, dtype=cfg.engine.dtype, pool=pool), source)))
    return Plan(answering, judging, source)


def check_models(cfg: EvalConfig) -> None:
    """Before any work: every judge this run needs can be named, and every local model folder exists; one line each,
    naming the option to change."""
    judge_engine = cfg.judge_options(None)
    if (cfg.compare or cfg.gated) and cfg.judge_engine.judge_model is None and resolve_engine_name(judge_engine.engine) == EngineName.openai:
        raise CaiError(
            "the judge: on the openai engine the judge is a served model too, and the embedded one is not served; name it with "
            "--judge-model MODEL (served at --judge-base-url, by default --base-url), or judge here with --judge-engine transformers"
        )
    judged = cfg.compare or cfg.gated or cfg.refusal_judge is not None
    if judged and resolve_engine_name(judge_engine.engine) == EngineName.openai and not judge_engine.server.base_url:
        raise CaiError("--judge-engine openai needs --judge-base-url URL, the server that serves the judges, e.g. --judge-base-url http://127.0.0.1:8000/v1")
    specs = [] if cfg.answers else [("--model", cfg.engine.model, cfg.engine.engine), ("--baseline", cfg.baseline, cfg.engine.engine)]
    specs += [("--judge-model", cfg.judge_engine.judge_model, judge_engine.engine)] if cfg.compare or cfg.gated else []
    specs += [("--refusal-judge", cfg.refusal_judge, judge_engine.engine)]
    check_model_folders(specs)


# --------------------------------------------------------------------------- the run


def run_eval(cfg: EvalConfig) -> dict:
    """The whole evaluation; returns the summary (also written to the summary file, where there is one)."""
    from ..output import OutputLock, Outputs, RowStream, make_folder, remove, remove_empty_folder, temporary_folder

    pool = EnginePool()
    phases = plan(cfg, pool)
    check_models(cfg)
    rows = EvalRows(cfg)
    run = cfg.run
    reads_stdin = any(path in (None, "-") for path, _ in cfg.sources)
    outputs = Outputs.plan(run.output, run.errors, None, summary=True, summary_file=cfg.summary)
    user_inputs = [InputSpec(None if path in (None, "-") else path, copy_of_stdin=path in (None, "-")) for path, _ in cfg.sources]
    outputs.check(stage_inputs(rows, None, user_inputs))  # before any work: what the rows stage would find too late
    work = outputs.out.with_name(outputs.out.name + ".work") if outputs.out is not None else None
    if work is not None and (work.exists() or work.is_symlink()) and not work.is_dir():
        raise CaiError(f"{work}: exists and is not a folder; eval keeps its work there: move it away")
    created = work is not None and not work.exists()
    guard = RowStream(None)  # stdout carries the rows and nothing else, from the first model load on
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
            run_stage(rows, replace(run, input=None, inputs=inputs, limit_each_input=True, errors=run.errors, dropped=None,
                                    summary_file=cfg.summary, restart=True, keep_side_file=False, executor=None))
            done = True
            if rows.failed:
                say(f"{rows.failed} prompts failed; rerun the same command to retry them (finished work stays in {folder})")
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
    say(f"{len(rows.rows)} rows -> {where}" + (f", summary -> {outputs.summary}" if outputs.summary is not None else ""))
    return summary


def _keep_stdin(folder: Path) -> Path:
    """What stdin gives, kept in the work folder: every run of the eval reads the prompts again, and a pipe is read
    once."""
    from ..jsonl import stdin_chunks
    from ..output import write_stream

    return write_stream(folder / "stdin.jsonl", stdin_chunks())
