"""eval: answer red-team and benign prompts with a model (and a baseline), then measure.

Phases, each a rows-in/rows-out stage run through the stage contract (`run_stage`), each with
its own file in a work folder beside the output (`OUT.work/`), so a crash or Ctrl-C costs at
most one batch and a rerun of the same command picks up where it stopped:

1. the model answers every prompt (`generate`), then the baseline does;
2. the rule-based refusal detector labels both answers (no model needed);
3. the judge compares the two answers, in both orders: on red-team prompts with the
   constitution's comparison questions ("which is less harmful?"), on benign prompts with
   helpfulness questions; with `--refusal-judge` it also says whether each answer refused;
4. with `--reward-model`, the reward model scores both answers (`cai score`);
5. the rows go to OUT, the summary (`summarize`) to OUT's `.summary.json`.

Each engine is loaded for its phase and closed after it, so a GPU holds one model at a time.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..constitution import Constitution
from ..engines import EngineOptions, Sampling
from ..errors import CaiError, RowFailure
from ..jsonl import display_name, dumps_compact, read_done_rows, write_atomic
from ..judge import DEFAULT_PRINCIPLES, DEFAULT_PRIORITY, TIER_CONFIDENCE, VIOLATION_THRESHOLD, parse_principles
from ..refusal import DETECTOR_VERSION, detect
from ..rows import stable_hash
from ..runner import RunOptions, run_stage
from ..stats import DEFAULT_BOOTSTRAP
from .judge import EvalJudge
from .prompts import load_prompts
from .stats import BENIGN, RED_TEAM, summarize

EMBEDDED_LABEL = "embedded"

# --------------------------------------------------------------------------- the whole run


@dataclass
class EvalConfig:
    sources: list[tuple[str | None, str | None]]  # (path or None for stdin, forced eval set or None)
    engine: EngineOptions
    sampling: Sampling
    constitution: Constitution
    run: RunOptions
    name: str | None = None
    baseline: str | None = None  # model spec ("embedded" for the embedded model); None: no baseline
    judge: str | None = None  # model spec of the judge (None: the embedded model)
    principles: int | str = DEFAULT_PRINCIPLES  # principles averaged per comparison, or "all"
    refusal_judge: bool = False
    reward_model: str | None = None
    summary: str | None = None
    bootstrap: int = DEFAULT_BOOTSTRAP
    answers: bool = False  # sources hold answers already (`--answers`): nothing is generated
    baseline_field: str | None = None  # with answers: the field holding the baseline's answer
    benign_field: str | None = None  # the field marking benign rows (default: the risky_looking rules)
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


def model_label(spec: str | None) -> str:
    return EMBEDDED_LABEL if spec in (None, "", "embedded", "default") else str(spec)


def labels(cfg: EvalConfig) -> tuple[str, str | None]:
    model = cfg.name or model_label(cfg.engine.model)
    if cfg.baseline is None:
        return model, None
    base = model_label(cfg.baseline)
    return model, (f"{base} (baseline)" if base == model else base)


def _say(msg: str) -> None:
    print(f"cai eval: {msg}", file=sys.stderr)


def _phase_done(out: Path) -> bool:
    return out.exists() and not out.with_name(out.name + ".partial").exists()


def _phase(stage, inp: Path, out: Path, run: RunOptions) -> dict[str, dict]:
    """Run one phase unless its output is already complete; rows by id."""
    if not _phase_done(out):
        opts = RunOptions(
            input=str(inp),
            output=str(out),
            on_error=run.on_error,
            errors_file=str(out.with_name(out.name + ".errors.jsonl")),
            batch_size=run.batch_size,
            progress=run.progress,
        )
        run_stage(stage, opts)
        close = getattr(getattr(stage, "engine", None), "close", None)
        if close:
            close()
    return {str(r["id"]): r for r in read_done_rows(out)}


def _fingerprint(cfg: EvalConfig, prompts: list[dict]) -> dict:
    e = cfg.engine
    return {
        "prompts": stable_hash(prompts),
        "model": e.model,
        "name": cfg.name,
        "baseline": cfg.baseline,
        "engine": [e.engine, e.dtype],
        "sampling": cfg.sampling.as_meta(),
        "judge": cfg.judge,
        "constitution": cfg.constitution.hash,
        "principles": cfg.principles,
        "refusal_judge": cfg.refusal_judge,
        "reward_model": cfg.reward_model,
        "priority": [cfg.priority, cfg.tier_confidence, cfg.gate_threshold],
    }


def _work_dir(out_path: Path | None, fingerprint: dict) -> tuple[Path, bool]:
    """The folder for phase files (kept between runs when it belongs to the same command)."""
    if out_path is None:
        return Path(tempfile.mkdtemp(prefix="cai-eval-")), True
    work = out_path.with_name(out_path.name + ".work")
    stamp = work / "config.json"
    if work.exists():
        try:
            same = json.loads(stamp.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            _say(f"{work} belongs to a different command; starting afresh")
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(fingerprint, sort_keys=True))
    return work, False


def summary_path(cfg: EvalConfig) -> Path | None:
    if cfg.summary:
        return Path(cfg.summary)
    out = cfg.run.output
    if out in (None, "-"):
        return None
    p = Path(out)
    stem = p.name.removesuffix(".jsonl")
    return p.with_name(stem + ".summary.json")


def run_eval(cfg: EvalConfig) -> dict:
    """The whole evaluation; returns the summary (also written to the summary file)."""
    from ..stages.generate import Generate
    from ..stages.score import Score

    if cfg.answers:
        return run_answers(cfg)
    prompts, error_records = load_prompts(cfg.sources, cfg.run, cfg.benign_field)
    model, baseline = labels(cfg)
    # Built before any model loads, so a bad --reward-model or a constitution without comparison
    # questions is reported at once, not after the answers have been generated.
    judge = None
    if baseline is not None or cfg.refusal_judge or cfg.constitution.hard_constraints:  # hard constraints: the gate checks every answer
        judge = EvalJudge(replace(cfg.engine, model=cfg.judge), cfg.constitution, cfg.principle_count, cfg.sampling.seed, baseline is not None, cfg.refusal_judge,
                          priority=cfg.priority, tier_confidence=cfg.tier_confidence, gate_threshold=cfg.gate_threshold)
    scorer = Score(cfg.reward_model, batch_size=cfg.run.batch_size, dtype=cfg.engine.dtype) if cfg.reward_model else None
    out_path = Path(cfg.run.output) if cfg.run.output not in (None, "-") else None
    work, temporary = _work_dir(out_path, _fingerprint(cfg, prompts))
    try:
        write_atomic(work / "prompts.jsonl", prompts)
        _say(f"{len(prompts)} prompts ({sum(r['eval_set'] == RED_TEAM for r in prompts)} red-team, "
             f"{sum(r['eval_set'] == BENIGN for r in prompts)} benign); work files in {work}")

        gen = Generate(cfg.engine, cfg.sampling)
        gen.name = "eval answers"
        answers = _phase(gen, work / "prompts.jsonl", work / "model.jsonl", cfg.run)
        base_answers: dict[str, dict] = {}
        if baseline is not None:
            # A model compared with itself should get two independent samples, not the same one twice.
            seed = cfg.sampling.seed + (1 if model_label(cfg.baseline) == model_label(cfg.engine.model) else 0)
            base = Generate(replace(cfg.engine, model=cfg.baseline), replace(cfg.sampling, seed=seed))
            base.name = "eval baseline answers"
            base_answers = _phase(base, work / "prompts.jsonl", work / "baseline.jsonl", cfg.run)

        rows = []
        metas: dict[str, dict] = {}
        for prompt in prompts:
            rid = str(prompt["id"])
            if rid not in answers or (baseline is not None and rid not in base_answers):
                continue
            row = dict(prompt)
            row["response"] = answers[rid]["response"]
            row["refusal"] = detect(row["response"]).as_dict()
            meta = {"model": model, "model_path": cfg.engine.model, "tokens": _tokens(answers[rid], gen.name)}
            if baseline is not None:
                row["baseline_response"] = base_answers[rid]["response"]
                row["baseline_refusal"] = detect(row["baseline_response"]).as_dict()
                meta.update(baseline=baseline, baseline_path=cfg.baseline, baseline_tokens=_tokens(base_answers[rid], base.name))
            metas[rid] = meta  # kept here, not in a private field of the row, so phase files hold only real fields
            rows.append(row)

        if judge is not None:
            write_atomic(work / "answers.jsonl", rows)
            judged = _phase(judge, work / "answers.jsonl", work / "judged.jsonl", cfg.run)
            rows = [judged[str(r["id"])] for r in rows if str(r["id"]) in judged]

        if scorer is not None:
            # `cai score` scores `candidates`: the model's answer, then the baseline's.
            pairs = [{k: r[k] for k in ("id", "prompt", "messages") if k in r} for r in rows]
            for p, r in zip(pairs, rows):
                p["candidates"] = [r["response"]] + ([r["baseline_response"]] if baseline is not None else [])
            write_atomic(work / "to_score.jsonl", pairs)
            scorer.name = "eval reward"
            scored = _phase(scorer, work / "to_score.jsonl", work / "scored.jsonl", cfg.run)
            kept = []
            for r in rows:
                s = scored.get(str(r["id"]))
                if s is None:
                    continue
                values = s["rewards"]["candidates"]
                r["reward"] = values[0]
                if baseline is not None:
                    r["baseline_reward"] = values[1]
                kept.append(r)
            rows = kept

        info = {
            "baseline": baseline,
            "judge": model_label(cfg.judge) if judge is not None else None,
            "engine": cfg.engine.engine,
            "sampling": cfg.sampling.as_meta(),
            "constitution": cfg.constitution.name,
            "constitution_hash": cfg.constitution.hash,
            "principles": cfg.principles,
            "priority": cfg.priority,
            "detector": DETECTOR_VERSION,
            "reward_model": cfg.reward_model,
            "benign_field": cfg.benign_field,
        }
        final = []
        for r in rows:
            meta = metas[str(r["id"])]
            m = dict(r["meta"]) if isinstance(r.get("meta"), dict) else {}
            m["eval"] = {**meta, **info}
            r["meta"] = m
            final.append(r)

        failed = len(prompts) - len(final)
        for phase_errors in sorted(work.glob("*.errors.jsonl")):
            error_records += read_done_rows(phase_errors)
        summary = _finish(cfg, final, error_records, failed, out_path)
        if failed:
            _say(f"{failed} prompts failed; rerun the same command to retry them")
        elif not temporary:
            shutil.rmtree(work, ignore_errors=True)
        return summary
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


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
    target = summary_path(cfg)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(dumps_compact(summary) + "\n")
        tmp.replace(target)
        _say(f"{len(final)} rows -> {out_path or 'stdout'}, summary -> {target}")
    return summary


def run_answers(cfg: EvalConfig) -> dict:
    """`cai eval --answers FILE`: score answers that already exist (from any model or server), generating nothing.

    Rows hold `prompt`/`messages` and `response` (and, with --baseline-field NAME, the baseline's answer in
    NAME). The refusal detector labels each answer; with a baseline field the judge compares the two
    (win rates); with --refusal-judge the judge also says whether each answer refused. A judge that gives
    no verdict stops the run naming the file, line and field, or (--on-error skip) counts the row as failed.
    """
    from ..errors import InputError
    from ..runner import error_record

    where: dict[str, tuple[str, int]] = {}
    rows, error_records = load_prompts(cfg.sources, cfg.run, cfg.benign_field, answers=True, baseline_field=cfg.baseline_field, where=where)
    model = cfg.name or _answers_label(cfg.sources)
    baseline = cfg.baseline_field
    out_path = Path(cfg.run.output) if cfg.run.output not in (None, "-") else None
    _say(f"{len(rows)} answers ({sum(r['eval_set'] == RED_TEAM for r in rows)} red-team, {sum(r['eval_set'] == BENIGN for r in rows)} benign)")
    for row in rows:
        row["refusal"] = detect(row["response"]).as_dict()
        if baseline is not None:
            row["baseline_refusal"] = detect(row[baseline]).as_dict()

    failures: dict[str, RowFailure] = {}
    judge = None
    if baseline is not None or cfg.refusal_judge or cfg.constitution.hard_constraints:
        judge = EvalJudge(replace(cfg.engine, model=cfg.judge), cfg.constitution, cfg.principle_count, cfg.sampling.seed, baseline is not None,
                          cfg.refusal_judge, baseline_field=baseline or "baseline_response", priority=cfg.priority, tier_confidence=cfg.tier_confidence,
                          gate_threshold=cfg.gate_threshold)
        judge.start()
        try:
            pending = []
            for row in rows:
                try:
                    judge.check_loaded(row)
                    pending.append(row)
                except RowFailure as too_long:
                    failures[str(row["id"])] = too_long
            step = max(1, cfg.run.batch_size)
            for start in range(0, len(pending), step):
                batch = pending[start : start + step]
                for row, result in zip(batch, judge.process(batch)):
                    if isinstance(result, RowFailure):
                        failures[str(row["id"])] = result
        finally:
            close = getattr(judge.engine, "close", None)
            if close:
                close()
        line = judge.summary()
        if line:
            print(f"cai eval judge: {line}", file=sys.stderr)
    for rid, failure in failures.items():
        name, line_no = where.get(rid, ("answers", None))
        if cfg.run.on_error == "fail":
            raise InputError(f"{failure.reason}; nothing was written (use --on-error skip to evaluate the other rows)", file=name, line=line_no, field=failure.field)
        row = next(r for r in rows if str(r["id"]) == rid)
        error_records.append(error_record(name, line_no, failure.field, failure.reason, row))

    info = {
        "model": model,
        "answers": [display_name(path) for path, _ in cfg.sources],
        "baseline": baseline,
        "baseline_field": baseline,
        "benign_field": cfg.benign_field,
        "judge": model_label(cfg.judge) if judge is not None else None,
        "constitution": cfg.constitution.name,
        "constitution_hash": cfg.constitution.hash,
        "principles": cfg.principles,
        "detector": DETECTOR_VERSION,
    }
    final = []
    for r in rows:
        if str(r["id"]) in failures:
            continue
        m = dict(r["meta"]) if isinstance(r.get("meta"), dict) else {}
        m["eval"] = info
        r["meta"] = m
        final.append(r)
    return _finish(cfg, final, error_records, len(failures), out_path)


def _answers_label(sources) -> str:
    path = sources[0][0]
    return Path(path).name.removesuffix(".jsonl") if path else "answers"


def _tokens(row: dict, stage_name: str) -> dict:
    info = (row.get("meta") or {}).get(stage_name) or {}
    return {"prompt": info.get("prompt_tokens"), "completion": info.get("completion_tokens")}


