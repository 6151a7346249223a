"""eval: answer red-team and benign prompts with a model (and a baseline), then measure.

The run writes the prompts it selected to its work folder (OUT.work/prompts.jsonl; a temporary folder without -o),
then runs its phases there (eval/phases.py), each a stage on the runner with its own output and side file:

1. the model's answers (answers.jsonl), then the baseline's (baseline.jsonl);
2. the pairwise judge and the hard-constraint gate (judge.jsonl), the refusal judge (refusal-judge.jsonl), the reward
   model (reward.jsonl);

then builds one row per prompt from the phases' rows and the refusal detector's verdicts, writes the rows to OUT and
the summary (`summarize`, from those rows alone) to OUT's `.summary.json`. With `--answers` the rows already hold the
answers, and only the judging phases run. A rerun of the same command resumes every phase (a finished one loads no
model); the work folder goes once every prompt has its row.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..constitution import Constitution
from ..engines import EngineOptions, Sampling, resolve_engine_name
from ..errors import CaiError
from ..jsonl import display_name, dumps_compact, write_atomic
from ..judge import DEFAULT_PRINCIPLES, DEFAULT_PRIORITY, TIER_CONFIDENCE, VIOLATION_THRESHOLD, parse_principles
from ..refusal import DEFAULT_DETECTOR, RefusalDetector, Verdict
from ..rows import set_meta, stage_meta
from ..runner import RunOptions
from ..stats import DEFAULT_BOOTSTRAP
from .engines import EnginePool, check_model_folders
from .judge import EvalJudge, EvalRefusalJudge
from .phases import Answers, AnswerSource, Origins, Phase, PhaseRunner, Reward, ordered
from .prompts import load_prompts
from .stats import BENIGN, RED_TEAM, answer_cut, judge_declined, summarize

EMBEDDED_LABEL = "embedded"
__all__ = ["EvalConfig", "parse_principles", "run_eval", "summary_path"]

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
    gold: str | None = None  # with answers: the field naming the better of the two answers (--gold)
    priority: str = DEFAULT_PRIORITY.value  # how the tiers' verdicts combine (cai_cli.judge.priority)
    tier_confidence: float = TIER_CONFIDENCE
    gate_threshold: float = VIOLATION_THRESHOLD  # "likely crosses a hard constraint": P(violation) above this
    detector: str = DEFAULT_DETECTOR.value  # --detector: which refusal detector labels the answers (cai_cli.refusal.Detector)

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


def summary_path(cfg: EvalConfig) -> Path | None:
    if cfg.summary:
        return Path(cfg.summary)
    out = cfg.run.output
    if out in (None, "-"):
        return None
    p = Path(out)
    stem = p.name.removesuffix(".jsonl")
    return p.with_name(stem + ".summary.json")


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


def check_outputs(cfg: EvalConfig) -> None:
    """Before any work: what the run writes (-o, --summary, --errors) is a file path, not a folder."""
    out = cfg.run.output if cfg.run.output not in (None, "-") else None
    for option, path in (("-o", out), ("--summary", summary_path(cfg)), ("--errors", cfg.run.errors_file)):
        if path is not None and Path(path).is_dir():
            raise CaiError(f"{option} {path}: is a folder; give a file path, such as {Path(path) / ('eval.summary.json' if option == '--summary' else 'eval.jsonl')}")


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
    """The whole evaluation; returns the summary (also written to the summary file)."""
    where: dict[str, tuple[str, int]] = {}
    prompts, error_records = load_prompts(cfg.sources, cfg.run, cfg.benign_field, answers=cfg.answers, baseline_field=cfg.baseline_field, where=where, suite=cfg.suite, gold=cfg.gold)
    phases = plan(cfg)
    check_outputs(cfg)
    check_models(cfg)
    out_path = Path(cfg.run.output) if cfg.run.output not in (None, "-") else None
    if out_path is None:
        work, temporary = Path(tempfile.mkdtemp(prefix="cai-eval-")), True
    else:
        work, temporary = out_path.with_name(out_path.name + ".work"), False
        work.mkdir(parents=True, exist_ok=True)
    pool = EnginePool()
    try:
        prompts_path = work / "prompts.jsonl"
        write_atomic(prompts_path, prompts)
        what = "answers" if cfg.answers else "prompts"
        _say(f"{len(prompts)} {what} ({sum(r['eval_set'] == RED_TEAM for r in prompts)} red-team, "
             f"{sum(r['eval_set'] == BENIGN for r in prompts)} benign)" + ("" if temporary else f"; work files in {work}"))
        origins = Origins(prompts_path, prompts, where)
        runner = PhaseRunner(prompts_path, work, cfg.run, pool)
        order = ordered(phases.answering, phases.judging)
        got: dict[str, dict[str, dict]] = {}
        try:
            for n, phase in enumerate(order):
                if n == len(phases.answering) and not cfg.answers:
                    phases.answers.use(got["answers"], got.get("baseline"))
                got[phase.file] = runner(phase, order[n + 1 :])
        except CaiError as exc:
            exc.args = (origins.message(str(exc)),)
            raise
        detector = RefusalDetector(cfg.detector)
        verdicts = label_answers(cfg, prompts, got, detector)
        rows = [row for row in (assemble(cfg, prompt, got, verdicts, detector.version) for prompt in prompts) if row is not None]
        failed = len(prompts) - len(rows)
        error_records += [origins.record(rec) for rec in runner.error_records(order)]
        summary = _finish(cfg, rows, error_records, failed, out_path)
        if failed:
            _say(f"{failed} prompts failed; rerun the same command to retry them (finished work stays in {work})")
        elif not temporary:
            for phase in reversed(order):  # the later phases first: what is left of an interrupted clean-up stays consistent
                for path in runner.files(phase):
                    path.unlink(missing_ok=True)
            prompts_path.unlink(missing_ok=True)
            try:
                work.rmdir()
            except OSError:
                pass  # files this run did not write
        return summary
    finally:
        pool.close()
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def label_answers(cfg: EvalConfig, prompts: list[dict], got: dict[str, dict[str, dict]], detector: RefusalDetector) -> dict[str, Verdict]:
    """The detector's verdict on every answer of every finished prompt, by answer: one batch, so the embedded model
    behind detector v4 loads once and reads the answers together."""
    import time

    texts: dict[str, None] = {}
    for prompt in prompts:
        rid = str(prompt["id"])
        if any(rid not in rows for rows in got.values()):
            continue
        if cfg.answers:
            texts.update(dict.fromkeys([prompt["response"]] + ([prompt[cfg.baseline_field]] if cfg.baseline_field else [])))
        else:
            texts.update(dict.fromkeys(got[phase][rid]["response"] for phase in ("answers", "baseline") if phase in got))
    start = time.monotonic()
    found = detector.verdicts(list(texts))
    if texts:
        seconds = time.monotonic() - start
        _say(f"refusal detector {detector.version}: {len(texts)} answers in {seconds:.1f}s ({len(texts) / max(seconds, 1e-9):.1f} answers/s)")
    return dict(zip(texts, found))


def assemble(cfg: EvalConfig, prompt: dict, got: dict[str, dict[str, dict]], verdicts: dict[str, Verdict], detector: str) -> dict | None:
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
    row["refusal"] = verdicts[row["response"]].as_dict()
    if baseline_field is not None:
        row["baseline_refusal"] = verdicts[row[baseline_field]].as_dict()
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
        "detector": detector,
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


def _finish(cfg: EvalConfig, final: list[dict], error_records: list[dict], failed: int, out_path: Path | None) -> dict:
    """Write the rows (OUT or stdout), the errors file and the summary JSON; return the summary."""
    if out_path is not None:
        write_atomic(out_path, final)
        errors_path = Path(cfg.run.errors_file) if cfg.run.errors_file else out_path.with_name(out_path.name + ".errors.jsonl")
        if error_records:
            write_atomic(errors_path, error_records)
            _say(f"bad or failed rows were written to {errors_path}")
        elif errors_path.exists():
            errors_path.unlink()
    else:
        from ..jsonl import StdoutWriter

        StdoutWriter().write(final)
    if not final:
        raise CaiError("no row could be evaluated (every row was skipped or failed; see the errors file)")
    summary = summarize(final, bootstrap=cfg.bootstrap, seed=cfg.sampling.seed)
    summary["results"] = str(out_path) if out_path else None
    summary["failed"] = failed
    for line in notes(final, summary):
        _say(line)
    target = summary_path(cfg)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(dumps_compact(summary) + "\n")
        tmp.replace(target)
        _say(f"{len(final)} rows -> {out_path or 'stdout'}, summary -> {target}")
    return summary


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
