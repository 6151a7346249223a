"""Options shared by several commands, declared once, grouped in help panels."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

IO_PANEL = "Input and output"
MODEL_PANEL = "Model and engine"
SAMPLING_PANEL = "Sampling"
SERVE_PANEL = "vLLM and OpenAI-compatible servers"


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class EngineName(str, Enum):
    auto = "auto"
    transformers = "transformers"
    vllm = "vllm"
    openai = "openai"


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


InputArg = Annotated[Optional[str], typer.Argument(help="Input JSONL file; '-' or absent reads stdin.", show_default=False)]
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Output JSONL file (written atomically; a rerun resumes). Absent or '-': stdout.", rich_help_panel=IO_PANEL),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option("--on-error", help="fail: stop before any work on a bad row. skip: write bad rows to OUTPUT.errors.jsonl and go on.", rich_help_panel=IO_PANEL),
]
ErrorsOpt = Annotated[Optional[str], typer.Option("--errors", help="Where skipped rows go (default OUTPUT.errors.jsonl).", rich_help_panel=IO_PANEL)]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="Process at most N rows (after sharding).", rich_help_panel=IO_PANEL)]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="I/N: only the rows whose id falls in shard I of N (deterministic).", rich_help_panel=IO_PANEL)]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per batch (and per flush of the side file).", rich_help_panel=IO_PANEL)]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.", rich_help_panel=IO_PANEL)]
ProgressOpt = Annotated[
    Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal).", rich_help_panel=IO_PANEL)
]

ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Model folder or hub id. Default: the embedded SmolLM2-135M-Instruct.", rich_help_panel=MODEL_PANEL),
]
EngineOpt = Annotated[
    EngineName, typer.Option("--engine", "-e", help="auto: vllm when it imports and a GPU is present, else transformers.", rich_help_panel=MODEL_PANEL)
]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (float32 on CPU, bfloat16/float16 on GPU), float32, bfloat16, float16.", rich_help_panel=MODEL_PANEL)]
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
FewShotOpt = Annotated[int, typer.Option("--few-shot", min=0, help="How many of the constitution's worked examples to show the model.", rich_help_panel=MODEL_PANEL)]

TensorParallelOpt = Annotated[int, typer.Option("--tensor-parallel-size", min=1, help="vLLM: GPUs per model.", rich_help_panel=SERVE_PANEL)]
GpuMemOpt = Annotated[float, typer.Option("--gpu-memory-utilization", help="vLLM: fraction of GPU memory to use.", rich_help_panel=SERVE_PANEL)]
MaxModelLenOpt = Annotated[Optional[int], typer.Option("--max-model-len", help="vLLM: context length to reserve.", rich_help_panel=SERVE_PANEL)]
BaseUrlOpt = Annotated[
    Optional[list[str]], typer.Option("--base-url", help="OpenAI engine: server URL (repeat to spread rows over replicas).", rich_help_panel=SERVE_PANEL)
]
ApiKeyEnvOpt = Annotated[Optional[str], typer.Option("--api-key-env", help="OpenAI engine: name of the environment variable holding the key.", rich_help_panel=SERVE_PANEL)]
TimeoutOpt = Annotated[float, typer.Option("--request-timeout", min=1.0, help="OpenAI engine: seconds to wait for one answer before retrying it.", rich_help_panel=SERVE_PANEL)]
RetriesOpt = Annotated[
    int, typer.Option("--max-retries", min=0, help="OpenAI engine: retries of a timed-out, 429 or 5xx request (exponential backoff) before the row fails.", rich_help_panel=SERVE_PANEL)
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="OpenAI engine: requests in flight per server.", rich_help_panel=SERVE_PANEL)]

TemperatureOpt = Annotated[float, typer.Option("--temperature", "-t", min=0.0, help="0 for greedy decoding.", rich_help_panel=SAMPLING_PANEL)]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, rich_help_panel=SAMPLING_PANEL)]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", min=1, help="New tokens per reply.", rich_help_panel=SAMPLING_PANEL)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds sampling and principle draws; recorded in every row.", rich_help_panel=SAMPLING_PANEL)]
StopOpt = Annotated[Optional[list[str]], typer.Option("--stop", help="Stop string (repeatable).", rich_help_panel=SAMPLING_PANEL)]
