"""Every command-line option, declared once, grouped in help panels; closed choices are Enums so --help lists them.

Commands take these by name (`few_shot: FewShotOpt = 1`); the options most commands share are injected by
plumbing.py. The default sits with the command (or with Common/TrainOptions), read from the library module that
owns it, so one option serves commands that default it differently. Each closed choice is the Enum of the module
that uses it, imported here. Light: no torch, no engine started.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..constitution.model import Shape
from ..constitution.routing import Routing
from ..engines import Dtype, EngineName, Sampling
from ..judge.maths import COT_CLAMP
from ..judge.prompts import JudgeFormat
from ..models import EMBEDDED_SAMPLING
from ..runner import OnError
from ..stages.export import ExportFormat
from ..stages.label_prefs import Mode, Pairs, PairSource
from ..train.policy import Algo
from ..training_examples import Targets

__all__ = ["Algo", "Dtype", "EngineName", "ExportFormat", "JudgeFormat", "Mode", "OnError", "PairSource", "Pairs", "Routing", "Shape", "Targets"]

IO_PANEL = "Input and output"
MODEL_PANEL = "Model and engine"
SAMPLING_PANEL = "Sampling"
SERVE_PANEL = "vLLM and OpenAI-compatible servers"
JUDGE_PANEL = "AI feedback (the judge)"
EVAL_PANEL = "Evaluation"
TRAIN_PANEL = "Training (any trl config field: --config YAML)"


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
InputArg = Annotated[Optional[str], typer.Argument(help="Input JSONL file; '-' or absent reads stdin.", show_default=False)]
OutputOpt = Annotated[
    Optional[str],
    typer.Option(
        "--output", "-o",
        help="Where results go: a stage's JSONL (written atomically, a rerun resumes; absent or '-': stdout), a train-* "
        "folder (checkpoints/, metrics.jsonl, then the model, usable as --model), or report's chart (.png .svg .pdf .html).",
        rich_help_panel=IO_PANEL,
    ),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option("--on-error", help="fail: stop before any work on a bad row. skip: write bad rows to OUTPUT.errors.jsonl and go on.", rich_help_panel=IO_PANEL),
]
ErrorsOpt = Annotated[Optional[str], typer.Option("--errors", help="Where skipped rows go (default OUTPUT.errors.jsonl).", rich_help_panel=IO_PANEL)]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N rows (after sharding).", rich_help_panel=IO_PANEL)]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="I/N: only the rows whose id falls in shard I of N (deterministic).", rich_help_panel=IO_PANEL)]
BatchOpt = Annotated[
    Optional[int],
    typer.Option("--batch-size", min=1, help="Rows per batch and per flush of the side file; train-*: examples per device per step (trl default 8).", rich_help_panel=IO_PANEL),
]
RestartOpt = Annotated[
    bool, typer.Option("--restart", help="Discard OUTPUT.partial (the finished rows of an earlier run) and start over.", rich_help_panel=IO_PANEL)
]
ProgressOpt = Annotated[
    Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal).", rich_help_panel=IO_PANEL)
]
WidthOpt = Annotated[int, typer.Option("--width", min=20, help="Clip each text to this many characters.", rich_help_panel=IO_PANEL)]
ShowFileArg = Annotated[str, typer.Argument(help="JSONL file from any stage; '-' reads stdin.")]

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
        help="relevance: per row and round, a principle (a document: a section) relevant to the conversation, ranked "
        "with BM25 and drawn with --seed, weighted by relevance and tier. uniform: the original method's uniform draw.",
        rich_help_panel=MODEL_PANEL,
    ),
]
ShapeArg = Annotated[Shape, typer.Argument(help="list: a YAML/JSON constitution. document: a Markdown constitution's header.")]
MarkdownArg = Annotated[str, typer.Argument(help="A Markdown constitution (.md).")]
SidecarOpt = Annotated[
    bool, typer.Option("--sidecar", help="Also write the draft to DOC.header.yaml beside the document (never over an existing file).")
]
CoverageRowsArg = Annotated[str, typer.Argument(help="JSONL rows from `cai critique`/`cai revise` ('-' reads stdin).")]
CoverageConstitutionOpt = Annotated[
    Optional[str],
    typer.Option("--constitution", "-c", help="List the sections this constitution routes that no round used (default: the one the rows record, where it loads)."),
]
CoverageJsonOpt = Annotated[bool, typer.Option("--json", help="Print the counts as JSON instead of a table.")]
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
        "eval: from the constitution on red-team prompts, from its helpfulness questions on benign ones.",
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
GoldOpt = Annotated[
    Optional[str], typer.Option("--gold", help="Field naming the better response (candidate index, A/B, revision/initial, or its text): report the judge's accuracy with a 95% Wilson interval.", rich_help_panel=JUDGE_PANEL)
]
JudgeExamplesOpt = Annotated[
    Optional[str], typer.Option("--judge-examples", help="Worked judgments shown before each question: JSONL of {prompt|messages, a, b, answer: A|B}, or the paper's JSON list of {prompt, corrects, incorrects}.", rich_help_panel=JUDGE_PANEL)
]

# ---- eval and report -------------------------------------------------------------------------------
PromptsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--prompts", "-p", help="Prompt JSONL (repeatable). Rows with `risky_looking` count as benign, others as red-team; an `eval_set` field overrides. Absent: stdin.",
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
JudgeOpt = Annotated[Optional[str], typer.Option("--judge", help="Judge model for win rates and --refusal-judge (default: the embedded model).", rich_help_panel=EVAL_PANEL)]
RefusalJudgeOpt = Annotated[bool, typer.Option("--refusal-judge", help="Also ask the judge, yes or no, whether each answer refused.", rich_help_panel=EVAL_PANEL)]
SummaryOpt = Annotated[Optional[str], typer.Option("--summary", help="Summary JSON (default: beside -o, OUT.summary.json).", rich_help_panel=EVAL_PANEL)]
BootstrapOpt = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none).", rich_help_panel=EVAL_PANEL)]
ShowHtmlOpt = Annotated[
    Optional[str],
    typer.Option("--html", help="Write an HTML page instead: each row's prompt, first answer, and every round's principle, critique and revision with the changes highlighted (nothing clipped).", rich_help_panel=IO_PANEL),
]
ResultsArg = Annotated[list[str], typer.Argument(help="Results from `cai eval`: the rows JSONL (or the summary JSON), one file per model.")]
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
    typer.Option("--algo", help="dpo: from labelled pairs. grpo, rloo: sample, score with --reward-model, improve. (No ppo: trl has no PPO trainer.)", rich_help_panel=TRAIN_PANEL),
]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", min=0.0, help="KL strength toward the starting model (dpo 0.1, grpo 0.04, rloo 0.05).", rich_help_panel=TRAIN_PANEL)]
NumGenerationsOpt = Annotated[
    Optional[int], typer.Option("--num-generations", min=2, help="grpo/rloo: samples per prompt (trl default: grpo 8, rloo 2).", rich_help_panel=TRAIN_PANEL)
]
# GRPO/RLOO sample with trl, not with the stages' Sampling: their own options, defaulted by trl.
CompletionTokensOpt = Annotated[
    Optional[int], typer.Option("--max-tokens", min=1, help="grpo/rloo: new tokens per sampled completion (trl default 512).", rich_help_panel=TRAIN_PANEL)
]
CompletionTemperatureOpt = Annotated[
    Optional[float], typer.Option("--temperature", "-t", min=0.0, help="grpo/rloo: sampling temperature of the completions (trl default 1.0).", rich_help_panel=TRAIN_PANEL)
]
