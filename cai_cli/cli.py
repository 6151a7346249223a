"""The `cai` command line: one thin function per stage. Heavy imports happen inside the commands."""

import sys
from typing import Annotated, Optional

import typer

from .common import Common, report_errors, stage_command
from .options import ConstitutionOpt, FewShotFileOpt, FewShotOpt, SkipThresholdOpt, SkipUnchangedOpt
from .train.options import InputArg as TrainInputArg
from .train.options import train_command

# One meaning and one default (cai_cli.judge.DEFAULT_PRINCIPLES) for every command that judges pairs.
PrinciplesOpt = Annotated[
    str,
    typer.Option(
        "--principles",
        help="Comparison principles averaged per comparison, drawn per comparison (seeded by --seed), or 'all'. "
        "eval: from the constitution on red-team prompts, from its helpfulness questions on benign ones.",
    ),
]

app = typer.Typer(
    name="cai",
    help="Constitutional AI, stage by stage over JSONL: generate → critique → revise → label-prefs → train.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
constitution_app = typer.Typer(help="Inspect and validate constitutions.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")


@stage_command(app, "generate")
def generate(
    common: Common,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per prompt; with N > 1 they go to `candidates`.")] = 1,
):
    """Sample a reply to each prompt: rows with `prompt` or `messages` gain `response` and `initial_response`.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 -o out/gen.jsonl
    """
    from .runner import run_stage
    from .stages.generate import Generate

    run_stage(Generate(common.engine_options(), common.sampling(n)), common.run_options())


@stage_command(app, "critique")
def critique(
    common: Common,
    constitution: ConstitutionOpt = None,
    few_shot: FewShotOpt = None,
    few_shot_file: FewShotFileOpt = None,
):
    """Critique each row's current `response` against one principle, drawn per row and per round (seeded).

    Appends a round {principle, when, response_label, critique_request, critique} to `rounds`. The principle is drawn among those whose `when` holds for the response (by the refusal detector). The model first sees the worked examples, each marked as a separate example. Chain with `cai revise`; repeat the pair for more rounds. See docs/critique-revise.md.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 | cai critique --max-tokens 64 | cai revise --max-tokens 64 > out/round1.jsonl
    """
    from .runner import run_stage
    from .stages.critique import Critique

    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    run_stage(Critique(common.engine_options(), common.sampling(), charter, few_shot, examples, source), common.run_options())


@stage_command(app, "revise")
def revise(
    common: Common,
    constitution: ConstitutionOpt = None,
    few_shot: FewShotOpt = None,
    few_shot_file: FewShotFileOpt = None,
    skip_unchanged: SkipUnchangedOpt = False,
    skip_threshold: SkipThresholdOpt = 0.5,
):
    """Revise each row's response to answer its last critique; the revision becomes `response`.

    Every round gets the model's revision, as in the method; `changed` says whether its text differs. Only a lead-in about the revision ("Sure, here is a revised response:") is stripped (the raw text stays in `revision_raw`); an empty revision is kept and marked `empty_revision`. With --skip-unchanged the model is asked, yes/no in both phrasings, whether the critique asks for any change, and the response is kept where P(change) < --skip-threshold (recorded in `skip_check`).

    Example:

        cai critique out/gen.jsonl --max-tokens 128 | cai revise --max-tokens 256 -o out/revised.jsonl
    """
    from .runner import run_stage
    from .stages.revise import Revise

    charter, examples, source = _charter_and_examples(constitution, few_shot_file)
    stage = Revise(common.engine_options(), common.sampling(), charter, few_shot, examples, source, skip_unchanged, skip_threshold)
    run_stage(stage, common.run_options())


def _charter_and_examples(constitution: str | None, few_shot_file: str | None):
    from .constitution import load_constitution, load_few_shot_file

    charter = load_constitution(constitution)
    if few_shot_file is None:
        return charter, None, None
    return charter, load_few_shot_file(few_shot_file), few_shot_file


@app.command("show")
def show(
    file: Annotated[str, typer.Argument(help="JSONL file from any stage; '-' reads stdin.")] = "-",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Show at most N rows.")] = None,
    width: Annotated[int, typer.Option("--width", min=20, help="Clip each text to this many characters.")] = 400,
    html_out: Annotated[Optional[str], typer.Option("--html", help="Write an HTML page instead: each row's prompt, first answer, and every round's principle, critique and revision with the changes highlighted (nothing clipped).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.")] = False,
):
    """Print rows readably: the prompt, the first answer, each round's critique and revision, candidates, preferences.

    Example:

        cai show out/revised.jsonl --limit 3
        cai show out/revised.jsonl --html out/revised.html
    """

    def body():
        from rich.console import Console

        from .jsonl import read_lines
        from .show import render_rows

        lines = read_lines(file)
        rows = [item.row for item in lines if item.row is not None]
        if html_out:
            from pathlib import Path

            from .show import render_html

            target = Path(html_out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_html(rows[:limit] if limit else rows, title=f"cai show {file}"), encoding="utf-8")
            print(f"cai show: {len(rows[:limit] if limit else rows)} rows -> {target}", file=sys.stderr)
        else:
            render_rows(rows[:limit] if limit else rows, Console(), width)
        bad = [item for item in lines if item.error is not None]
        if bad:
            print(f"cai show: {len(bad)} lines are not rows and were not shown (first: {bad[0].error})", file=sys.stderr)

    report_errors(body, lambda: verbose)()


@train_command(app, "train-sft")
def train_sft(
    rows: TrainInputArg,
    opts,
    targets: Annotated[str, typer.Option("--targets", help="final: the last revision of each row. all: every revision as its own example.")] = "final",
    mix: Annotated[str | None, typer.Option("--mix", help="JSONL of helpful rows (prompt or messages, and response) mixed in so the model stays helpful.")] = None,
    mix_ratio: Annotated[float | None, typer.Option("--mix-ratio", help="Share of helpful examples in the training set, 0 <= R < 1 (default: every --mix row once).")] = None,
    keep_truncated: Annotated[bool, typer.Option("--keep-truncated", help="Also train on revisions (and --mix replies) cut at --max-tokens; by default they are left out and counted.")] = False,
):
    """Fine-tune on (conversation, revision) pairs from `cai revise` with trl's SFTTrainer; loss on the reply only.

    DIR gets checkpoints/ (a rerun resumes), metrics.jsonl, then the merged model and tokenizer: `cai generate --model DIR`.

    Example:

        cai train-sft out/revised.jsonl -o out/sl-cai --mix out/helpful.jsonl --mix-ratio 0.3 --epochs 1
    """
    from .train.sft import train_sft as run

    run(opts, rows, targets, mix, mix_ratio, keep_truncated)


@train_command(app, "train-rm")
def train_rm(
    prefs: TrainInputArg,
    opts,
    eval_fraction: Annotated[float, typer.Option("--eval-fraction", help="Share of pairs held out to report accuracy (0 for none).")] = 0.1,
    soft: Annotated[bool, typer.Option("--soft/--hard", help="Soft Bradley-Terry loss on preference.p_chosen, or every pair as certain.")] = True,
):
    """Train a reward model on chosen/rejected pairs from `cai label-prefs` (trl's RewardTrainer, soft labels).

    Prints the held-out accuracy. DIR works as `cai score --reward-model DIR` and `cai train-policy --reward-model DIR`.

    Example:

        cai train-rm out/prefs.jsonl -o out/rm --epochs 1
    """
    from .train.rm import train_rm as run

    run(opts, prefs, eval_fraction, soft)


@train_command(app, "train-policy")
def train_policy(
    rows: TrainInputArg,
    opts,
    algo: Annotated[str, typer.Option("--algo", help="dpo: from labelled pairs. grpo, rloo: sample, score with --reward-model, improve.")] = "dpo",
    reward_model: Annotated[str | None, typer.Option("--reward-model", help="grpo/rloo: a folder from `cai train-rm`.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", min=0.0, help="KL strength toward the starting model (dpo 0.1, grpo 0.04, rloo 0.05).")] = None,
    num_generations: Annotated[int | None, typer.Option("--num-generations", min=2, help="grpo/rloo: samples per prompt (trl default: grpo 8, rloo 2).")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="grpo/rloo: new tokens per sampled completion.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, help="grpo/rloo: sampling temperature (default 1.0).")] = None,
    soft: Annotated[bool, typer.Option("--soft/--hard", help="dpo: conservative DPO on preference.p_chosen (label smoothing 1 - p per pair), or plain DPO (every pair as certain).")] = True,
):
    """RL-CAI: DPO straight from labelled pairs, or GRPO / RLOO on prompt rows against a reward model.

    Example:

        cai train-policy out/prefs.jsonl -o out/rl-cai --algo dpo --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-cai --algo grpo --reward-model out/rm --model out/sl-cai
    """
    from .train.policy import train_policy as run

    run(opts, rows, algo, reward_model, beta, num_generations, max_tokens, temperature, soft)


@stage_command(app, "score", model=False, sampling=False)
def score(
    common: Common,
    reward_model: Annotated[str | None, typer.Option("--reward-model", help="A folder from `cai train-rm`.")] = None,
):
    """Score rows with a reward model: adds `rewards` {response, candidates, chosen, rejected} for the fields a row has.

    Example:

        cai generate prompts.jsonl --n 4 | cai score --reward-model out/rm > scored.jsonl
    """
    from .errors import CaiError
    from .runner import run_stage
    from .stages.score import Score

    if reward_model is None:
        raise CaiError("--reward-model DIR is required (a folder from `cai train-rm`)")
    run_stage(Score(reward_model, common.batch_size), common.run_options())


@stage_command(app, "export", model=False, sampling=False)
def export(
    common: Common,
    format: Annotated[str | None, typer.Option("--format", "-f", help="sft: prompt/completion. prefs: prompt/chosen/rejected (+p_chosen). hf-cai: the HuggingFaceH4/cai-conversation-harmless columns.")] = None,
    keep_truncated: Annotated[bool, typer.Option("--keep-truncated", help="sft, hf-cai: also export revisions cut at --max-tokens (by default left out and counted).")] = False,
):
    """Write rows as datasets to train elsewhere: each line loads with datasets.load_dataset("json", ...) and trl takes it as is.

    Example:

        cai export out/revised.jsonl --format sft -o out/sft.jsonl
    """
    from .errors import CaiError
    from .runner import run_stage
    from .stages.export import FORMATS, Export

    if format is None:
        raise CaiError(f"--format is required: one of {', '.join(FORMATS)}")
    run_stage(Export(format, keep_truncated), common.run_options())


@stage_command(app, "eval", input_arg=False)
def evaluate(
    common: Common,
    prompts: Annotated[Optional[list[str]], typer.Option("--prompts", "-p", help="Prompt JSONL (repeatable). Rows with `risky_looking` count as benign, others as red-team; an `eval_set` field overrides. Absent: stdin.")] = None,
    benign: Annotated[Optional[list[str]], typer.Option("--benign", help="Prompt JSONL whose rows are all benign (repeatable).")] = None,
    answers: Annotated[Optional[list[str]], typer.Option("--answers", help="JSONL rows that already hold `prompt`/`messages` and `response` (from any model or server): score them, generate nothing (repeatable).")] = None,
    baseline_field: Annotated[str | None, typer.Option("--baseline-field", help="With --answers: the field holding the baseline's answer; enables the judge's win rates.")] = None,
    benign_field: Annotated[str | None, typer.Option("--benign-field", help="Field marking benign rows (true) and red-team rows (false), e.g. safe; benign rows count in over-refusal. Default: rows with `risky_looking` are benign.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", "-b", help="Model to compare with ('embedded' for the embedded model); enables the win rates.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The model's name in results and reports (default: its --model).")] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge model for win rates and --refusal-judge (default: the embedded model).")] = None,
    constitution: ConstitutionOpt = None,
    principles: PrinciplesOpt = "4",
    refusal_judge: Annotated[bool, typer.Option("--refusal-judge", help="Also ask the judge, yes or no, whether each answer refused.")] = False,
    reward_model: Annotated[str | None, typer.Option("--reward-model", help="Score every answer with this reward model (from `cai train-rm`).")] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="Summary JSON (default: beside -o, OUT.summary.json).")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none).")] = 1000,
):
    """Evaluate a model: refusals, deflections, over-refusal, judge win rates against a baseline, reward.

    Writes one row per prompt (both answers, the detector's verdicts, the judge's votes) and a
    summary JSON (rates with Wilson intervals, the judge's position and length bias); prints the table.
    `--limit N` takes N rows from each prompt file. `--answers FILE` scores answers that already exist.
    Compare many models with one `cai eval` each, then `cai report`. See docs/eval.md for what each number means.

    The refusal detector, measured on 167 held-out human-labelled replies (OpenAI's Safety RBR gold set):
    71% accuracy telling answers from non-answers (a refusal-prefix baseline: 59%), 90% of refusals found
    (precision 0.56); reproduce with `python bench/bench_refusal.py`.

    Example:

        cai eval -p examples/red_team.jsonl -p examples/benign.jsonl --model out/rl-cai --baseline embedded -o out/eval-rl.jsonl
        cai eval --answers served.jsonl --baseline-field reference --benign-field safe -o out/eval-served.jsonl
    """
    from .constitution import load_constitution
    from .eval.run import EvalConfig, run_eval

    from .errors import CaiError

    if answers and (prompts or benign or baseline):
        raise CaiError("--answers scores existing answers: it does not take --prompts, --benign or --baseline (use --baseline-field)")
    if answers and reward_model:
        raise CaiError("--reward-model with --answers is not supported yet: score the rows with `cai score` first")
    if baseline_field and not answers:
        raise CaiError("--baseline-field names a field of --answers rows; to generate a baseline's answers use --baseline MODEL")
    sources = [(p, None) for p in prompts or []] + [(p, "benign") for p in benign or []] + [(p, None) for p in answers or []]
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
        reward_model=reward_model,
        summary=summary,
        bootstrap=bootstrap,
        answers=bool(answers),
        baseline_field=baseline_field,
        benign_field=benign_field,
    )
    from .report import print_summary

    print_summary(run_eval(cfg))


@app.command("report")
def report(
    results: Annotated[list[str], typer.Argument(help="Results from `cai eval`: the rows JSONL (or the summary JSON), one file per model.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Figure (.png, .svg, .pdf): harmlessness vs helpfulness, change against the baseline, declines per category. .html adds the table and every prompt's answers side by side.")] = None,
    json_out: Annotated[str | None, typer.Option("--json", help="Also write the merged metrics and ratings as JSON.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none).")] = 1000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.")] = False,
):
    """Compare models: a table of every metric, Bradley–Terry ratings over all files, a figure or an HTML page.

    Example:

        cai report out/eval-sl.jsonl out/eval-rl.jsonl -o out/report.png
        cai report out/eval-*.jsonl -o out/report.html
    """

    def body():
        from .report import run_report

        run_report(results, output, json_out, bootstrap)

    report_errors(body, lambda: verbose)()


@stage_command(app, "label-prefs")
def label_prefs(
    common: Common,
    constitution: ConstitutionOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="judge: the AI judge's soft label. revision-wins: the revision is chosen over the first reply (p_chosen 1.0).")] = "judge",
    pair: Annotated[str | None, typer.Option("--pair", help="candidates: compare `candidates` (from `generate --n N`). initial-vs-final: `initial_response` vs the revised `response`. Default: candidates (initial-vs-final under --mode revision-wins).")] = None,
    pairs: Annotated[str, typer.Option("--pairs", help="With more than two candidates: best-worst (one row: best vs worst by mean win probability) or all (one row per pair).")] = "best-worst",
    principles: PrinciplesOpt = "4",
    format: Annotated[str, typer.Option("--format", help="chat: the model's chat template. plain: the paper's plain-text layout (options ' (A)'/' (B)' after 'The answer is:'), for base models.")] = "chat",
    swap: Annotated[bool, typer.Option("--swap/--no-swap", help="Ask in both orders and average (cancels the judge's position bias).")] = True,
    cot: Annotated[bool, typer.Option("--cot", help="The judge writes its reasoning first (kept in each vote), then its answer is scored; probabilities are clamped.")] = False,
    clamp: Annotated[str | None, typer.Option("--clamp", help="LO,HI: clamp each principle's probability once its two orders are combined (default 0.4,0.6 with --cot, none without).")] = None,
    min_confidence: Annotated[float | None, typer.Option("--min-confidence", help="Drop pairs whose p_chosen is below P (0.5-1); they go to OUTPUT.dropped.jsonl and are counted.")] = None,
    gold: Annotated[str | None, typer.Option("--gold", help="Field naming the better response (candidate index, A/B, revision/initial, or its text): report the judge's accuracy with a 95% Wilson interval.")] = None,
    judge_examples: Annotated[str | None, typer.Option("--judge-examples", help="Worked judgments shown before each question: JSONL of {prompt|messages, a, b, answer: A|B}, or the paper's JSON list of {prompt, corrects, incorrects}.")] = None,
):
    """Label preference pairs with an AI judge: soft p_chosen from option log-probs, both orders, K principles.

    Adds `chosen`/`rejected` (trl's conversational preference format, the prompt conversation included)
    and `preference` {p_chosen, margin, votes, orders_agreed, truncated, ...}. The summary line (and, with -o OUT,
    OUT.summary.json) reports the judge's position bias, order disagreement, length bias and each principle's
    agreement with the ensemble. See docs/label-prefs.md.

    Example:

        cai generate examples/red_team.jsonl --n 2 --max-tokens 64 | cai label-prefs --principles 4 -o out/prefs.jsonl
    """
    from .constitution import load_constitution
    from .judge import load_judge_examples, parse_clamp, parse_min_confidence, parse_principles
    from .stages.label_prefs import LabelConfig, LabelPrefs, run_label_prefs, write_summary

    cfg = LabelConfig(mode=mode, pair=pair, pairs=pairs, fmt=format, swap=swap, cot=cot, gold=gold)
    cfg.clamp = parse_clamp(clamp if clamp is not None else ("0.4,0.6" if cot else None))
    cfg.min_confidence = parse_min_confidence(min_confidence)
    charter = None
    if mode == "judge":
        charter = load_constitution(constitution)
        if charter.comparisons:  # without any, the stage says so
            cfg.principles = parse_principles(principles, len(charter.comparisons))
        if judge_examples:
            cfg.examples, cfg.examples_source = load_judge_examples(judge_examples), judge_examples
    stage = LabelPrefs(common.engine_options(), common.sampling(), charter, cfg)
    run_label_prefs(stage, common.run_options())
    target = write_summary(stage, common.run_options().output)
    if target is not None:
        print(f"cai label-prefs: summary -> {target}", file=sys.stderr)


def _verbose_flag():
    return typer.Option("--verbose", "-v", help="Show the traceback on errors.")


@constitution_app.command("show")
def constitution_show(
    file: Annotated[str, typer.Argument(help="Constitution file or shipped name.")] = "default",
    verbose: Annotated[bool, _verbose_flag()] = False,
):
    """Print a constitution as readable tables.

    Example:

        cai constitution show default
    """

    def body():
        from rich.console import Console

        from .constitution import constitution_table, load_constitution

        tables = constitution_table(load_constitution(file))
        console = Console()
        for table in tables if isinstance(tables, list) else [tables]:
            console.print(table)

    report_errors(body, lambda: verbose)()


@constitution_app.command("check")
def constitution_check(
    file: Annotated[str, typer.Argument(help="Constitution file or shipped name.")],
    verbose: Annotated[bool, _verbose_flag()] = False,
):
    """Validate a constitution (native YAML/JSON, Hugging Face recipe JSON or Anthropic's JSON); exit 2 on the first problem.

    Example:

        cai constitution check constitutions/default.yaml
    """

    def body():
        from .constitution import load_constitution

        c = load_constitution(file)
        print(
            f"{c.source}: ok ({c.format} format, {len(c.critiques)} critique principles, "
            f"{len(c.comparisons)} comparison questions, {len(c.few_shot)} few-shot examples, hash {c.hash})"
        )

    report_errors(body, lambda: verbose)()


@constitution_app.command("schema")
def constitution_schema(verbose: Annotated[bool, _verbose_flag()] = False):
    """Print the JSON Schema of the native constitution format (for editors and CI validation).

    Example:

        cai constitution schema > constitution.schema.json
    """

    def body():
        import json

        from .constitution.schema import json_schema

        print(json.dumps(json_schema(), indent=2))

    report_errors(body, lambda: verbose)()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
