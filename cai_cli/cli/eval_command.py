"""`cai eval`: the models answer, the judges judge, the detector labels; one thin function building EvalConfig from its
options (the phases, checks and the work folder are eval/run.py's)."""

from __future__ import annotations

from dataclasses import replace

from ..engines import EngineOptions, SamplingOptions
from ..judge.options import JudgeEngineOptions, JudgeOptions
from ..refusal import DEFAULT_DETECTOR
from ..runner import RunOptions
from ..scale.ray_options import RayOptions
from ..stats import DEFAULT_BOOTSTRAP
from ..threads import ThreadOptions
from . import options as o
from .apps import app
from .plumbing import command
from .stage_commands import ready_to_run


@command(app, "eval", skip=frozenset({"dropped"}))
def evaluate(
    prompts: o.PromptsOpt = None,
    benign: o.BenignOpt = None,
    suite: o.SuiteOpt = None,
    answers: o.AnswersOpt = None,
    checkpoints: o.CheckpointsOpt = None,
    baseline_field: o.BaselineFieldOpt = None,
    benign_field: o.BenignFieldOpt = None,
    baseline: o.BaselineOpt = None,
    name: o.NameOpt = None,
    constitution: o.ConstitutionOpt = None,
    refusal_judge: o.RefusalJudgeOpt = None,
    detector: o.DetectorOpt = DEFAULT_DETECTOR,
    reward_model: o.RewardModelOpt = None,
    gold_field: o.GoldFieldOpt = None,
    summary: o.SummaryOpt = None,
    bootstrap: o.BootstrapOpt = DEFAULT_BOOTSTRAP,
    *, judge: JudgeOptions, judge_engine: JudgeEngineOptions, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions,
    threads: ThreadOptions,
):
    """Evaluate a model: refusals, deflections, over-refusal, judge win rates against a baseline, reward.

    Writes one row per prompt (both answers with their finish_reason, the detector's verdicts, the judges' votes, each
    priority tier's verdict) and a summary JSON (rates with Wilson intervals, with and without answers cut at
    --max-tokens; the judge's position and length bias; where --refusal-judge MODEL and the detector disagree); prints
    the table. With a constitution that has hard constraints, every answer is checked against each (`gate`,
    `baseline_gate`) and the summary gives each constraint's violation rate with its Wilson interval.
    `--limit N` takes N rows from each prompt file. `--answers FILE` scores answers that already exist.
    Each phase (answers, baseline answers, judge, refusal judge, reward) is a stage with its own side file in OUT.work/:
    rerun the same command to resume (--restart starts over); a model used by several phases loads once.
    The judges run on --judge-engine/--judge-base-url (default: the openai engine where --judge-base-url names a server, else --engine/--base-url).
    Compare many models with one `cai eval` each, then `cai report` (it charts whatever the results hold). See docs/eval.md for what each number means.

    `--suite NAME` reads the community's benchmarks from the CSV files their authors publish (xstest, strongreject, jailbreakbench, or-bench): `-p` for red-team files, `--benign` for a benchmark's benign file. `--gold-field FIELD` (with --answers and --baseline-field) measures the judge's accuracy and calibration (ECE) against known better answers.

    `--checkpoints DIR` evaluates a training folder's starting model, each checkpoint and its final model (or several models) in order on the red-team and benign prompts, and writes the harm / over-refusal frontier (harmfulness, over-refusal, Wilson intervals per point) that `cai report` draws (docs/eval.md).

    Refusal detector (--detector): agreement with people on 581 held-out replies from two public sources, 86% for the default (rules and word n-grams, no model) and 87% for `model` (rules and a head over the embedded model, better on safety completions only); a refusal-phrase baseline: 70%. Both short of the 92% aimed for.
    Details in docs/eval.md; reproduce with `python bench/bench_refusal.py`.

    Example:

        cai eval -p examples/red_team.jsonl -p examples/benign.jsonl --model out/rl-cai --baseline embedded -o out/eval-rl.jsonl
        cai eval --answers served.jsonl --baseline-field reference --benign-field safe --refusal-judge embedded -o out/eval-served.jsonl
        cai eval --suite xstest -p xstest_prompts.csv --model out/rl-cai -o out/xstest.jsonl
        cai eval --suite or-bench -p or-bench-toxic.csv --benign or-bench-hard-1k.csv --model out/rl-cai -o out/or-bench.jsonl
        cai eval --checkpoints out/rl-cai -p examples/red_team.jsonl --benign examples/benign.jsonl --limit 8 -o out/frontier.jsonl
    """
    from ..constitution import load_constitution
    from ..errors import CaiError
    from ..eval.run import EvalConfig, run_eval

    if answers and (prompts or benign or baseline):
        raise CaiError("--answers scores existing answers: it does not take --prompts, --benign or --baseline (use --baseline-field)")
    if baseline_field and not answers:
        raise CaiError("--baseline-field names a field of --answers rows; to generate a baseline's answers use --baseline MODEL")
    if suite and (answers or not (prompts or benign)):
        raise CaiError(f"--suite {suite.value} reads the benchmark's published prompt files: give them with --prompts (red-team) or --benign, not --answers or stdin")
    if gold_field and not (answers and baseline_field):
        raise CaiError("--gold-field names the better of two answers the rows already hold: use it with --answers and --baseline-field")
    if checkpoints and (answers or engine.model or name):
        raise CaiError(f"--checkpoints names the models to evaluate: it does not take {'--answers' if answers else '--model' if engine.model else '--name'}")
    if checkpoints:
        engine = replace(engine, model=checkpoints[0])  # sampling defaults for the models it trained from (the same for every point)
    model, run = ready_to_run(None, run, ray, engine)
    assert model is not None
    sources: list[tuple[str | None, str | None]] = [(p, kind) for paths, kind in ((prompts, None), (benign, "benign"), (answers, None)) for p in paths or []]
    cfg = EvalConfig(
        sources=sources or [(None, None)],
        engine=model,
        sampling=sampling.sampling(engine.model, engine.engine),
        constitution=load_constitution(constitution),
        run=run,
        judge=judge,
        judge_engine=judge_engine,
        name=name,
        baseline=baseline,
        refusal_judge=refusal_judge,
        reward_model=reward_model,
        summary=summary,
        bootstrap=bootstrap,
        answers=bool(answers),
        baseline_field=baseline_field,
        benign_field=benign_field,
        suite=suite,
        gold=gold_field,
        detector=detector,
    )
    if checkpoints:
        from ..eval.frontier import run_frontier

        run_frontier(cfg, checkpoints)
        return
    from ..report import print_summary

    print_summary(run_eval(cfg))
