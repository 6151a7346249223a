"""The commands that read what the stages wrote or plan their work: `cai show`, `cai report`, `cai plan`."""

from __future__ import annotations

from ..engines import EngineOptions, SamplingOptions
from ..judge.principles import DEFAULT_PRINCIPLES
from ..show import WIDTH
from ..stages.synthesize_config import SynthesizeConfig
from ..stats import DEFAULT_BOOTSTRAP
from ..threads import ThreadOptions
from . import options as o
from .apps import app
from .plumbing import command


@command(app, "show")
def show(
    file: o.ShowFileArg = "-",
    limit: o.LimitOpt = None,
    width: o.WidthOpt = WIDTH,
    html_out: o.ShowHtmlOpt = None,
    on_error: o.OnErrorOpt = o.OnError.fail,
):
    """Print rows readably: the prompt, the first answer, each round's critique and revision, candidates, preferences.

    Reads every JSONL file cai writes (stage rows, exports, eval rows, OUT.errors.jsonl, OUT.dropped.jsonl, the rows
    in a side file); any other file (a summary, training metrics, an empty file) is one line saying what it is.

    Example:

        cai show out/revised.jsonl --limit 3
        cai show out/revised.jsonl --html out/revised.html
    """
    from ..show import show_file

    show_file(file, limit, width, html_out, skip_bad=on_error is o.OnError.skip)


@command(app, "report")
def report(results: o.ResultsArg, output: o.OutputOpt = None, json_out: o.JsonOutOpt = None, bootstrap: o.BootstrapOpt = DEFAULT_BOOTSTRAP):
    """Compare models: a table of every metric, Bradley–Terry ratings over all files, a figure or an HTML page.

    The figure shows whatever the results hold: the harm / over-refusal frontier of `cai eval --checkpoints`, harmlessness against helpfulness (win rates, ratings within a connected set of games, or the refusal detector's rates), each model's paired change against its baseline, a single model's refusal and deflection rates, declines per category, and, with gold labels (`eval --gold-field`, or a `label-prefs --gold-field` summary), the judge's reliability diagram and expected calibration error. Reads what `cai eval` writes (its rows JSONL or its summary JSON); any other file is one line saying what it is.

    Example:

        cai report out/eval-sl.jsonl out/eval-rl.jsonl -o out/report.png
        cai report out/eval-*.jsonl -o out/report.html
        cai report out/prefs.summary.json -o out/calibration.png
    """
    from ..report import run_report

    run_report(results, output, json_out, bootstrap)


@command(app, "plan")
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
    engine: o.EngineOpt = EngineOptions.engine,
    max_tokens: o.MaxTokensOpt = None,
    seed: o.SeedOpt = SamplingOptions.seed,
    output_tokens: o.OutputTokensOpt = None,
    throughput: o.ThroughputOpt = None,
    prefill_throughput: o.PrefillOpt = None,
    gpus: o.GpusOpt = 1,
    price: o.PriceOpt = None,
    measure: o.MeasureOpt = 0,
    json: o.PrintJsonOpt = False,
    json_out: o.JsonOutOpt = None,
    synthesize: o.PlanSynthesizeOpt = False,
    kinds: o.KindsOpt = None,
    per_passage: o.PerPassageOpt = SynthesizeConfig.per_passage,
    domain: o.DomainOpt = None,
    examples: o.SynthExamplesOpt = None,
    *, threads: ThreadOptions,
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
    from ..scale.plan import PlanConfig, plan_command

    cfg = PlanConfig(rounds=rounds, n=n if rl else 0, principles=principles if rl else 0, swap=swap, cot=cot, few_shot=few_shot,
                     output_tokens=output_tokens, rows=rows, sample=sample)
    engine_opts = EngineOptions(model=model, engine=engine)
    sampling = SamplingOptions(max_tokens=max_tokens, seed=seed).sampling(model, engine)
    if synthesize:
        from ..constitution import load_constitution
        from ..stages.synthesize import Synthesize
        from ..stages.synthesize_config import synthesize_config

        cfg.synthesize = Synthesize(engine_opts, sampling, load_constitution(constitution), synthesize_config(kinds, per_passage, domain, examples))
    plan_command(input, engine_opts, sampling, constitution, cfg, json_stdout=json, json_out=json_out, throughput=throughput,
                 prefill_throughput=prefill_throughput, gpus=gpus, price=price, measure_rows=measure)
