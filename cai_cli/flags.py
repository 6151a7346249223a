"""How an option group's field is offered on the command line. An option group is a dataclass of the module that uses
the options (runner.RunOptions, engines.EngineOptions and its back ends' groups, judge/options.py ...); a field
annotated `Annotated[T, Flag(...)]` is an option, named like the field (`tensor_parallel_size` is
--tensor-parallel-size), with its default the field's. cli/groups.py turns each into a typer option, so an option is
declared once, where it is used. A Flag shared by several groups (--output, --model, --seed ...) is one constant, the
one declaration of that option. Nothing here imports the command line's libraries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    help: str = ""
    short: str | None = None  # "-m"
    name: str | None = None  # the flag when it is not --<field name>: a pair such as "--prefix-reuse/--no-prefix-reuse"
    panel: str | None = None  # the help panel (default: the group's)
    min: float | None = None
    max: float | None = None
    show_default: bool | str = True
    metavar: str | None = None
    choices: Callable[[], list[str]] | None = None  # an open set of choices (engines registered at run time)
    cli_type: type | None = None  # the type the command line reads where the field holds it parsed (--shard I/N: str)
    extra: tuple[tuple[str, Any], ...] = ()  # further settings of the option, as (name, value)


# ---- help panels -----------------------------------------------------------------------------------
IO_PANEL = "Input and output"
MODEL_PANEL = "Model and engine"
TRANSFORMERS_PANEL = "transformers engine (--engine transformers)"
VLLM_PANEL = "vLLM engine (--engine vllm)"
SERVER_PANEL = "OpenAI-compatible servers (--engine openai)"
SAMPLING_PANEL = "Sampling"
JUDGE_PANEL = "AI feedback (the judge)"
JUDGE_ENGINE_PANEL = "The judge's engine"
EVAL_PANEL = "Evaluation"
TRAIN_PANEL = "Training (any trl config field: --config YAML)"
SCALE_PANEL = "Scale-out (Ray; see docs/scale.md)"
PLAN_PANEL = "Planning: the pipeline, the rate, the price"
SYNTH_PANEL = "Synthesized requests"
MONITOR_PANEL = "Reward monitor (train-policy grpo/rloo; see docs/training.md)"

# ---- options of more than one group (one declaration each) ---------------------------------------------------------
OUTPUT = Flag(
    short="-o",
    help="Where results go: a stage's JSONL (written atomically, through a link onto its target, a device or FIFO directly; a rerun resumes; "
    "absent or '-': stdout; never an input of the run), a train-* folder (checkpoints/, metrics.jsonl, then the model, usable as --model), "
    "report's chart (.png .svg .pdf .html), or judge check's JSON report.",
    panel=IO_PANEL,
)
MODEL = Flag(short="-m", help="Model folder or hub id. Default: the embedded SmolLM2-135M-Instruct.", panel=MODEL_PANEL)
BATCH_SIZE = Flag(help="Rows per batch and per flush of the side file; train-*: examples per device per step (trl default 8).", min=1, panel=IO_PANEL)
SEED = Flag(help="Seeds everything random (sampling, principle draws; train-*: shuffling, LoRA init, the eval split); recorded.", panel=SAMPLING_PANEL)
RESTART = Flag(
    help="Start over: a stage discards OUTPUT.partial (the finished rows of an earlier run); train-* deletes what an earlier "
    "`cai train-*` wrote in DIR (checkpoints, metrics, model files, cai-train.json), nothing else.",
    panel=IO_PANEL,
)
MAX_TOKENS = Flag(help="New tokens per reply (train-policy grpo/rloo: per sampled completion, trl default 512); a text cut there is marked "
                       "(finish_reason length).", min=1, panel=SAMPLING_PANEL)
TEMPERATURE = Flag(short="-t", help="0 for greedy decoding. train-policy grpo/rloo (trl default 1.0): 0 is refused: greedy decoding makes every "
                                    "sample of a prompt the same, leaving nothing to compare.", min=0.0, panel=SAMPLING_PANEL)
PRINCIPLES = Flag(
    help="Comparison principles averaged per comparison, drawn per comparison (seeded by --seed), or 'all'. eval: from the constitution "
    "on red-team prompts, from its helpfulness questions on benign ones. The judge's rewards (train-policy and score --reward judge): "
    "up to K per priority tier, drawn from the texts compared.",
    panel=JUDGE_PANEL,
)
GATE_THRESHOLD = Flag(
    help="A response likely crosses a hard constraint where the judge's P(violation), asked yes/no both ways round, is above this "
    "(recorded per constraint in `gate`). Kept well above 0.5: a judge that cannot tell answers near 0.5.",
    min=0.5, max=1.0, panel=JUDGE_PANEL,
)


def flag_name(field: str, flag: Flag) -> str:
    """The long option a field is offered as."""
    return flag.name or "--" + field.replace("_", "-")
