"""Every command's own options, each declared once, in help panels; closed choices are Enums so --help lists them.

The options a group of commands shares are declared on their option group, the dataclass that uses them
(runner.RunOptions, engines.EngineOptions, engines.SamplingOptions, the judge's groups in judge/options.py,
scale/ray_options.RayOptions, train.common.TrainOptions), and offered by cli/groups.py; a command that takes one
option of a group names it here through `field_option`. The default sits with the command, read from the library module
that owns it. Each closed choice is the Enum of the module that uses it, imported here. Light: no torch, no engine.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..constitution.model import Shape
from ..constitution.routing import Routing
from ..engines import EngineOptions, SamplingOptions
from ..eval.suites import Suite
from ..flags import EVAL_PANEL, IO_PANEL, JUDGE_PANEL, MODEL_PANEL, PLAN_PANEL, SAMPLING_PANEL, SYNTH_PANEL, TRAIN_PANEL
from ..judge.maths import COT_CLAMP
from ..judge.options import JudgeOptions, JudgeRewardOptions
from ..judge.questions import JudgeFormat
from ..refusal import Detector
from ..runner import OnError, RunOptions
from ..stages.export import ExportFormat
from ..stages.label_prefs import Mode, Pairs, PairSource
from ..stages.synthesize_prompts import Kind
from ..train.policy import Algo, RewardSource
from ..trl_examples import Targets
from .groups import field_option

__all__ = ["Algo", "ExportFormat", "JudgeFormat", "Kind", "Mode", "OnError", "PairSource", "Pairs", "RewardSource", "Routing", "Shape", "Suite", "Targets"]

# ---- one option of a group, for a command that takes that option alone -------------------------------------------
OutputOpt = field_option(RunOptions, "output")
LimitOpt = field_option(RunOptions, "limit")
OnErrorOpt = field_option(RunOptions, "on_error")
ModelOpt = field_option(EngineOptions, "model")
EngineOpt = field_option(EngineOptions, "engine")
MaxTokensOpt = field_option(SamplingOptions, "max_tokens")
SeedOpt = field_option(SamplingOptions, "seed")
TemperatureOpt = field_option(SamplingOptions, "temperature")
PrinciplesOpt = field_option(JudgeOptions, "principles")
RankerOpt = field_option(JudgeRewardOptions, "ranker")
GateThresholdOpt = field_option(JudgeOptions, "gate_threshold")
ProgressOpt = field_option(RunOptions, "progress")

# ---- every command ---------------------------------------------------------------------------------
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.", rich_help_panel=IO_PANEL)]

# ---- input and output ------------------------------------------------------------------------------
InputArg = Annotated[
    Optional[str], typer.Argument(help="Input JSONL file (gzip, bzip2 or xz read as they are); '-' or absent reads stdin.", show_default=False)
]
AmendOpt = Annotated[
    Optional[str],
    typer.Option(
        "--amend", metavar="PREVIOUS_OUTPUT",
        help="This stage's output from an earlier run under an older constitution: recompute only the rows whose "
        "recorded sections, principles, comparison questions or hard constraints changed (or whose input did), copy the "
        "rest; meta.<stage>.amend marks each row copied (with the constitution hash it was made under) or recomputed (why).",
        rich_help_panel=IO_PANEL,
    ),
]
WidthOpt = Annotated[int, typer.Option("--width", min=20, help="Clip each text to this many characters.", rich_help_panel=IO_PANEL)]
ShowFileArg = Annotated[str, typer.Argument(help="JSONL file cai wrote (any stage, export, errors, dropped rows); '-' reads stdin.")]

# ---- model and engine ------------------------------------------------------------------------------
ConstitutionOpt = Annotated[
    Optional[str],
    typer.Option(
        "--constitution", "-c", show_default="default; coverage: the one the rows record",
        help="Constitution file, or a shipped name (default, humanity, assistant). coverage: list the sections it routes that no round "
        "used (one that does not load from here is an error naming it).",
        rich_help_panel=MODEL_PANEL,
    ),
]
FewShotOpt = Annotated[
    Optional[int],
    typer.Option(
        "--few-shot", min=0, show_default="all that fit",
        help="Show at most N worked examples (the constitution's, or --few-shot-file's). Default: all of them that fit the "
        "model's context with the row and --max-tokens; per row, examples that do not fit are dropped from the end "
        "(meta.<stage>.few_shot records how many were shown).",
        rich_help_panel=MODEL_PANEL,
    ),
]
FewShotFileOpt = Annotated[
    Optional[str],
    typer.Option(
        "--few-shot-file",
        help="Worked examples from a file instead of the constitution's: the paper's CritiqueRevisionFewShotPrompts.json "
        "(a list of Human:/Assistant:/CritiqueRequest:/Critique:/RevisionRequest:/Revision: transcripts) or a "
        "YAML/JSON list of few-shot entries.",
        rich_help_panel=MODEL_PANEL,
    ),
]
SkipUnchangedOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unchanged",
        help="Keep the response (no revision) where the model, asked yes/no in both phrasings whether the critique "
        "asks for any change, gives P(change) below --skip-threshold; each round records skip_check.",
    ),
]
SkipThresholdOpt = Annotated[
    float, typer.Option("--skip-threshold", min=0.0, max=1.0, help="With --skip-unchanged: skip where P(change) is below this.")
]
ConstitutionArg = Annotated[str, typer.Argument(help="Constitution file (.yaml, .json, or a Markdown document .md) or shipped name.")]
RoutingOpt = Annotated[
    Optional[Routing],
    typer.Option(
        "--routing", show_default="relevance for a document, uniform for a list",
        help="relevance: per row and round, a principle (a document: a passage, or a hard constraint the conversation "
        "names) relevant to the conversation, ranked with BM25, drawn with --seed among the comparably relevant, tier "
        "weights reordering only those. uniform: the original method's uniform draw.",
        rich_help_panel=MODEL_PANEL,
    ),
]
PassageTokensOpt = Annotated[
    Optional[int],
    typer.Option(
        "--passage-tokens", show_default="an eighth of the model's context, at most 512",
        help="A Markdown constitution is split into passages of at most this many tokens (estimated, 4 characters a "
        "token), never inside a list or after a lead-in: what routing ranks and the model is shown, whole.",
        rich_help_panel=MODEL_PANEL,
    ),
]
ShapeArg = Annotated[Shape, typer.Argument(help="list: a YAML/JSON constitution. document: a Markdown constitution's header.")]
MarkdownArg = Annotated[str, typer.Argument(help="A Markdown constitution (.md).")]
SidecarOpt = Annotated[
    bool, typer.Option("--sidecar", help="Also write the draft to DOC.header.yaml beside the document (never over an existing file).")
]
CoverageRowsArg = Annotated[str, typer.Argument(help="JSONL rows from `cai critique`/`cai revise` or `cai synthesize` ('-' reads stdin).")]
RouteRowsArg = Annotated[str, typer.Argument(help="JSONL rows with `prompt` or `messages` (and `response`, ranked with them as critique does; '-' reads stdin).")]
RouteTopOpt = Annotated[int, typer.Option("--top", min=1, help="How many passages (or principles, constraints) to show per row, best first.")]
PrintJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line where there are several) instead of a table.")]
JsonOutOpt = Annotated[Optional[str], typer.Option("--json-out", metavar="PATH", help="Also write it as JSON to PATH.", rich_help_panel=IO_PANEL)]
RewardModelOpt = Annotated[Optional[str], typer.Option("--reward-model", help="A reward model folder from `cai train-rm`.", rich_help_panel=MODEL_PANEL)]


# ---- cai plan ---------------------------------------------------------------------------------------
PlanRowsOpt = Annotated[Optional[int], typer.Option("--rows", min=1, show_default="the input's", help="Rows to plan for (the input is then a sample of them).", rich_help_panel=PLAN_PANEL)]
PlanSampleOpt = Annotated[int, typer.Option("--sample", min=1, help="Rows of the input whose prompts are built and tokenized.", rich_help_panel=PLAN_PANEL)]
PlanRoundsOpt = Annotated[int, typer.Option("--rounds", min=0, help="SL-CAI: critique and revise rounds after generate.", rich_help_panel=PLAN_PANEL)]
PlanRlOpt = Annotated[bool, typer.Option("--rl/--no-rl", help="RL-CAI: generate --n candidates, then label-prefs.", rich_help_panel=PLAN_PANEL)]
OutputTokensOpt = Annotated[
    Optional[float],
    typer.Option("--output-tokens", min=1.0, show_default="measured, else --max-tokens", help="Mean tokens the model writes per text.", rich_help_panel=PLAN_PANEL),
]
ThroughputOpt = Annotated[Optional[float], typer.Option("--throughput", min=0.001, help="Output tokens per second per GPU, for hours and cost.", rich_help_panel=PLAN_PANEL)]
PrefillOpt = Annotated[
    Optional[float], typer.Option("--prefill-throughput", min=0.001, show_default="20 x --throughput", help="Prompt tokens per second per GPU.", rich_help_panel=PLAN_PANEL)
]
GpusOpt = Annotated[int, typer.Option("--gpus", min=1, help="GPUs working at once (hours = GPU-hours / GPUs).", rich_help_panel=PLAN_PANEL)]
PriceOpt = Annotated[Optional[float], typer.Option("--price", min=0.0, help="Money per GPU-hour, for the cost.", rich_help_panel=PLAN_PANEL)]
MeasureOpt = Annotated[
    int, typer.Option("--measure", min=0, help="Run the pipeline here on N sample rows and time each stage (instead of --throughput).", rich_help_panel=PLAN_PANEL)
]

# ---- sampling --------------------------------------------------------------------------------------

NOpt = Annotated[int, typer.Option("--n", min=1, help="Samples per prompt; with N > 1 they go to `candidates`.", rich_help_panel=SAMPLING_PANEL)]

# ---- the judge: label-prefs and eval ---------------------------------------------------------------
ModeOpt = Annotated[
    Mode, typer.Option("--mode", help="judge: the AI judge's soft label. revision-wins: the revision is chosen over the first reply (p_chosen 1.0).", rich_help_panel=JUDGE_PANEL)
]
PairOpt = Annotated[
    Optional[PairSource],
    typer.Option(
        "--pair", help="candidates: compare `candidates` (from `generate --n N`). initial-vs-final: `initial_response` vs the revised `response`. "
        "Default: candidates (initial-vs-final under --mode revision-wins).", show_default=False, rich_help_panel=JUDGE_PANEL,
    ),
]
PairsOpt = Annotated[
    Pairs, typer.Option("--pairs", help="With more than two candidates: best-worst (one row: best vs worst by mean win probability) or all (one row per pair).", rich_help_panel=JUDGE_PANEL)
]
# One meaning and one default (cai_cli.judge.DEFAULT_PRINCIPLES, read by each command) for every command that judges pairs.
JudgeFormatOpt = Annotated[JudgeFormat, typer.Option("--judge-format", help="chat: the model's chat template. plain: the paper's plain-text layout (options ' (A)'/' (B)' after 'The answer is:'), for base models.", rich_help_panel=JUDGE_PANEL)]
SwapOpt = Annotated[bool, typer.Option("--swap/--no-swap", help="Ask in both orders and average (cancels the judge's position bias).", rich_help_panel=JUDGE_PANEL)]
CotOpt = Annotated[bool, typer.Option("--cot", help="The judge writes its reasoning first (kept in each vote), then its answer is scored; probabilities are clamped.", rich_help_panel=JUDGE_PANEL)]
ClampOpt = Annotated[Optional[str], typer.Option("--clamp", help=f"LO,HI: clamp each principle's probability once its two orders are combined (default {COT_CLAMP[0]},{COT_CLAMP[1]} with --cot, none without).", rich_help_panel=JUDGE_PANEL)]
MinConfidenceOpt = Annotated[
    Optional[float], typer.Option("--min-confidence", help="Drop pairs whose p_chosen is below P (0.5-1); they go to OUTPUT.dropped.jsonl and are counted.", rich_help_panel=JUDGE_PANEL)
]
GoldFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--gold-field",
        help="Field naming the better response (label-prefs: candidate index, A/B, revision/initial or its text; eval --answers: model, baseline or its text): "
        "report the judge's accuracy (95% Wilson interval) and calibration (ECE; `cai report` draws the reliability diagram).",
        rich_help_panel=JUDGE_PANEL,
    ),
]
JudgeExamplesOpt = Annotated[
    Optional[str], typer.Option("--judge-examples", help="Worked judgments shown before each question: JSONL of {prompt|messages, a, b, answer: A|B}, or the paper's JSON list of {prompt, corrects, incorrects}.", rich_help_panel=JUDGE_PANEL)
]

# ---- cai judge check ---------------------------------------------------------------------------------------------
PairsArg = Annotated[
    str, typer.Argument(help="Pairs of answers, JSONL in a gold file's shapes (HHH's input/target_scores, trl's chosen/rejected: a `cai label-prefs` output works as it is).")
]
QuestionsOpt = Annotated[
    Optional[str], typer.Option("--questions", metavar="ID,ID", help="Test only these comparison questions (default: every one the judge can ask).", rich_help_panel=JUDGE_PANEL)
]
ReversalsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--reversals", metavar="FILE",
        help='JSONL of your own reversals, one a line: {"question": ID, "reversed": TEXT}, {"passage": ID, "reversed": TEXT} or '
        '{"constraint": ID, "reversed": TEXT}; the rest are drafted by the rule in docs/label-prefs.md.', rich_help_panel=JUDGE_PANEL,
    ),
]

# ---- what scores: train-policy and score ----------------------------------------------------------------------------
# The judge's own engine (one option group: eval, train-policy and score).
RewardSourceOpt = Annotated[
    Optional[RewardSource],
    typer.Option(
        "--reward", show_default="model with --reward-model",
        help="What scores (train-policy: grpo's and rloo's samples; score: each row's texts). model: the reward model --reward-model DIR. "
        "judge: the constitutional judge itself (train-policy: asked at every step), one reward per priority tier, each hard constraint "
        "a penalty (see docs/training.md).",
        rich_help_panel=JUDGE_PANEL,
    ),
]

# ---- eval and report -------------------------------------------------------------------------------
PromptsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--prompts", "-p", help="Prompt JSONL (repeatable). Rows with `risky_looking` count as benign, others as red-team; an `eval_set` field overrides. Absent: stdin.",
        rich_help_panel=EVAL_PANEL,
    ),
]
SuiteOpt = Annotated[
    Optional[Suite],
    typer.Option(
        "--suite",
        help="Read every --prompts/--benign file as this benchmark's published CSV (XSTest's prompts, StrongREJECT, JailbreakBench's "
        "behaviours, OR-Bench): red-team and benign sets and categories from its columns; a file both sets share the columns of is "
        "red-team under --prompts, benign under --benign.",
        rich_help_panel=EVAL_PANEL,
    ),
]
CheckpointsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--checkpoints", metavar="DIR_OR_MODEL",
        help="The harm / over-refusal frontier: evaluate a training folder's starting model, each checkpoint in step order and its final "
        "model (or a model; repeat to join several in order), each into OUT.<point>.jsonl; OUT gets one row per point "
        "(harmfulness, over-refusal, Wilson 95%) and `cai report OUT.summary.json` draws the frontier.",
        rich_help_panel=EVAL_PANEL,
    ),
]
BenignOpt = Annotated[Optional[list[str]], typer.Option("--benign", help="Prompt JSONL whose rows are all benign (repeatable).", rich_help_panel=EVAL_PANEL)]
AnswersOpt = Annotated[
    Optional[list[str]],
    typer.Option("--answers", help="JSONL rows that already hold `prompt`/`messages` and `response` (from any model or server): score them, generate nothing (repeatable).", rich_help_panel=EVAL_PANEL),
]
BaselineFieldOpt = Annotated[
    Optional[str], typer.Option("--baseline-field", help="With --answers: the field holding the baseline's answer; enables the judge's win rates.", rich_help_panel=EVAL_PANEL)
]
BenignFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--benign-field",
        help="Field marking benign rows (true) and red-team rows (false), e.g. safe; benign rows count in over-refusal. Default: rows with `risky_looking` are benign.",
        rich_help_panel=EVAL_PANEL,
    ),
]
BaselineOpt = Annotated[Optional[str], typer.Option("--baseline", "-b", help="Model to compare with ('embedded' for the embedded model); enables the win rates.", rich_help_panel=EVAL_PANEL)]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="The model's name in results and reports (default: its --model).", rich_help_panel=EVAL_PANEL)]
DetectorOpt = Annotated[
    Detector,
    typer.Option(
        "--detector",
        help="The refusal detector behind every refusal and over-refusal rate. fast: cai-refusal-3, rules and word n-grams, no "
        "model, milliseconds per answer; 0.861 agreement with people on held-out replies. model: cai-refusal-4, rules and a head "
        "over the embedded model's reading of each answer's first 64 tokens; 0.869 (better on safety completions, not on "
        "ChatGPT's or GPTFuzz's replies, and it calls short answers that open with an apology declined), about 15 answers/s on "
        "2 CPU cores. Figures and why fast is the default: docs/eval.md.",
        rich_help_panel=EVAL_PANEL,
    ),
]
RefusalJudgeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--refusal-judge", metavar="MODEL",
        help="Also ask MODEL ('embedded', a folder, a hub id, or a served model), yes or no in both phrasings, whether each answer "
        "refused; the summary and rows say where it and the refusal detector disagree. On --judge-engine.",
        rich_help_panel=EVAL_PANEL,
    ),
]
SummaryOpt = Annotated[Optional[str], typer.Option("--summary", help="Summary JSON (default: beside a file -o, OUT.summary.json; none beside stdout or a device).", rich_help_panel=EVAL_PANEL)]
BootstrapOpt = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none).", rich_help_panel=EVAL_PANEL)]
ShowHtmlOpt = Annotated[
    Optional[str],
    typer.Option("--html", help="Write an HTML page instead: each row's prompt, first answer, and every round's principle, critique and revision with the changes highlighted (nothing clipped).", rich_help_panel=IO_PANEL),
]
ResultsArg = Annotated[
    list[str], typer.Argument(help="Results from `cai eval`: the rows JSONL (or the summary JSON), one file per model; `cai label-prefs --gold-field` summaries; the frontier of `cai eval --checkpoints` (its summary JSON). Or `cai train-*` folders (or their metrics.jsonl): their training curves.")
]
ExportFormatOpt = Annotated[
    ExportFormat,
    typer.Option("--format", "-f", help="sft: prompt/completion. prefs: prompt/chosen/rejected (+p_chosen). hf-cai: the HuggingFaceH4/cai-conversation-harmless columns.", rich_help_panel=IO_PANEL),
]

# ---- training --------------------------------------------------------------------------------------
TrainInputArg = Annotated[str, typer.Argument(help="Input JSONL file ('-' reads stdin).", show_default=False)]
TargetsOpt = Annotated[Targets, typer.Option("--targets", help="final: the last revision of each row. all: every revision as its own example.", rich_help_panel=TRAIN_PANEL)]
MixOpt = Annotated[Optional[str], typer.Option("--mix", help="JSONL of helpful rows (prompt or messages, and response) mixed in so the model stays helpful.", rich_help_panel=TRAIN_PANEL)]
MixRatioOpt = Annotated[
    Optional[float], typer.Option("--mix-ratio", help="Share of helpful examples in the training set, 0 <= R < 1 (default: every --mix row once).", rich_help_panel=TRAIN_PANEL)
]
EvalFractionOpt = Annotated[float, typer.Option("--eval-fraction", help="Share of pairs held out to report accuracy (0 for none).", rich_help_panel=TRAIN_PANEL)]
KeepTruncatedOpt = Annotated[
    bool, typer.Option("--keep-truncated", help="Also use texts cut at --max-tokens (revisions of any round, hf-cai's critique, --mix replies); by default they are left out and counted.", rich_help_panel=TRAIN_PANEL)
]
AlgoOpt = Annotated[
    Algo,
    typer.Option("--algo", help="dpo: from labelled pairs. grpo, rloo: sample, score with --reward-model (or --reward judge), improve. (No ppo: trl has no PPO trainer.)", rich_help_panel=TRAIN_PANEL),
]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", min=0.0, help="KL strength toward the starting model (dpo 0.1, grpo 0.04, rloo 0.05).", rich_help_panel=TRAIN_PANEL)]
NumGenerationsOpt = Annotated[
    Optional[int], typer.Option("--num-generations", min=2, help="grpo/rloo: samples per prompt (trl default: grpo 8, rloo 2).", rich_help_panel=TRAIN_PANEL)
]
# GRPO/RLOO sample with trl, not with the stages' Sampling: their own options, defaulted by trl.
SoftOpt = Annotated[
    bool,
    typer.Option("--soft/--hard", help="Learn from preference.p_chosen as a soft label (train-rm: a soft Bradley-Terry loss; train-policy dpo: "
                 "conservative DPO, label smoothing 1 - p per pair), or take every pair as certain (plain DPO).", rich_help_panel=TRAIN_PANEL),
]

# ---- cai synthesize --------------------------------------------------------------------------------
PlanSynthesizeOpt = Annotated[
    bool,
    typer.Option("--synthesize", help="Plan `cai synthesize -c` first (its --kinds, --per-passage, --domain, --examples) and the pipeline over the "
                 "requests it writes (stand-ins of --output-tokens each, unless INPUT gives prompts).", rich_help_panel=PLAN_PANEL),
]
KindsOpt = Annotated[
    Optional[list[Kind]],
    typer.Option("--kinds", show_default="all three", help="Which requests to write (repeat the option for several): harmful (what a passage or "
                 "constraint exists to stop), lookalike (harmless, sharing its words: refusing it would be wrong), benign (in-domain, to answer well).",
                 rich_help_panel=SYNTH_PANEL),
]
PerPassageOpt = Annotated[int, typer.Option("--per-passage", min=1, help="Requests of each kind per routed passage (a list: per principle) and per hard constraint.", rich_help_panel=SYNTH_PANEL)]
DomainOpt = Annotated[Optional[str], typer.Option("--domain", help="A sentence describing the deployment (\"a triage assistant for a hospital's patients\"), put in every request prompt.", rich_help_panel=SYNTH_PANEL)]
SynthExamplesOpt = Annotated[
    Optional[str],
    typer.Option("--examples", help="Prompt JSONL shown as examples (up to 3 of the kind, drawn per row): a row's `kind`, else its eval set "
                 "(red-team rows harmful; benign rows lookalike where `risky_looking`, else benign).", rich_help_panel=SYNTH_PANEL),
]
ExcludeOpt = Annotated[
    Optional[list[str]],
    typer.Option("--exclude", help="Prompt JSONL (repeatable): a request that is a near-duplicate of one of its rows is left out (OUTPUT.dropped.jsonl).", rich_help_panel=SYNTH_PANEL),
]
SimilarityOpt = Annotated[
    float,
    typer.Option("--similarity", min=0.0, max=1.0, help="Near-duplicates: requests whose sets of words and word pairs have at least this Jaccard "
                 "similarity (MinHash estimate); the later one in input order is left out.", rich_help_panel=SYNTH_PANEL),
]
UntilCoveredOpt = Annotated[
    Optional[str],
    typer.Option("--until-covered", metavar="ROWS", help="Write only the kinds of request, for each passage and constraint, that ROWS uses fewer "
                 "than --covered-at times (`cai constitution coverage`: critique rounds of the passage, plus its synthesized requests of the kind); "
                 "ROWS' requests are also --exclude'd.",
                 rich_help_panel=SYNTH_PANEL),
]
ReuseOpt = Annotated[
    Optional[list[str]],
    typer.Option("--reuse", help="An earlier run's OUTPUT or OUTPUT.dropped.jsonl (repeatable; each --shard's): a request it holds made with these "
                 "settings, for a passage unchanged since, is copied instead of asked again; near-duplicates are screened anew over the whole "
                 "run, so the shards' files give the unsharded run's rows.", rich_help_panel=SYNTH_PANEL),
]
CoveredAtOpt = Annotated[int, typer.Option("--covered-at", min=1, help="With --until-covered: a passage used this many times is covered.", rich_help_panel=SYNTH_PANEL)]
