"""The one way a stage gets a model: a pool of started engines (and reward models), keyed by what they load, so the
stages that share one (eval's phases, `cai plan --measure`'s pipeline) load each set of weights once; `release`
closes those no later user needs, `close` the rest.

Every stage takes its engine from a pool (its own unless it is handed one). A pool's LOAD says what starting an
engine means: a real back end (load_engine), or, for `cai plan`, a tokenizer in an engine's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import Engine, EngineName, EngineOptions, load_engine, resolve_engine_name


def engine_key(opts: EngineOptions) -> str:
    """Two users share an engine when this is equal: the same back end, model and engine settings."""
    from ..model_specs import EMBEDDED_ALIASES

    fields = asdict(opts)
    fields["engine"] = resolve_engine_name(opts.engine)
    model = opts.model
    if fields["engine"] != EngineName.openai:
        if model in EMBEDDED_ALIASES:
            model = "embedded"
        elif Path(str(model)).expanduser().exists():
            model = str(Path(str(model)).expanduser().resolve())
    fields["model"] = model
    fields["server"]["base_url"] = sorted(set(opts.server.base_url))
    return json.dumps(fields, sort_keys=True, default=str)


def reward_model_key(path: str, dtype: str) -> str:
    return json.dumps({"reward_model": str(Path(path).expanduser().resolve()), "dtype": dtype}, sort_keys=True)


class EnginePool:
    """Started engines and reward models by key: `get` and `reward_model` start one at most once."""

    def __init__(self, load: Callable[[EngineOptions], Any] | None = None):
        self.load = load  # None: the chosen back end (load_engine)
        self.started: dict[str, Any] = {}

    def get(self, opts: EngineOptions) -> Engine:
        key = engine_key(opts)
        if key not in self.started:
            self.started[key] = (self.load or load_engine)(opts)
        return self.started[key]

    def reward_model(self, path: str, dtype: str = "auto"):
        """A reward model from `cai train-rm`, loaded onto this machine's device (engines/reward_model.py)."""
        key = reward_model_key(path, dtype)
        if key not in self.started:
            from .reward_model import RewardModel

            self.started[key] = RewardModel(path, dtype)
        return self.started[key]

    def release(self, keep: set[str]) -> None:
        """Close every started engine whose key is not in KEEP."""
        for key in [k for k in self.started if k not in keep]:
            self.started.pop(key).close()

    def close(self) -> None:
        self.release(set())

    def __getstate__(self) -> dict:
        # A stage travels to a Ray actor with its pool, never with what this process started.
        return {"load": self.load, "started": {}}
