"""Shared command plumbing: one declaration of the common options, injected into each stage command,
and one place that turns errors into a one-line message and exit code 2."""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import typer

from . import options as o

# name -> (annotation, default). Declared once; each stage command asks for the groups it needs.
IO_OPTIONS: dict[str, tuple[Any, Any]] = {
    "output": (o.OutputOpt, None),
    "on_error": (o.OnErrorOpt, o.OnError.fail),
    "errors": (o.ErrorsOpt, None),
    "limit": (o.LimitOpt, None),
    "shard": (o.ShardOpt, None),
    "batch_size": (o.BatchOpt, 16),
    "progress": (o.ProgressOpt, None),
    "verbose": (o.VerboseOpt, False),
}
MODEL_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (o.ModelOpt, None),
    "engine": (o.EngineOpt, o.EngineName.auto),
    "dtype": (o.DtypeOpt, "auto"),
    "prefix_reuse": (o.PrefixReuseOpt, True),
    "tensor_parallel_size": (o.TensorParallelOpt, 1),
    "gpu_memory_utilization": (o.GpuMemOpt, 0.9),
    "max_model_len": (o.MaxModelLenOpt, None),
    "base_url": (o.BaseUrlOpt, None),
    "api_key_env": (o.ApiKeyEnvOpt, None),
    "concurrency": (o.ConcurrencyOpt, 8),
    "request_timeout": (o.TimeoutOpt, 120.0),
    "max_retries": (o.RetriesOpt, 4),
}
SAMPLING_OPTIONS: dict[str, tuple[Any, Any]] = {
    "temperature": (o.TemperatureOpt, 0.7),
    "top_p": (o.TopPOpt, 1.0),
    "max_tokens": (o.MaxTokensOpt, 256),
    "seed": (o.SeedOpt, 0),
    "stop": (o.StopOpt, None),
}


@dataclass
class Common:
    """The shared options of one invocation, already parsed."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def run_options(self):
        from .runner import RunOptions

        return RunOptions(
            input=self.values.get("input"),
            output=self.values.get("output"),
            on_error=self.values["on_error"].value,
            errors_file=self.values.get("errors"),
            limit=self.values.get("limit"),
            shard=o.parse_shard(self.values.get("shard")),
            batch_size=self.values["batch_size"],
            progress=self.values.get("progress"),
        )

    def engine_options(self):
        from .engines import EngineOptions

        v = self.values
        return EngineOptions(
            engine=v["engine"].value,
            model=v["model"],
            batch_size=v.get("batch_size", 16),
            dtype=v["dtype"],
            prefix_reuse=v["prefix_reuse"],
            tensor_parallel_size=v["tensor_parallel_size"],
            gpu_memory_utilization=v["gpu_memory_utilization"],
            max_model_len=v["max_model_len"],
            base_urls=list(v["base_url"] or []),
            api_key_env=v["api_key_env"],
            concurrency=v["concurrency"],
            timeout=v["request_timeout"],
            max_retries=v["max_retries"],
        )

    def sampling(self, n: int = 1):
        from .engines import Sampling

        v = self.values
        return Sampling(
            temperature=v["temperature"], top_p=v["top_p"], max_tokens=v["max_tokens"], seed=v["seed"], n=n, stop=list(v["stop"] or [])
        )


def report_errors(fn: Callable, verbose: Callable[[], bool]) -> Callable:
    """Typed errors print one line and exit 2; a closed pipe exits quietly; --verbose shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import CaiError

        try:
            return fn(*args, **kwargs)
        except CaiError as exc:
            if verbose():
                traceback.print_exc()
            print(f"cai: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            print("cai: interrupted; rerun the same command to resume", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def _quiet_broken_pipe() -> None:
    import os

    # Python flushes stdout at exit; point it at devnull so the closed pipe raises nothing more.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def stage_command(app: typer.Typer, name: str, *, model: bool = True, sampling: bool = True, input_arg: bool = True) -> Callable:
    """Register FN as `cai NAME` with the shared option groups appended; FN receives them as `common`."""
    groups = [IO_OPTIONS] + ([MODEL_OPTIONS] if model else []) + ([SAMPLING_OPTIONS] if sampling else [])
    shared: dict[str, tuple[Any, Any]] = {}
    if input_arg:
        shared["input"] = (o.InputArg, None)
    for g in groups:
        shared.update(g)

    return lambda fn: register_command(app, name, fn, shared, "common", Common)


def register_command(app: typer.Typer, name: str, fn: Callable, shared: dict[str, tuple[Any, Any]], arg_name: str, build: Callable) -> Callable:
    """Register FN as `cai NAME` with the SHARED options appended to its own; FN gets build(values) as ARG_NAME.

    Typer reads the signature, so the shared options are declared once here rather than in every command.
    """
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != arg_name]
    added = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default) for k, (ann, default) in shared.items()]
    leading = [p for p in added if p.name == "input"]  # the input argument reads best first in --help
    params = leading + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + [p for p in added if p.name != "input"]
    state: dict[str, bool] = {"verbose": False}

    def body(**kwargs):
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in shared}
        state["verbose"] = bool(values.get("verbose"))
        return fn(**{arg_name: build(values)}, **kwargs)

    wrapped = report_errors(body, lambda: state["verbose"])
    wrapped.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapped.__doc__ = fn.__doc__
    wrapped.__name__ = fn.__name__
    app.command(name)(wrapped)
    return fn
