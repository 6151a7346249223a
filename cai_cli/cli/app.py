"""The `cai` command line: one thin function per stage. Heavy imports happen inside the commands."""

import sys

import typer

from ..constitution.routing import DEFAULT_RANKER
from ..engines import Sampling
from ..judge.gate import VIOLATION_THRESHOLD
from ..judge.principles import DEFAULT_PRINCIPLES
from ..judge.priority import DEFAULT_PRIORITY, TIER_CONFIDENCE
from ..judge.reward import REFERENCE_FIELD, JudgeRewardConfig
from ..prompts import SKIP_THRESHOLD
from ..show import WIDTH
from ..stages.label_prefs import LabelConfig
from ..stages.synthesize import SynthesizeConfig
from ..stats import DEFAULT_BOOTSTRAP
from ..train.data import EVAL_FRACTION
from ..train.monitor import DEFAULT_EVERY as MONITOR_EVERY
from ..train.monitor import DEFAULT_PROBES as MONITOR_PROBES
from ..train.monitor import DEFAULT_THRESHOLD as DIVERGENCE_THRESHOLD
from . import options as o
from .plumbing import Common, OneLineErrors, command, judge_engine_options, stage_command, train_command

app = typer.Typer(
    name="cai",
    cls=OneLineErrors,
    help="Constitutional AI, stage by stage over JSONL: generate → critique → revise → label-prefs → train.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
constitution_app = typer.Typer(help="Inspect, validate, import, compare constitutions, and see which sections rows used.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")
judge_app = typer.Typer(help="Check the judge: does it read the constitution?", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@stage_command(app, "generate")
def generate(
    common: Common,
    n: o.NOpt = Sampling.n,
):
    """Sample a reply to each prompt: rows with `prompt` or `messages` gain `response` and `initial_response`.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 -o out/gen.jsonl
    """
    from ..runner import run_stage
    from ..stages.generate import Generate

    run_stage(Generate(common.engine_options(), common.sampling(n)), common.run_options())


@stage_command(app, "synthesize", input_arg=False)
def synthesize(
    common: Common,
    constitution: o.ConstitutionOpt = None,
    kinds: o.KindsOpt = None,
    per_passage: o.PerPassageOpt = SynthesizeConfig.per_passage,
    domain: o.DomainOpt = None,
    examples: o.SynthExamplesOpt = None,
    exclude: o.ExcludeOpt = None,
    similarity: o.SimilarityOpt = SynthesizeConfig.similarity,
    until_covered: o.UntilCoveredOpt = None,
    covered_at: o.CoveredAtOpt = 1,
    reuse: o.ReuseOpt = None,
    passage_tokens: o.PassageTokensOpt = None,
):
    """Write requests from the constitution: for each routed passage (a list: principle) and each hard constraint, --per-passage requests of each kind.

    Each row is a prompt row for `cai generate` and `cai eval`: `prompt` (or `messages`, a short conversation ending with the request), `kind` (harmful, lookalike, benign), `passage` and `passage_hash`, `eval_set` and `category` (eval's red-team and benign sets), and meta.synthesize (constitution name and hash, the persona, phrasing, length and turns drawn from the row's seed, finish reason). What is not one request (empty, cut, a refusal to write it, a list, an answer) is left out with its reason, and so is a near-duplicate of a request kept before it or of --exclude; OUTPUT.dropped.jsonl keeps them, the summary counts them. A label or quotes around the request are removed and marked (meta.synthesize.cleaned, raw). See docs/constitutions.md.

    Example:

        cai synthesize -c assistant --per-passage 2 --max-tokens 96 -o out/synth.jsonl
        cai synthesize -c policy.md --until-covered out/r2.jsonl --engine openai --base-url http://localhost:8000/v1 -o out/more.jsonl
    """
    from ..constitution import load_constitution
    from ..runner import run_stage
    from ..stages.synthesize import Synthesize, synthesize_config

    cfg = synthesize_config(kinds, per_passage, domain, examples, exclude, similarity, passage_tokens, reuse, until_covered)
    stage = Synthesize(common.engine_options(), common.sampling(), load_constitution(constitution), cfg)
    work = stage.work(until_covered, covered_at)
    if work is None:
        print(f"cai synthesize: every passage and constraint of {stage.constitution.source} is used at least {covered_at} times in {until_covered}; "
              "nothing to write", file=sys.stderr)
        return
    options = common.run_options()
    options.rows = work
    run_stage(stage, options)


@stage_command(app, "critique")
def critique(
    common: Common,
    constitution: o.ConstitutionOpt = None,
    few_shot: o.FewShotOpt = None,
    few_shot_file: o.FewShotFileOpt = None,
    routing: o.RoutingOpt = None,
    gate_threshold: o.GateThresholdOpt = VIOLATION_THRESHOLD,
    amend: o.AmendOpt = None,
    passage_tokens: o.PassageTokensOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
):
    """Critique each row's current `response` against one principle (a Markdown constitution: one section), chosen per row and per round (seeded).

    Appends a round {principle, section, passage, passage_hash, tier, routing, ranker, relevance, matched, when, response_label, operator, gate, constitution_hash, principle_hash, critique_request, critique, critique_finish_reason} to `rounds`. The principle is drawn among those whose `when` holds for the response (by the refusal detector) and the conversation (with or without a system message); --routing relevance ranks them against the conversation (--ranker: BM25 by default), relevance first, tiers reordering only comparably relevant passages, and a hard constraint the conversation names takes the round. A Markdown constitution's passage (--passage-tokens) is quoted whole and the critique asked to cite it; a row's system message (the operator's instructions) is shown with the request. The model first sees the worked examples, each marked as a separate example. Chain with `cai revise`; repeat the pair for more rounds. See docs/critique-revise.md and docs/constitutions.md.

    Hard constraints are a gate: the response is checked against each one (a scored yes/no pair, `gate`: P(violation) per constraint); where it likely crosses one, the round critiques it against that constraint instead (routing "hard-constraint", `gated` says why). A principle meant for over-refusals (`when: refused`) is drawn on a refusal only where the model judges the request harmless (`request_harm`). --amend PREVIOUS recomputes only the rows a changed constitution touches.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 | cai critique --max-tokens 64 | cai revise --max-tokens 64 > out/round1.jsonl
        cai critique out/gen.jsonl -c assistant --max-tokens 128 -o out/c1.jsonl
    """
    from ..runner import run_stage
    from ..stages.critique import Critique

    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    stage = Critique(common.engine_options(), common.sampling(), charter, few_shot, examples, source, routing, gate_threshold, passage_tokens, ranker)
    run_stage(_amending(stage, amend), common.run_options())


@stage_command(app, "revise")
def revise(
    common: Common,
    constitution: o.ConstitutionOpt = None,
    few_shot: o.FewShotOpt = None,
    few_shot_file: o.FewShotFileOpt = None,
    skip_unchanged: o.SkipUnchangedOpt = False,
    skip_threshold: o.SkipThresholdOpt = SKIP_THRESHOLD,
    amend: o.AmendOpt = None,
):
    """Revise each row's response to answer its last critique; the revision becomes `response`.

    Every round gets the model's revision, as in the method; `changed` says whether its text differs, `revision_finish_reason` why it stopped (`length`: cut at --max-tokens). Only a lead-in that stands apart from the answer ("Sure, here is a revised response:" on its own line, "Revised response:") is stripped, never words of the answer (the raw text stays in `revision_raw`); an empty revision is kept and marked `empty_revision`. With --skip-unchanged the model is asked, yes/no in both phrasings, whether the critique asks for any change, and the response is kept where P(change) < --skip-threshold (recorded in `skip_check`). A round the hard-constraint gate gave to a constraint is revised with that constraint's revision request. --amend PREVIOUS recomputes only the rows whose input or principle changed.

    Example:

        cai critique out/gen.jsonl --max-tokens 128 | cai revise --max-tokens 256 -o out/revised.jsonl
    """
    from ..runner import run_stage
    from ..stages.revise import Revise

    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    stage = Revise(common.engine_options(), common.sampling(), charter, few_shot, examples, source, skip_unchanged, skip_threshold)
    run_stage(_amending(stage, amend), common.run_options())


def _amending(stage, amend: str | None):
    """STAGE, or with --amend PREVIOUS the stage that copies what a changed constitution leaves untouched."""
    if amend is None:
        return stage
    from ..amend import Amending

    return Amending(stage, amend)


def _charter_and_examples(constitution: str | None, few_shot_file: str | None):
    from ..constitution import load_constitution, load_few_shot_file

    charter = load_constitution(constitution)
    if few_shot_file is None:
        return charter, None, None
    return charter, load_few_shot_file(few_shot_file), few_shot_file


@command(app, "show")
def show(
    file: o.ShowFileArg = "-",
    limit: o.LimitOpt = None,
    width: o.WidthOpt = WIDTH,
    html_out: o.ShowHtmlOpt = None,
    on_error: o.ShowOnErrorOpt = o.OnError.fail,
):
    """Print rows readably: the prompt, the first answer, each round's critique and revision, candidates, preferences.

    Reads every JSONL file cai writes (stage rows, exports, eval rows, OUT.errors.jsonl, OUT.dropped.jsonl, the rows
    in a side file); any other file (a summary, training metrics, an empty file) is one line saying what it is.

    Example:

        cai show out/revised.jsonl --limit 3
        cai show out/revised.jsonl --html out/revised.html
    """

    from rich.console import Console

    from ..output import check_targets, write_file
    from ..show import load_rows, render_rows

    [target] = check_targets([("--html", html_out)], [("the input", None if file == "-" else file)])
    rows, notes = load_rows(file, skip_bad=on_error is o.OnError.skip)
    shown = rows[:limit] if limit else rows
    if target is not None:
        from ..show import render_html

        write_file(target, render_html(shown, title=f"cai show {file}"))
        print(f"cai show: {len(shown)} rows -> {html_out}", file=sys.stderr)
    else:
        render_rows(shown, Console(), width)
    for note in notes:
        print(note, file=sys.stderr)


@train_command(app, "train-sft")
def train_sft(
    rows: o.TrainInputArg,
    opts,
    targets: o.TargetsOpt = o.Targets.final,
    mix: o.MixOpt = None,
    mix_ratio: o.MixRatioOpt = None,
    keep_truncated: o.KeepTruncatedOpt = False,
):
    """Fine-tune on (conversation, revision) pairs from `cai revise` with trl's SFTTrainer; loss on the reply only.

    DIR gets checkpoints/ (a rerun resumes), metrics.jsonl, then the merged model and tokenizer: `cai generate --model DIR`.

    Example:

        cai train-sft out/revised.jsonl -o out/sl-cai --mix out/helpful.jsonl --mix-ratio 0.3 --epochs 1
    """
    from ..train.sft import train_sft as run

    run(opts, rows, targets.value, mix, mix_ratio, keep_truncated)


@train_command(app, "train-rm")
def train_rm(
    prefs: o.TrainInputArg,
    opts,
    eval_fraction: o.EvalFractionOpt = EVAL_FRACTION,
    soft: o.SoftOpt = True,
):
    """Train a reward model on chosen/rejected pairs from `cai label-prefs` (trl's RewardTrainer, soft labels).

    Prints the held-out accuracy. DIR works as `cai score --reward-model DIR` and `cai train-policy --reward-model DIR`.

    Example:

        cai train-rm out/prefs.jsonl -o out/rm --epochs 1
    """
    from ..train.rm import train_rm as run

    run(opts, prefs, eval_fraction, soft)


@train_command(app, "train-policy")
def train_policy(
    rows: o.TrainInputArg,
    opts,
    algo: o.AlgoOpt = o.Algo.dpo,
    reward_model: o.RewardModelOpt = None,
    beta: o.BetaOpt = None,
    num_generations: o.NumGenerationsOpt = None,
    max_tokens: o.CompletionTokensOpt = None,
    temperature: o.PolicyTemperatureOpt = None,
    soft: o.SoftDpoOpt = True,
    reward: o.RewardSourceOpt = None,
    constitution: o.ConstitutionOpt = None,
    reward_mode: o.RewardModeOpt = o.RewardMode(JudgeRewardConfig.mode),
    principles: o.PrinciplesOpt = str(DEFAULT_PRINCIPLES),
    reward_weights: o.RewardWeightsOpt = None,
    reference_field: o.ReferenceFieldOpt = REFERENCE_FIELD,
    judge_model: o.JudgeModelOpt = None,
    judge_engine: o.JudgeEngineOpt = None,
    judge_base_url: o.JudgeBaseUrlOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
    gold: o.GoldOpt = None,
    min_accuracy: o.MinAccuracyOpt = None,
    max_ece: o.MaxEceOpt = None,
    monitor: o.MonitorOpt = None,
    monitor_every: o.MonitorEveryOpt = MONITOR_EVERY,
    monitor_probes: o.MonitorProbesOpt = MONITOR_PROBES,
    stop_on_divergence: o.StopOnDivergenceOpt = False,
    divergence_threshold: o.DivergenceThresholdOpt = DIVERGENCE_THRESHOLD,
):
    """RL-CAI: DPO straight from labelled pairs, or GRPO / RLOO on prompt rows against a reward model or with the judge in the loop.

    --reward judge asks the constitutional judge (label-prefs' questions, both orders) about every sampled completion at every step: one reward per priority tier, each hard constraint a penalty; the judge runs on its own engine (--judge-model, --judge-engine, --judge-base-url). DIR/samples.jsonl keeps every completion with the rewards it got (`cai score --judge` reproduces them). --gold FILE measures the judge's rewards on gold pairs before training (DIR/judge-gate.json) and --min-accuracy / --max-ece stop a judge below the floor (exit 3). --monitor SPEC scores the policy's answers to a fixed probe set every --monitor-every steps with the training reward and a second judge (metrics.jsonl: monitor/*), and with --stop-on-divergence stops (exit 4, resumable) where the first rises while the second falls; `cai report DIR` draws both. See docs/training.md.

    Example:

        cai train-policy out/prefs.jsonl -o out/rl-cai --algo dpo --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-cai --algo grpo --reward-model out/rm --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-judge --algo grpo --reward judge -c assistant --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-watched --algo grpo --reward judge --monitor principles:more-honest --monitor-every 5 -c assistant
    """
    from ..judge.checks import floors
    from ..train.monitor import MonitorOptions
    from ..train.policy import JudgeOptions
    from ..train.policy import train_policy as run

    judge = None
    limits = floors(gold, min_accuracy, max_ece)
    watch = MonitorOptions(monitor, monitor_every, monitor_probes, stop_on_divergence, divergence_threshold) if monitor else None
    if watch is None and (monitor_every != MONITOR_EVERY or monitor_probes != MONITOR_PROBES or stop_on_divergence or divergence_threshold != DIVERGENCE_THRESHOLD):
        from ..errors import CaiError

        raise CaiError("--monitor-every, --monitor-probes, --stop-on-divergence and --divergence-threshold set the reward monitor: add --monitor SPEC")
    if reward is o.RewardSource.judge or watch is not None:
        judge = JudgeOptions(judge_engine_options(judge_model, judge_engine, judge_base_url), constitution, reward_mode.value, principles,
                             reference_field, reward_weights, ranker.value, gold, limits)
    if reward is not o.RewardSource.judge:
        given = {} if watch is not None else {"constitution": constitution, "judge_model": judge_model, "judge_engine": judge_engine, "judge_base_url": judge_base_url}
        _judge_options_need_judge("--reward judge", **given, reward_weights=reward_weights, gold=gold)
    run(opts, rows, algo.value, reward_model, beta, num_generations, max_tokens, temperature, soft, reward.value if reward else None, judge, watch)


def _judge_options_need_judge(what: str, **given) -> None:
    """The judge's options without the judge would be ignored: one line instead."""
    from ..errors import CaiError

    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v]
    if named:
        raise CaiError(f"{', '.join(named)}: {'is' if len(named) == 1 else 'are'} for the judge's rewards; add {what}")


@stage_command(app, "score", model=False, sampling=False, ray=True)
def score(
    common: Common,
    reward_model: o.RewardModelOpt = None,
    judge: o.ScoreJudgeOpt = False,
    constitution: o.ConstitutionOpt = None,
    reward_mode: o.RewardModeOpt = o.RewardMode(JudgeRewardConfig.mode),
    principles: o.PrinciplesOpt = str(DEFAULT_PRINCIPLES),
    reward_weights: o.RewardWeightsOpt = None,
    reference_field: o.ReferenceFieldOpt = REFERENCE_FIELD,
    judge_model: o.JudgeModelOpt = None,
    judge_engine: o.JudgeEngineOpt = None,
    judge_base_url: o.JudgeBaseUrlOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
    gold: o.GoldOpt = None,
    min_accuracy: o.MinAccuracyOpt = None,
    max_ece: o.MaxEceOpt = None,
):
    """Score rows with a reward model, or with the judge: adds `rewards` {response, candidates, chosen, rejected} for the fields a row has.

    --judge gives the rewards `train-policy --reward judge` trains on: `rewards` the weighted total, `reward_parts` each tier's and hard constraint's; a row's candidates are one group (chosen and rejected a group of two). `cai score --judge DIR/samples.jsonl` re-scores what a judge-trained policy sampled, to the same numbers.

    Each text is scored alone (no padding), so its score is the same whatever --batch-size. With --judge, --gold FILE measures the judge's rewards on gold pairs first (OUT.judge-gate.json), and --min-accuracy / --max-ece stop before scoring (exit 3) where it is below the floor.

    Example:

        cai generate prompts.jsonl --n 4 | cai score --reward-model out/rm > scored.jsonl
        cai generate prompts.jsonl --n 4 | cai score --judge -c assistant > judged.jsonl
    """
    from ..errors import CaiError
    from ..judge.checks import floors, run_check, where_kept
    from ..runner import run_stage

    limits = floors(gold, min_accuracy, max_ece)
    if judge == (reward_model is not None):
        raise CaiError("cai score needs one of --reward-model DIR (a reward model from `cai train-rm`) or --judge (the constitutional judge)")
    if not judge:
        from ..stages.score import Score

        _judge_options_need_judge("--judge", constitution=constitution, judge_model=judge_model, judge_engine=judge_engine,
                                  judge_base_url=judge_base_url, reward_weights=reward_weights, gold=gold)
        assert reward_model is not None
        run_stage(Score(reward_model), common.run_options())
        return
    from ..constitution import load_constitution
    from ..judge.principles import parse_principles
    from ..judge.reward import JudgeRewardConfig as Config
    from ..stages.score import JudgeScore

    cfg = Config(mode=reward_mode.value, principles=parse_principles(principles), reference_field=reference_field, ranker=ranker.value)
    engine = judge_engine_options(judge_model, judge_engine, judge_base_url)
    engine.batch_size = common.batch_size
    scorer = JudgeScore(engine, load_constitution(constitution), cfg, reward_weights)
    if gold is not None:
        run_check(scorer.gold_judged(), gold, limits, where_kept(common.output), "score", common.progress)
    run_stage(scorer, common.run_options())


@stage_command(app, "export", model=False, sampling=False)
def export(common: Common, format: o.ExportFormatOpt, keep_truncated: o.KeepTruncatedOpt = False):
    """Write rows as datasets to train elsewhere: each line loads with datasets.load_dataset("json", ...) and trl takes it as is.

    A row that would make a bad example (a text cut at --max-tokens: the final revision, and for hf-cai the last critique, unless --keep-truncated; a pair of one text) is left out, counted by reason, and kept with its reason in OUTPUT.dropped.jsonl (or --dropped PATH).

    Example:

        cai export out/revised.jsonl --format sft -o out/sft.jsonl
    """
    from ..runner import run_stage
    from ..stages.export import Export

    run_stage(Export(format.value, keep_truncated), common.run_options())


@stage_command(app, "eval", input_arg=False)
def evaluate(
    common: Common,
    prompts: o.PromptsOpt = None,
    benign: o.BenignOpt = None,
    suite: o.SuiteOpt = None,
    answers: o.AnswersOpt = None,
    checkpoints: o.CheckpointsOpt = None,
    baseline_field: o.BaselineFieldOpt = None,
    benign_field: o.BenignFieldOpt = None,
    baseline: o.BaselineOpt = None,
    name: o.NameOpt = None,
    judge: o.JudgeOpt = None,
    constitution: o.ConstitutionOpt = None,
    principles: o.PrinciplesOpt = str(DEFAULT_PRINCIPLES),
    refusal_judge: o.RefusalJudgeOpt = None,
    judge_engine: o.JudgeEngineOpt = None,
    judge_base_url: o.JudgeBaseUrlOpt = None,
    reward_model: o.RewardModelOpt = None,
    gold_field: o.GoldFieldOpt = None,
    summary: o.SummaryOpt = None,
    bootstrap: o.BootstrapOpt = DEFAULT_BOOTSTRAP,
    priority: o.PriorityOpt = DEFAULT_PRIORITY,
    tier_confidence: o.TierConfidenceOpt = TIER_CONFIDENCE,
    gate_threshold: o.GateThresholdOpt = VIOLATION_THRESHOLD,
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
    The judges run on --judge-engine/--judge-base-url (default: --engine/--base-url).
    Compare many models with one `cai eval` each, then `cai report` (it charts whatever the results hold). See docs/eval.md for what each number means.

    `--suite NAME` reads the community's benchmarks from the CSV files their authors publish (xstest, strongreject, jailbreakbench, or-bench): `-p` for red-team files, `--benign` for a benchmark's benign file. `--gold-field FIELD` (with --answers and --baseline-field) measures the judge's accuracy and calibration (ECE) against known better answers.

    `--checkpoints DIR` evaluates a training folder's starting model, each checkpoint and its final model (or several models) in order on the red-team and benign prompts, and writes the harm / over-refusal frontier (harmfulness, over-refusal, Wilson intervals per point) that `cai report` draws (docs/eval.md).

    Refusal detector (rules and a small classifier, no model): 86% agreement with people on 581 held-out replies from two public sources (a refusal-phrase baseline: 70%; 63% when each source is judged by a classifier trained without it), short of the 92% aimed for.
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
    from ..judge import parse_tier_confidence

    if answers and (prompts or benign or baseline):
        raise CaiError("--answers scores existing answers: it does not take --prompts, --benign or --baseline (use --baseline-field)")
    if baseline_field and not answers:
        raise CaiError("--baseline-field names a field of --answers rows; to generate a baseline's answers use --baseline MODEL")
    if suite and (answers or not (prompts or benign)):
        raise CaiError(f"--suite {suite.value} reads the benchmark's published prompt files: give them with --prompts (red-team) or --benign, not --answers or stdin")
    if gold_field and not (answers and baseline_field):
        raise CaiError("--gold-field names the better of two answers the rows already hold: use it with --answers and --baseline-field")
    if checkpoints and (answers or common.model or name):
        raise CaiError(f"--checkpoints names the models to evaluate: it does not take {'--answers' if answers else '--model' if common.model else '--name'}")
    if checkpoints and common.model is None:
        common.model = checkpoints[0]  # sampling defaults for the models it trained from (the same for every point)
    sources: list[tuple[str | None, str | None]] = [(p, kind) for paths, kind in ((prompts, None), (benign, "benign"), (answers, None)) for p in paths or []]
    cfg = EvalConfig(
        sources=sources or [(None, None)],
        engine=common.engine_options(),
        sampling=common.sampling(),
        constitution=load_constitution(constitution),
        run=common.run_options(),
        name=name,
        baseline=baseline,
        judge=judge,
        principles=principles,
        refusal_judge=refusal_judge,
        judge_engine=judge_engine,
        judge_base_urls=list(judge_base_url or []),
        reward_model=reward_model,
        summary=summary,
        bootstrap=bootstrap,
        answers=bool(answers),
        baseline_field=baseline_field,
        benign_field=benign_field,
        suite=suite.value if suite else None,
        gold=gold_field,
        priority=priority.value,
        tier_confidence=parse_tier_confidence(tier_confidence),
        gate_threshold=gate_threshold,
    )
    if checkpoints:
        from ..eval.frontier import run_frontier

        run_frontier(cfg, checkpoints)
        return
    from ..report import print_summary

    print_summary(run_eval(cfg))


@command(app, "report")
def report(results: o.ResultsArg, output: o.OutputOpt = None, json_out: o.JsonOpt = None, bootstrap: o.BootstrapOpt = DEFAULT_BOOTSTRAP):
    """Compare models: a table of every metric, Bradley–Terry ratings over all files, a figure or an HTML page.

    The figure shows whatever the results hold: the harm / over-refusal frontier of `cai eval --checkpoints`, harmlessness against helpfulness (win rates, ratings within a connected set of games, or the refusal detector's rates), each model's paired change against its baseline, a single model's refusal and deflection rates, declines per category, and, with gold labels (`eval --gold-field`, or a `label-prefs --gold-field` summary), the judge's reliability diagram and expected calibration error. Reads what `cai eval` writes (its rows JSONL or its summary JSON); any other file is one line saying what it is.

    Example:

        cai report out/eval-sl.jsonl out/eval-rl.jsonl -o out/report.png
        cai report out/eval-*.jsonl -o out/report.html
        cai report out/prefs.summary.json -o out/calibration.png
    """

    from ..report import run_report

    run_report(results, output, json_out, bootstrap)


@stage_command(app, "label-prefs")
def label_prefs(
    common: Common,
    constitution: o.ConstitutionOpt = None,
    mode: o.ModeOpt = o.Mode(LabelConfig.mode),
    pair: o.PairOpt = None,
    pairs: o.PairsOpt = o.Pairs(LabelConfig.pairs),
    principles: o.PrinciplesOpt = str(LabelConfig.principles),
    format: o.JudgeFormatOpt = o.JudgeFormat(LabelConfig.fmt),
    swap: o.SwapOpt = LabelConfig.swap,
    cot: o.CotOpt = LabelConfig.cot,
    clamp: o.ClampOpt = None,
    min_confidence: o.MinConfidenceOpt = None,
    gold_field: o.GoldFieldOpt = None,
    gold: o.GoldOpt = None,
    min_accuracy: o.MinAccuracyOpt = None,
    max_ece: o.MaxEceOpt = None,
    judge_examples: o.JudgeExamplesOpt = None,
    priority: o.PriorityOpt = o.Priority(LabelConfig.priority),
    tier_confidence: o.TierConfidenceOpt = LabelConfig.tier_confidence,
    gate_threshold: o.GateThresholdOpt = LabelConfig.gate_threshold,
    amend: o.AmendOpt = None,
    passage_tokens: o.PassageTokensOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
):
    """Label preference pairs with an AI judge: soft p_chosen from option log-probs, both orders, K principles.

    Adds `chosen`/`rejected` (trl's conversational preference format, the prompt conversation included)
    and `preference` {p_chosen, margin, votes, orders_agreed, truncated, priority, decided_by, tiers, gate, used, ...}.
    With priority tiers, K questions per tier are asked and each tier's verdict kept; --priority combines them.
    Every response is checked against the hard constraints first: one that crosses a constraint the other does not
    is rejected whatever the questions say (`decided_by: hard-constraint:<id>`, `gate.reason`). The summary line
    (and, with -o OUT, OUT.summary.json) reports the judge's position bias, order disagreement, length bias, each
    principle's agreement with the ensemble, and per tier how often it decided and agreed with the label; with --gold-field,
    the judge's accuracy and expected calibration error (`cai report OUT.summary.json` draws its reliability diagram).
    --gold FILE measures the judge on gold pairs first, as it will label, and with --min-accuracy (or --max-ece) stops
    before labelling (exit 3) where it is below the floor (see docs/label-prefs.md, "The judge gate").
    After a change to the constitution, --amend PREVIOUS relabels only the pairs whose questions, sections or
    constraints changed. See docs/label-prefs.md and docs/constitutions.md.

    Example:

        cai generate examples/red_team.jsonl --n 2 --max-tokens 64 | cai label-prefs --principles 4 -o out/prefs.jsonl
        cai label-prefs out/pairs.jsonl --gold examples/gold-hhh.jsonl --min-accuracy 0.6 -o out/prefs.jsonl
    """
    from ..constitution import load_constitution
    from ..errors import CaiError
    from ..judge import COT_CLAMP, askable, load_judge_examples, parse_clamp, parse_min_confidence, parse_principles, parse_tier_confidence
    from ..judge.checks import floors, run_check, where_kept
    from ..runner import run_stage
    from ..stages.label_prefs import LabelConfig, LabelPrefs

    limits = floors(gold, min_accuracy, max_ece)
    if gold is not None and mode is not o.Mode.judge:
        raise CaiError(f"--gold measures the judge on gold pairs; --mode {mode.value} asks no judge (use --gold-field to score its labels)")
    cfg = LabelConfig(mode=mode.value, pair=pair.value if pair else None, pairs=pairs.value, fmt=format.value, swap=swap, cot=cot, gold=gold_field,
                      priority=priority.value, tier_confidence=parse_tier_confidence(tier_confidence), gate_threshold=gate_threshold,
                      ranker=ranker.value)
    cfg.clamp = parse_clamp(clamp) if clamp is not None else (COT_CLAMP if cot else None)
    cfg.min_confidence = parse_min_confidence(min_confidence)
    charter = None
    if mode is o.Mode.judge:
        charter = load_constitution(constitution)
        if askable(charter):  # without any question, the stage says so
            cfg.principles = parse_principles(principles, askable(charter))
        if judge_examples:
            cfg.examples, cfg.examples_source = load_judge_examples(judge_examples), judge_examples
    labeller = LabelPrefs(common.engine_options(), common.sampling(), charter, cfg, passage_tokens)
    if gold is not None:
        run_check(labeller, gold, limits, where_kept(common.output), "label-prefs", common.progress)
    run_stage(_amending(labeller, amend), common.run_options())  # dropped pairs go to OUT.dropped.jsonl, counted; the summary to OUT.summary.json


@command(app, "plan", threads=True)
def plan(
    input: o.InputArg = None,
    rows: o.PlanRowsOpt = None,
    sample: o.PlanSampleOpt = 32,
    rounds: o.PlanRoundsOpt = 2,
    rl: o.PlanRlOpt = True,
    n: o.NOpt = 2,
    principles: o.PrinciplesOpt = str(DEFAULT_PRINCIPLES),
    swap: o.SwapOpt = True,
    cot: o.CotOpt = False,
    constitution: o.ConstitutionOpt = None,
    few_shot: o.FewShotOpt = None,
    model: o.ModelOpt = None,
    engine: o.EngineOpt = Common.engine,
    max_tokens: o.MaxTokensOpt = None,
    seed: o.SeedOpt = Common.seed,
    output_tokens: o.OutputTokensOpt = None,
    throughput: o.ThroughputOpt = None,
    prefill_throughput: o.PrefillOpt = None,
    gpus: o.GpusOpt = 1,
    price: o.PriceOpt = None,
    measure: o.MeasureOpt = 0,
    json_out: o.PlanJsonOpt = None,
    synthesize: o.PlanSynthesizeOpt = False,
    kinds: o.KindsOpt = None,
    per_passage: o.PerPassageOpt = SynthesizeConfig.per_passage,
    domain: o.DomainOpt = None,
    examples: o.SynthExamplesOpt = None,
):
    """Before a run: per stage, the prompt and output tokens, generations and judge calls; at a throughput, hours and cost.

    Plans the README's pipeline by default: generate, --rounds of critique and revise (SL-CAI), then generate --n
    and label-prefs (RL-CAI), for every row of INPUT (or --rows), from prompts built for a sample of it and
    tokenized with the model's tokenizer. --synthesize plans `cai synthesize -c` first and the pipeline over the
    requests it writes. See docs/scale.md for the arithmetic and a worked example.

    Example:

        cai plan examples/red_team.jsonl --rows 100000 --output-tokens 200 --throughput 1500 --gpus 8 --price 2.5
        cai plan --synthesize -c assistant --per-passage 50 --output-tokens 60 --throughput 1500
    """
    import json

    from ..constitution import load_constitution
    from ..judge import parse_principles
    from ..output import check_targets, write_file
    from ..scale.plan import PlanConfig, make_plan, print_plan

    [target] = check_targets([("--json", json_out)], [("the input", input), *_constitution_input(constitution)], stdout=json_out == "-")
    charter = load_constitution(constitution)
    k = parse_principles(principles, len(charter.comparisons) or None) if rl else 0
    cfg = PlanConfig(rounds=rounds, n=n if rl else 0, principles=k, swap=swap, cot=cot, few_shot=few_shot, output_tokens=output_tokens, rows=rows, sample=sample)
    common = Common(model=model, engine=engine, max_tokens=max_tokens, seed=Common.seed if seed is None else seed)
    if synthesize:
        from ..stages.synthesize import Synthesize, synthesize_config

        cfg.synthesize = Synthesize(common.engine_options(), common.sampling(), charter, synthesize_config(kinds, per_passage, domain, examples))
    result = make_plan(input, common.engine_options(), common.sampling(), charter, cfg, throughput=throughput,
                       prefill_throughput=prefill_throughput, gpus=gpus, price=price, measure_rows=measure)
    text = json.dumps(result.as_dict(), indent=2)
    if json_out == "-":
        print(text)
        return
    print_plan(result)
    if target is not None:
        write_file(target, text + "\n")


def _constitution_input(constitution: str | None) -> list[tuple[str, str]]:
    """The constitution as an input of a command (no output may be it), where it is a file rather than a shipped name."""
    from pathlib import Path

    return [("the constitution", constitution)] if constitution and Path(constitution).is_file() else []


@command(constitution_app, "show")
def constitution_show(file: o.ConstitutionArg = "default", json_out: o.PrintJsonOpt = False, passage_tokens: o.PassageTokensOpt = None):
    """Print a constitution as a table: its principles (a document: its sections, with tier, `when`, hash), hard constraints, comparisons, behaviours.

    --json prints the same as one JSON object (a document's passages with their estimated tokens and hashes).

    Example:

        cai constitution show default
        cai constitution show assistant --json | jq '.sections[].passages'
    """
    import json

    from rich.console import Console

    from ..constitution import constitution_table, load_constitution
    from ..constitution.display import constitution_json
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized

    charter = sized(load_constitution(file), budget_for(None, override=passage_tokens))
    if json_out:
        print(json.dumps(constitution_json(charter), indent=2, ensure_ascii=False))
    else:
        Console().print(constitution_table(charter))


@command(constitution_app, "lint")
def constitution_lint(file: o.ConstitutionArg, json_out: o.PrintJsonOpt = False, passage_tokens: o.PassageTokensOpt = None):
    """Find what will not reach the model as meant: passages over budget, lead-ins without their list, routed non-guidance, tiers without a question, constraints no passage states, behaviours no section describes. Exit 1 when it finds something.

    Example:

        cai constitution lint policy.md --passage-tokens 256
    """
    import json

    from ..constitution import load_constitution
    from ..constitution.lint import format_findings, lint
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized

    charter = sized(load_constitution(file), budget_for(None, override=passage_tokens))
    findings = lint(charter)
    if json_out:
        print(json.dumps({"constitution": charter.source, "hash": charter.hash, "passage_tokens": charter.passage_tokens,
                          "findings": [f.as_dict() for f in findings]}, indent=2, ensure_ascii=False))
    else:
        print(format_findings(charter, findings))
    if findings:
        raise typer.Exit(1)


@command(constitution_app, "check")
def constitution_check(file: o.ConstitutionArg):
    """Validate a constitution (a Markdown document and its header, native YAML/JSON, Hugging Face recipe JSON or Anthropic's JSON); exit 2 on the first problem.

    Example:

        cai constitution check constitutions/default.yaml
        cai constitution check constitutions/assistant.md
    """

    from ..constitution import load_constitution

    c = load_constitution(file)
    units = f"{len(c.sections)} sections, {len(c.critiques)} routed" if c.is_document else f"{len(c.critiques)} critique principles"
    tiers = f", tiers {' > '.join(c.priorities)}" if c.priorities else ""
    print(
        f"{c.source}: ok ({c.format} format, {units}, {len(c.hard_constraints)} hard constraints, "
        f"{len(c.comparisons)} comparison questions, {len(c.few_shot)} few-shot examples{tiers}, hash {c.hash})"
    )
    if c.is_document and not c.priorities:
        print(f"{c.source}: no tiers or hard constraints declared; `cai constitution import {file}` drafts a header", file=sys.stderr)


@command(constitution_app, "schema")
def constitution_schema(shape: o.ShapeArg = o.Shape.list):
    """Print the JSON Schema of the native list format, or of a Markdown constitution's header (for editors and CI validation).

    Example:

        cai constitution schema > constitution.schema.json
        cai constitution schema document > header.schema.json
    """
    import json

    from ..constitution.schema import json_schema

    print(json.dumps(json_schema(shape), indent=2))


@command(constitution_app, "import")
def constitution_import(file: o.MarkdownArg, sidecar: o.SidecarOpt = False):
    """Draft the header of a Markdown constitution that has none: tiers guessed per section, the hard constraints found, each guess's reason as a comment.

    The YAML goes to stdout (the reasons also to stderr): check and edit it, then put it between `---` lines
    at the top of the document, or beside it as DOC.header.yaml (--sidecar writes that file).

    Example:

        cai constitution import policy.md --sidecar && cai constitution show policy.md
    """
    from pathlib import Path

    from ..constitution.document import sidecar_path
    from ..constitution.draft import draft_header
    from ..errors import ConstitutionError
    from ..output import check_targets, write_file

    side = sidecar_path(Path(file)) if sidecar else None
    if side is not None and (side.exists() or side.is_symlink()):
        raise ConstitutionError(f"{side}: exists; not overwritten (remove it, or edit it)")
    [target] = check_targets([("--sidecar", str(side) if side is not None else None)], [("the document", file)])
    header, notes = draft_header(file)
    print("\n".join(notes), file=sys.stderr)
    sys.stdout.write(header)
    if target is not None:
        write_file(target, header, exclusive=True)
        print(f"cai constitution import: header -> {side}", file=sys.stderr)


@command(constitution_app, "diff")
def constitution_diff(old: o.ConstitutionArg, new: o.ConstitutionArg):
    """List the sections (or principles), hard constraints, comparisons and behaviours that changed, were added or removed, by id and content hash; exit 1 when they differ (as `diff` does).

    Example:

        cai constitution diff policy-v1.md policy-v2.md
    """
    from ..constitution import load_constitution
    from ..constitution.diff import diff_constitutions, format_changes

    before, after = load_constitution(old), load_constitution(new)
    changes = diff_constitutions(before, after)
    print(format_changes(before, after, changes))
    if changes:
        raise typer.Exit(1)


@command(constitution_app, "route")
def constitution_route(rows: o.RouteRowsArg, constitution: o.ConstitutionOpt = None, top: o.RouteTopOpt = 3, json_out: o.PrintJsonOpt = False,
                       passage_tokens: o.PassageTokensOpt = None, ranker: o.RankerOpt = DEFAULT_RANKER):
    """Show why each row gets its passage: per row, the passages (and hard constraints) relevance routing ranks first, with their scores and the words that matched.

    A * marks the comparably relevant ones a round is drawn among. Under --ranker dense or hybrid each also shows its BM25 score, its cosine and its closest sentence. --json prints one object per row.

    Example:

        cai constitution route examples/red_team.jsonl -c assistant --top 5
    """
    import json

    from rich.console import Console

    from ..constitution import load_constitution
    from ..constitution.display import route_table
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized
    from ..constitution.routing import route_rows

    charter = sized(load_constitution(constitution), budget_for(None, override=passage_tokens))
    explained = route_rows(rows, charter, top, ranker)
    if json_out:
        for rid, info in explained:
            print(json.dumps({"id": rid, **info}, ensure_ascii=False))
    else:
        Console().print(route_table(explained, charter))


@command(constitution_app, "coverage")
def constitution_coverage(rows: o.CoverageRowsArg, constitution: o.CoverageConstitutionOpt = None, json_out: o.CoverageJsonOpt = False):
    """How often critique rounds used each section (or principle) and tier, and which sections were never used.

    Example:

        cai constitution coverage out/r2.jsonl -c assistant
    """
    import json

    from rich.console import Console

    from ..constitution.coverage import coverage_table, read_coverage

    cov, charter = read_coverage(None if rows == "-" else rows, constitution)
    if json_out:
        print(json.dumps(cov.as_dict(), indent=2))
    else:
        Console().print(coverage_table(cov, charter))


@command(judge_app, "check")
def judge_check(
    pairs: o.PairsArg,
    constitution: o.ConstitutionOpt = None,
    questions: o.QuestionsOpt = None,
    reversals: o.ReversalsOpt = None,
    limit: o.PairsLimitOpt = None,
    model: o.ModelOpt = None,
    engine: o.EngineOpt = Common.engine,
    base_url: o.BaseUrlOpt = None,
    gate_threshold: o.GateThresholdOpt = VIOLATION_THRESHOLD,
    passage_tokens: o.PassageTokensOpt = None,
    output: o.ReportOutOpt = None,
    progress: o.ProgressOpt = Common.progress,
    ranker: o.RankerOpt = DEFAULT_RANKER,
):
    """Does the judge read the constitution? Each comparison question is asked on the same pairs as written and with its meaning reversed (your --reversals, or drafted); per question, how often the preference flips, with its 95% interval. A judge that ignores the question flips nothing.

    Each hard constraint is also reworded to allow what it forbade: of the answers the gate stopped, how many it lets through. The cost is printed first. See docs/label-prefs.md ("Does the judge read the constitution?").

    Example:

        cai judge check examples/gold-hhh.jsonl --questions less-harmful,more-ethical --limit 12
        cai judge check out/prefs.jsonl -c assistant --reversals my-reversals.jsonl -o out/sensitivity.json
    """
    from ..engines import load_engine
    from ..judge.sensitivity import check_constitution
    from ..output import check_targets

    [target] = check_targets([("-o", output)], [("the pairs", pairs), ("--reversals", reversals), *_constitution_input(constitution)])
    common = Common(model=model, engine=engine, base_url=base_url)
    ids = {q.strip() for q in questions.split(",") if q.strip()} if questions else None
    opts = common.engine_options()
    check_constitution(pairs, constitution, ids, reversals, limit, opts, lambda: load_engine(opts), gate_threshold, passage_tokens, target, progress, ranker.value)


def main() -> None:
    from ..output import seal_stdout
    from ..threads import set_defaults

    set_defaults()  # before any command loads torch: its OpenMP runtime reads the settings once, as it loads

    try:
        app()
    finally:
        seal_stdout()  # the command's output is out: what runs at exit (an engine's shutdown logging) goes to stderr


if __name__ == "__main__":
    main()
