"""The command line's plumbing: the option groups most commands share (stages: Common; trainers: TrainOptions),
injected into each command and handed to it as one typed object; --verbose on every command; typed errors and
usage errors turned into one line and exit code 2; registering a command with its groups."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup

from ..engines import EngineOptions, Sampling, sampling_for
from ..runner import RunOptions
from . import options as o

# Which options each group injects; their defaults are the fields of the object the command receives.
IO_OPTIONS: dict[str, Any] = {
    "output": o.OutputOpt,
    "on_error": o.OnErrorOpt,
    "errors": o.ErrorsOpt,
    "dropped": o.DroppedOpt,
    "limit": o.LimitOpt,
    "shard": o.ShardOpt,
    "batch_size": o.BatchOpt,
    "progress": o.ProgressOpt,
    "restart": o.RestartOpt,
}
MODEL_OPTIONS: dict[str, Any] = {
    "model": o.ModelOpt,
    "engine": o.EngineOpt,
    "dtype": o.DtypeOpt,
    "prefix_reuse": o.PrefixReuseOpt,
    "tensor_parallel_size": o.TensorParallelOpt,
    "gpu_memory_utilization": o.GpuMemOpt,
    "max_model_len": o.MaxModelLenOpt,
    "base_url": o.BaseUrlOpt,
    "api_key_env": o.ApiKeyEnvOpt,
    "concurrency": o.ConcurrencyOpt,
    "request_timeout": o.TimeoutOpt,
    "max_retries": o.RetriesOpt,
}
RAY_OPTIONS: dict[str, Any] = {
    "ray": o.RayOpt,
    "ray_actors": o.RayActorsOpt,
    "ray_gpus": o.RayGpusOpt,
}
SAMPLING_OPTIONS: dict[str, Any] = {
    "temperature": o.TemperatureOpt,
    "top_p": o.TopPOpt,
    "max_tokens": o.MaxTokensOpt,
    "frequency_penalty": o.FrequencyPenaltyOpt,
    "presence_penalty": o.PresencePenaltyOpt,
    "seed": o.SeedOpt,
    "stop": o.StopOpt,
}


# The library's own defaults, read once: an option shared with a library dataclass is defaulted there, not here.
_RUN, _ENGINE, _SAMPLING = RunOptions(), EngineOptions(), Sampling()


@dataclass
class Common:
    """The shared options of one stage command, parsed; each field's default is the option's default, taken from
    RunOptions, EngineOptions and Sampling."""

    input: str | None = None
    # input and output
    output: str | None = None
    on_error: o.OnError = o.OnError(_RUN.on_error)
    errors: str | None = None
    dropped: str | None = None
    limit: int | None = None
    shard: str | None = None
    batch_size: int = _RUN.batch_size
    progress: o.ProgressMode = o.ProgressMode(_RUN.progress)
    restart: bool = False
    # model and engine
    model: str | None = None
    engine: str = _ENGINE.engine
    dtype: o.Dtype = o.Dtype(_ENGINE.dtype)
    prefix_reuse: bool = _ENGINE.prefix_reuse
    tensor_parallel_size: int = _ENGINE.tensor_parallel_size
    gpu_memory_utilization: float = _ENGINE.gpu_memory_utilization
    max_model_len: int | None = _ENGINE.max_model_len
    base_url: list[str] | None = None
    api_key_env: str | None = None
    concurrency: int = _ENGINE.concurrency
    request_timeout: float = _ENGINE.timeout
    max_retries: int = _ENGINE.max_retries
    # scale-out
    ray: str | None = None
    ray_actors: int | None = None
    ray_gpus: float | None = None
    # sampling (None: not given; the model's own default, else Sampling's, applies: engines.sampling_for)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int = _SAMPLING.seed
    stop: list[str] | None = None

    def run_options(self) -> RunOptions:
        return RunOptions(
            input=self.input,
            output=self.output,
            on_error=self.on_error.value,
            errors_file=self.errors,
            dropped_file=self.dropped,
            limit=self.limit,
            shard=o.parse_shard(self.shard),
            batch_size=self.batch_size,
            progress=self.progress,
            restart=self.restart,
            executor=self.ray_executor(),
        )

    def ray_gpus_per_actor(self) -> float:
        if self.ray_gpus is not None:
            return self.ray_gpus
        return float(self.tensor_parallel_size) if self.engine == "vllm" else 0.0

    def ray_executor(self):
        """--ray's executor (cai_cli.scale), or None: batches run in this process."""
        from ..errors import CaiError

        if self.ray is None:
            if self.ray_actors is not None or self.ray_gpus is not None:
                raise CaiError("--ray-actors and --ray-gpus go with --ray ADDRESS (e.g. --ray auto)")
            return None
        from ..scale.ray_executor import RayExecutor, RaySettings

        return RayExecutor(RaySettings(address=self.ray, actors=self.ray_actors, gpus_per_actor=self.ray_gpus_per_actor()))

    def engine_options(self) -> EngineOptions:
        engine = self.engine
        if self.ray is not None and engine == "auto":  # decided here, not by this machine: the actors run elsewhere
            engine = "vllm" if self.ray_gpus_per_actor() > 0 else "transformers"
        return EngineOptions(
            engine=engine,
            model=self.model,
            batch_size=self.batch_size,
            dtype=self.dtype.value,
            prefix_reuse=self.prefix_reuse,
            tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            base_urls=list(self.base_url or []),
            api_key_env=self.api_key_env,
            concurrency=self.concurrency,
            timeout=self.request_timeout,
            max_retries=self.max_retries,
        )

    def sampling(self, n: int = 1) -> Sampling:
        return sampling_for(
            self.model, self.engine, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
            frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty, seed=self.seed, n=n,
            stop=list(self.stop or []),
        )


def judge_engine_options(model: str | None, engine: str | None, base_urls: list[str] | None) -> EngineOptions:
    """The judge's own engine from its option group (--judge-model, --judge-engine, --judge-base-url): a named server
    means the openai engine; otherwise the command's default (EngineOptions' auto; train-policy picks transformers)."""
    return EngineOptions(engine=engine or ("openai" if base_urls else _ENGINE.engine), model=model, base_urls=list(base_urls or []))


def report_errors(fn: Callable, verbose: Callable[[], bool]) -> Callable:
    """Typed errors print one line and exit 2; a closed pipe exits quietly; --verbose shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..errors import CaiError

        try:
            return fn(*args, **kwargs)
        except CaiError as exc:
            if verbose():
                traceback.print_exc()
            print(f"cai: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            from ..output import quiet_broken_pipe

            quiet_broken_pipe()
            raise typer.Exit(0) from None
        except SystemExit as exc:
            if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):  # rich's Console meeting a closed pipe
                from ..output import quiet_broken_pipe

                quiet_broken_pipe()
                raise typer.Exit(0) from None
            raise
        except KeyboardInterrupt:
            print("cai: interrupted; rerun the same command to resume", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


class OneLineErrors(TyperGroup):
    """The app's group: usage errors (an unknown option, a value not among the listed choices, a missing required
    option) print one line and exit 2, like every other error, instead of a box with the usage."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        from typer._click import exceptions  # typer's own click (typer >= 0.20 vendors it)

        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except exceptions.NoArgsIsHelpError:
            code = 2  # the help is already printed
        except exceptions.ClickException as exc:
            print(f"cai: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
            code = exc.exit_code
        except typer.Abort:
            print("cai: interrupted", file=sys.stderr)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def shared_options(cls: type, *groups: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (annotation, default) for GROUPS, the defaults taken from the dataclass CLS (no default: required)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for group in groups:
        for name, annotation in group.items():
            f = fields[name]
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = ...
            out[name] = (annotation, default)
    return out


def stage_command(
    app: typer.Typer, name: str, *, model: bool = True, sampling: bool = True, input_arg: bool = True, ray: bool | None = None
) -> Callable:
    """Register FN as `cai NAME` with the shared option groups appended; FN receives them as `common` (a Common).

    ray (default: model): the --ray options, for a stage that runs a model through the runner."""
    ray = model if ray is None else ray
    groups = [IO_OPTIONS] + ([MODEL_OPTIONS] if model else []) + ([RAY_OPTIONS] if ray else []) + ([SAMPLING_OPTIONS] if sampling else [])
    shared = shared_options(Common, *([{"input": o.InputArg}] if input_arg else []), *groups)
    return lambda fn: register_command(app, name, fn, shared, "common", lambda values: Common(**values), threads=model or ray)


def command(app: typer.Typer, name: str, *, threads: bool = False) -> Callable:
    """Register FN as `cai NAME` with only its own options (and --verbose, and the one-line errors; THREADS: --threads,
    for a command that may run a model)."""
    return lambda fn: register_command(app, name, fn, {}, None, None, threads=threads)


def register_command(
    app: typer.Typer, name: str, fn: Callable, shared: dict[str, tuple[Any, Any]], arg_name: str | None, build: Callable | None,
    *, threads: bool = False,
) -> Callable:
    """Register FN as `cai NAME`: its own options, then the SHARED ones (handed to FN as build(values) in ARG_NAME),
    then --verbose (and, with THREADS, --threads: applied before FN runs, so before it loads torch). Typer reads the
    signature, so each shared option is declared once, in options.py."""
    shared = {**shared, **({"threads": (o.ThreadsOpt, None)} if threads else {}), "verbose": (o.VerboseOpt, False)}
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != arg_name]
    added = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default) for k, (ann, default) in shared.items()]
    leading = [p for p in added if p.name == "input"]  # the input argument reads best first in --help
    params = leading + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + [p for p in added if p.name != "input"]
    state = {"verbose": False}

    def body(**kwargs):
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in shared}
        state["verbose"] = bool(values.pop("verbose"))
        threads = values.pop("threads", None)
        if threads is not None:
            from ..threads import use_threads

            use_threads(threads)
        if arg_name is not None and build is not None:
            kwargs[arg_name] = build(values)
        return fn(**kwargs)

    wrapped = report_errors(body, lambda: state["verbose"])
    wrapped.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapped.__doc__ = fn.__doc__
    wrapped.__name__ = fn.__name__
    app.command(name, cls=o.CheckedCommand)(wrapped)
    return fn


# The options every `cai train-*` command shares, handed to the command as a TrainOptions (its defaults: None = "not
# given", the YAML file or cai's default decides).
TRAIN_OPTIONS: dict[str, Any] = {
    "output": o.OutputOpt,
    "model": o.ModelOpt,
    "lora": o.LoraOpt,
    "epochs": o.EpochsOpt,
    "max_steps": o.MaxStepsOpt,
    "lr": o.LrOpt,
    "batch_size": o.BatchOpt,
    "grad_accum": o.GradAccumOpt,
    "max_length": o.MaxLengthOpt,
    "seed": o.SeedOpt,
    "config": o.ConfigOpt,
    "progress": o.ProgressOpt,
    "restart": o.TrainRestartOpt,
}


def train_command(app: typer.Typer, name: str) -> Callable:
    """Register FN as `cai NAME`: its first parameter is the input file, the shared options arrive as `opts`."""
    from ..train.common import TrainOptions

    shared = shared_options(TrainOptions, TRAIN_OPTIONS)
    return lambda fn: register_command(app, name, fn, shared, "opts", lambda values: TrainOptions(**values), threads=True)
