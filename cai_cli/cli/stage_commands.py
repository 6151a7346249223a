"""The stage commands: one thin function each, building its stage from its options and handing it to the runner."""

from __future__ import annotations

from dataclasses import replace

from ..constitution.routing import DEFAULT_RANKER
from ..engines import EngineOptions, Sampling, SamplingOptions
from ..judge.options import JudgeGateOptions, JudgeOptions, JudgeRewardOptions
from ..runner import RunOptions
from ..scale.ray_options import RayOptions
from ..stages.critique_prompts import SKIP_THRESHOLD
from ..stages.label_prefs import LabelConfig
from ..stages.synthesize_config import SynthesizeConfig
from ..threads import ThreadOptions
from . import options as o
from .apps import app
from .plumbing import command


def ready_to_run(input: str | None, run: RunOptions, ray: RayOptions, engine: EngineOptions | None = None) -> tuple[EngineOptions | None, RunOptions]:
    """ENGINE with the run's --batch-size, as --ray's actors start it; RUN reading INPUT, its batches where --ray says."""
    if engine is not None:
        engine = ray.engine_options(replace(engine, batch_size=run.batch_size))
    return engine, replace(run, input=input, executor=ray.executor(engine))


@command(app, "generate")
def generate(input: o.InputArg = None, n: o.NOpt = Sampling.n, *, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions,
             threads: ThreadOptions):
    """Sample a reply to each prompt: rows with `prompt` or `messages` gain `response` and `initial_response`.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 -o out/gen.jsonl
    """
    from ..runner import run_stage
    from ..stages.generate import Generate

    model, run = ready_to_run(input, run, ray, engine)
    assert model is not None
    run_stage(Generate(model, sampling.sampling(engine.model, engine.engine, n)), run)


@command(app, "synthesize")
def synthesize(
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
    *, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions, threads: ThreadOptions,
):
    """Write requests from the constitution: for each routed passage (a list: principle) and each hard constraint, --per-passage requests of each kind.

    Each row is a prompt row for `cai generate` and `cai eval`: `prompt` (or `messages`, a short conversation ending with the request), `kind` (harmful, lookalike, benign), `passage` and `passage_hash`, `eval_set` and `category` (eval's red-team and benign sets), and meta.synthesize (constitution name and hash, the persona, phrasing, length and turns drawn from the row's seed, finish reason). What is not one request (empty, cut, a refusal to write it, a list, an answer) is left out with its reason, and so is a near-duplicate of a request kept before it or of --exclude; OUTPUT.dropped.jsonl keeps them, the summary counts them. A label or quotes around the request are removed and marked (meta.synthesize.cleaned, raw). See docs/constitutions.md.

    Example:

        cai synthesize -c assistant --per-passage 2 --max-tokens 96 -o out/synth.jsonl
        cai synthesize -c policy.md --until-covered out/r2.jsonl --engine openai --base-url http://localhost:8000/v1 -o out/more.jsonl
    """
    import sys

    from ..constitution import load_constitution
    from ..runner import run_stage
    from ..stages.synthesize import Synthesize
    from ..stages.synthesize_config import synthesize_config

    model, run = ready_to_run(None, run, ray, engine)
    assert model is not None
    cfg = synthesize_config(kinds, per_passage, domain, examples, exclude, similarity, passage_tokens, reuse, until_covered)
    stage = Synthesize(model, sampling.sampling(engine.model, engine.engine), load_constitution(constitution), cfg)
    work = stage.work(until_covered, covered_at)
    if work is None:
        print(f"cai synthesize: every passage and constraint of {stage.constitution.source} is used at least {covered_at} times in {until_covered}; "
              "nothing to write", file=sys.stderr)
        return
    run_stage(stage, replace(run, rows=work))


@command(app, "critique")
def critique(
    input: o.InputArg = None,
    constitution: o.ConstitutionOpt = None,
    few_shot: o.FewShotOpt = None,
    few_shot_file: o.FewShotFileOpt = None,
    routing: o.RoutingOpt = None,
    gate_threshold: o.GateThresholdOpt = JudgeOptions.gate_threshold,
    amend: o.AmendOpt = None,
    passage_tokens: o.PassageTokensOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
    *, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions, threads: ThreadOptions,
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

    model, run = ready_to_run(input, run, ray, engine)
    assert model is not None
    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    stage = Critique(model, sampling.sampling(engine.model, engine.engine), charter, few_shot, examples, source, routing, gate_threshold, passage_tokens, ranker)
    run_stage(_amending(stage, amend), run)


@command(app, "revise")
def revise(
    input: o.InputArg = None,
    constitution: o.ConstitutionOpt = None,
    few_shot: o.FewShotOpt = None,
    few_shot_file: o.FewShotFileOpt = None,
    skip_unchanged: o.SkipUnchangedOpt = False,
    skip_threshold: o.SkipThresholdOpt = SKIP_THRESHOLD,
    amend: o.AmendOpt = None,
    *, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions, threads: ThreadOptions,
):
    """Revise each row's response to answer its last critique; the revision becomes `response`.

    Every round gets the model's revision, as in the method; `changed` says whether its text differs, `revision_finish_reason` why it stopped (`length`: cut at --max-tokens). Only a lead-in that stands apart from the answer ("Sure, here is a revised response:" on its own line, "Revised response:") is stripped, never words of the answer (the raw text stays in `revision_raw`); an empty revision is kept and marked `empty_revision`. With --skip-unchanged the model is asked, yes/no in both phrasings, whether the critique asks for any change, and the response is kept where P(change) < --skip-threshold (recorded in `skip_check`). A round the hard-constraint gate gave to a constraint is revised with that constraint's revision request. --amend PREVIOUS recomputes only the rows whose input or principle changed.

    Example:

        cai critique out/gen.jsonl --max-tokens 128 | cai revise --max-tokens 256 -o out/revised.jsonl
    """
    from ..runner import run_stage
    from ..stages.revise import Revise

    model, run = ready_to_run(input, run, ray, engine)
    assert model is not None
    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    stage = Revise(model, sampling.sampling(engine.model, engine.engine), charter, few_shot, examples, source, skip_unchanged, skip_threshold)
    run_stage(_amending(stage, amend), run)


def _amending(stage, amend: str | None):
    """STAGE, or with --amend PREVIOUS the stage that copies what a changed constitution leaves untouched."""
    if amend is None:
        return stage
    from ..stages.amend import Amending

    return Amending(stage, amend)


def _charter_and_examples(constitution: str | None, few_shot_file: str | None):
    from ..constitution import load_constitution, load_few_shot_file

    charter = load_constitution(constitution)
    if few_shot_file is None:
        return charter, None, None
    return charter, load_few_shot_file(few_shot_file), few_shot_file


@command(app, "label-prefs")
def label_prefs(
    input: o.InputArg = None,
    constitution: o.ConstitutionOpt = None,
    mode: o.ModeOpt = LabelConfig.mode,
    pair: o.PairOpt = None,
    pairs: o.PairsOpt = LabelConfig.pairs,
    judge_format: o.JudgeFormatOpt = LabelConfig.fmt,
    swap: o.SwapOpt = LabelConfig.swap,
    cot: o.CotOpt = LabelConfig.cot,
    clamp: o.ClampOpt = None,
    min_confidence: o.MinConfidenceOpt = None,
    gold_field: o.GoldFieldOpt = None,
    judge_examples: o.JudgeExamplesOpt = None,
    amend: o.AmendOpt = None,
    passage_tokens: o.PassageTokensOpt = None,
    ranker: o.RankerOpt = DEFAULT_RANKER,
    *, judge: JudgeOptions, gate: JudgeGateOptions, run: RunOptions, engine: EngineOptions, sampling: SamplingOptions, ray: RayOptions, threads: ThreadOptions,
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
    from ..judge import COT_CLAMP, askable, load_judge_examples, parse_clamp, parse_min_confidence, parse_principles
    from ..runner import run_stage
    from ..stages.label_prefs import LabelPrefs

    if gate.gold is not None and mode is not o.Mode.judge:
        raise CaiError(f"--gold measures the judge on gold pairs; --mode {mode.value} asks no judge (use --gold-field to score its labels)")
    model, run = ready_to_run(input, run, ray, engine)
    assert model is not None
    cfg = LabelConfig(mode=mode, pair=pair, pairs=pairs, fmt=judge_format, swap=swap, cot=cot, gold=gold_field, priority=judge.priority,
                      tier_confidence=judge.tier_confidence, gate_threshold=judge.gate_threshold, ranker=ranker)
    cfg.clamp = parse_clamp(clamp) if clamp is not None else (COT_CLAMP if cot else None)
    cfg.min_confidence = parse_min_confidence(min_confidence)
    charter = None
    if mode is o.Mode.judge:
        charter = load_constitution(constitution)
        if askable(charter):  # without any question, the stage says so
            cfg.principles = parse_principles(judge.principles, askable(charter))
        if judge_examples:
            cfg.examples, cfg.examples_source = load_judge_examples(judge_examples), judge_examples
    stage = LabelPrefs(model, sampling.sampling(engine.model, engine.engine), charter, cfg, passage_tokens)
    if gate.gold is not None:
        from ..judge.checks import run_check, where_kept
        from ..stages.label_prefs_gold import LabelPrefsOnGold

        run_check(LabelPrefsOnGold(stage), gate.gold, gate.floors(), where_kept(run.output), "label-prefs", run.progress)
    run_stage(_amending(stage, amend), run)  # dropped pairs go to OUT.dropped.jsonl, counted; the summary to OUT.summary.json


@command(app, "score")
def score(
    input: o.InputArg = None,
    reward: o.RewardSourceOpt = None,
    reward_model: o.RewardModelOpt = None,
    constitution: o.ConstitutionOpt = None,
    *, judge: JudgeRewardOptions, gate: JudgeGateOptions, run: RunOptions, ray: RayOptions, threads: ThreadOptions,
):
    """Score rows with a reward model, or with the judge: adds `rewards` {response, candidates, chosen, rejected} for the fields a row has.

    --reward judge gives the rewards `train-policy --reward judge` trains on: `rewards` the weighted total, `reward_parts` each tier's and hard constraint's; a row's candidates are one group (chosen and rejected a group of two). `cai score --reward judge DIR/samples.jsonl` re-scores what a judge-trained policy sampled, to the same numbers.

    Each text is scored alone (no padding), so its score is the same whatever --batch-size. With --reward judge, --gold FILE measures the judge's rewards on gold pairs first (OUT.judge-gate.json), and --min-accuracy / --max-ece stop before scoring (exit 3) where it is below the floor.

    Example:

        cai generate prompts.jsonl --n 4 | cai score --reward-model out/rm > scored.jsonl
        cai generate prompts.jsonl --n 4 | cai score --reward judge -c assistant > judged.jsonl
    """
    from ..errors import CaiError
    from ..runner import run_stage
    from ..train.policy import RewardSource

    source = reward or (RewardSource.model if reward_model is not None else None)
    if source is None:
        raise CaiError("cai score needs --reward-model DIR (a reward model from `cai train-rm`) or --reward judge (the constitutional judge)")
    _, run = ready_to_run(input, run, ray)
    if source is RewardSource.model:
        from ..stages.score import Score

        judge.refuse_unused("--reward judge", (["--constitution"] if constitution else []) + gate.given())
        if reward_model is None:
            raise CaiError("--reward model needs --reward-model DIR (a reward model from `cai train-rm`)")
        run_stage(Score(reward_model), run)
        return
    if reward_model is not None:
        raise CaiError("--reward judge scores with the constitutional judge; --reward-model is for --reward model")
    from ..constitution import load_constitution
    from ..stages.score import JudgeScore

    engine = replace(judge.engine.engine_options(), batch_size=run.batch_size)
    scorer = JudgeScore(engine, load_constitution(constitution), judge.reward_config(), judge.reward_weights)
    if gate.gold is not None:
        from ..judge.checks import run_check, where_kept

        run_check(scorer.gold_judged(), gate.gold, gate.floors(), where_kept(run.output), "score", run.progress)
    run_stage(scorer, run)


@command(app, "export")
def export(format: o.ExportFormatOpt, input: o.InputArg = None, keep_truncated: o.KeepTruncatedOpt = False, *, run: RunOptions):
    """Write rows as datasets to train elsewhere: each line loads with datasets.load_dataset("json", ...) and trl takes it as is.

    A row that would make a bad example (a text cut at --max-tokens: the final revision, and for hf-cai the last critique, unless --keep-truncated; a pair of one text) is left out, counted by reason, and kept with its reason in OUTPUT.dropped.jsonl (or --dropped PATH).

    Example:

        cai export out/revised.jsonl --format sft -o out/sft.jsonl
    """
    from ..runner import run_stage
    from ..stages.export import Export

    run_stage(Export(format, keep_truncated), replace(run, input=input))
