"""Option groups on the command line. A command's parameter annotated with an option group (a dataclass whose fields
carry cai_cli.flags.Flag: runner.RunOptions, engines.EngineOptions and its back ends' groups, the judge's groups ...)
is offered as the group's options, nested groups flattened, each in its help panel; the command receives the group
built from what was parsed. So an option is declared once, on the group that uses it, its flag named like its field."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..flags import Flag, flag_name


def typer_option(field: str, kind: Any, flag: Flag) -> Any:
    """FIELD's option, for a typer signature: Annotated[the type it reads, typer.Option(...)]."""
    decls = (flag_name(field, flag), *((flag.short,) if flag.short else ()))
    settings: dict[str, Any] = {"help": flag.help or None, "rich_help_panel": flag.panel, "show_default": flag.show_default}
    if flag.min is not None:
        settings["min"] = flag.min
    if flag.max is not None:
        settings["max"] = flag.max
    if flag.metavar is not None:
        settings["metavar"] = flag.metavar
    if flag.choices is not None:
        settings["parser"] = _one_of(flag.choices)
    settings.update(dict(flag.extra))
    return Annotated[flag.cli_type or kind, typer.Option(*decls, **settings)]


def _one_of(choices: Callable[[], list[str]]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        names = choices()
        if value not in names:
            raise typer.BadParameter(f"expected one of {', '.join(names)}, got {value!r}")
        return value

    return parse


def is_group(kind: Any) -> bool:
    """KIND is an option group: a dataclass with at least one option (its own or a nested group's)."""
    return isinstance(kind, type) and dataclasses.is_dataclass(kind) and any(True for _ in _options(kind, ""))


def _options(cls: type, prefix: str):
    """(parameter name, field path, type, Flag, default) of every option of CLS, nested groups flattened."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is Annotated:
            kind, *meta = typing.get_args(hint)
            flag = next((m for m in meta if isinstance(m, Flag)), None)
            if flag is not None:
                yield f"{prefix}{f.name}", (f.name,), kind, flag, _default(f)
            continue
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            for name, path, kind, flag, default in _options(hint, f"{prefix}{f.name}__"):
                yield name, (f.name, *path), kind, flag, default


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...


class Group:
    """One group-typed parameter of a command: the options it adds, and the group built back from their values."""

    def __init__(self, param: str, cls: type, skip: frozenset[str] = frozenset()):
        self.param, self.cls = param, cls
        self.options = [o for o in _options(cls, f"{param}__") if o[1][-1] not in skip]

    def parameters(self) -> list[inspect.Parameter]:
        return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=typer_option(path[-1], kind, flag), default=default)
                for name, path, kind, flag, default in self.options]

    def names(self) -> set[str]:
        return {o[0] for o in self.options}

    def build(self, values: dict[str, Any], **given: Any) -> Any:
        """The group from the parsed VALUES, and GIVEN fields (set by the command line, not offered as options)."""
        fields: dict[tuple[str, ...], Any] = {path: values[name] for name, path, *_ in self.options}
        return _construct(self.cls, fields, (), given)


def _construct(cls: type, fields: dict[tuple[str, ...], Any], at: tuple[str, ...], given: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = (*at, f.name)
        if path in fields:
            value = fields[path]
            kwargs[f.name] = list(value) if isinstance(value, tuple) else value
        elif isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name]) and any(p[: len(path)] == path for p in fields):
            kwargs[f.name] = _construct(hints[f.name], fields, path, {})
    if not at:
        kwargs.update(given)
    return cls(**kwargs)


def field_option(cls: type, name: str) -> Any:
    """The option of CLS's field NAME (as declared on the group), for a command that takes it alone."""
    for param, path, kind, flag, _ in _options(cls, ""):
        if param == name:
            return typer_option(path[-1], kind, flag)
    raise KeyError(f"{cls.__name__} has no option {name}")
