"""A phase's model as the user named it (--model, --baseline, --judge-model, --refusal-judge): local folders checked before
any work, and an engine's messages (written for --model, --engine, --base-url) put in terms of the phase's options."""

from __future__ import annotations

import re
from pathlib import Path

from ..engines import EngineName, resolve_engine_name
from ..errors import ModelError


def check_model_folders(specs: list[tuple[str, str | None, str]]) -> None:
    """Before any work: each (option, model spec, engine) that names a local folder names a model folder; one line naming
    the option otherwise (a served model, the embedded one and hub ids are checked when their engine starts)."""
    from ..model_specs import EMBEDDED_ALIASES, resolve_model

    for option, spec, engine in specs:
        if spec in EMBEDDED_ALIASES or resolve_engine_name(engine) == EngineName.openai:
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
    the judge's model is --judge-model, its engine --judge-engine, its server --judge-base-url."""
    return _ENGINE_OPTIONS.sub(lambda m: options.get(m.group(1), m.group(1)), message)
