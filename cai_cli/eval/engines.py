"""The engines of one eval run, shared between its phases: a run loads each set of weights once (the model under test,
the baseline, the judge and the refusal judge may be one model), and closes each once no later phase needs it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from ..engines import Engine, EngineOptions, load_engine, resolve_engine_name
from ..errors import ModelError
from ..stages.base import EngineStage


def engine_key(opts: EngineOptions) -> str:
    """Two phases share an engine when this is equal: the same back end, model and engine settings."""
    from ..models import EMBEDDED_ALIASES

    fields = asdict(opts)
    fields["engine"] = resolve_engine_name(opts.engine)
    model = opts.model
    if fields["engine"] != "openai":
        if model in EMBEDDED_ALIASES:
            model = "embedded"
        elif Path(str(model)).expanduser().exists():
            model = str(Path(str(model)).expanduser().resolve())
    fields["model"] = model
    fields["base_urls"] = sorted(set(opts.base_urls))
    return json.dumps(fields, sort_keys=True, default=str)


class EnginePool:
    """Started engines by engine_key: `get` starts one at most once; `release` closes those no later phase needs."""

    def __init__(self) -> None:
        self.started: dict[str, Engine] = {}

    def get(self, opts: EngineOptions) -> Engine:
        key = engine_key(opts)
        if key not in self.started:
            self.started[key] = load_engine(opts)
        return self.started[key]

    def release(self, keep: set[str]) -> None:
        for key in [k for k in self.started if k not in keep]:
            close = getattr(self.started.pop(key), "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        self.release(set())


class PooledStage(EngineStage):
    """An EngineStage whose start() takes its engine from the run's pool (when it has one) instead of loading its own."""

    pool: EnginePool | None = None

    def start(self) -> None:
        if self.engine is None:
            self.engine = self.pool.get(self.engine_opts) if self.pool is not None else load_engine(self.engine_opts)


def check_model_folders(specs: list[tuple[str, str | None, str]]) -> None:
    """Before any work: each (option, model spec, engine) that names a local folder names a model folder; one line naming
    the option otherwise (a served model, the embedded one and hub ids are checked when their engine starts)."""
    from ..models import EMBEDDED_ALIASES, resolve_model

    for option, spec, engine in specs:
        if spec in EMBEDDED_ALIASES or resolve_engine_name(engine) == "openai":
            continue
        assert spec is not None  # None is one of EMBEDDED_ALIASES
        if Path(spec).expanduser().exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            try:
                resolve_model(spec)
            except ModelError as exc:
                exc.args = (f"{option} {exc}",)
                raise


# The options that name a model and its engine in messages from the engines (written for the model under test).
_ENGINE_OPTIONS = re.compile(r"(?<![\w-])(--model|--engine|--base-url)(?![\w-])")


def in_terms_of(message: str, options: dict[str, str]) -> str:
    """MESSAGE (an engine's or a model loader's) with the options named as the user gave them for this phase's model:
    the judge's model is --judge, its engine --judge-engine, its server --judge-base-url."""
    return _ENGINE_OPTIONS.sub(lambda m: options.get(m.group(1), m.group(1)), message)
