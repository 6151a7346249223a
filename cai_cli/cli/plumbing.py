"""The command line's plumbing: registering a command (its own options, then its option groups, cli/groups.py, then
--verbose), every value checked at parse time, typed errors and usage errors turned into one line and exit code 2."""

from __future__ import annotations

import functools
import inspect
import math
import sys
import traceback
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from ..flags import (
    EVAL_PANEL,
    IO_PANEL,
    JUDGE_ENGINE_PANEL,
    JUDGE_PANEL,
    MODEL_PANEL,
    MONITOR_PANEL,
    PLAN_PANEL,
    SAMPLING_PANEL,
    SCALE_PANEL,
    SERVER_PANEL,
    SYNTH_PANEL,
    TRAIN_PANEL,
    TRANSFORMERS_PANEL,
    VLLM_PANEL,
)
from ..threads import ThreadOptions
from .groups import Group, is_group

VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.", rich_help_panel=IO_PANEL)]


def value_problem(value: Any) -> str | None:
    """What is wrong with one parsed option value whatever the option (None: nothing): a number that is not finite
    (`--temperature inf`, `--min-confidence nan`: click's float accepts both, and no option means them), an empty
    text (`--stop ''`, `-o ''`: what an unset variable in a Makefile or a script gives)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if isinstance(value, str) and value == "":
        return "expected a value, got an empty string (an unset variable?)"
    return None


class CheckedCommand(TyperCommand):
    """Every command: each option and argument value passes value_problem at parse time, before any work (a list
    option, each of its values)."""

    def parse_args(self, ctx, args):
        if any("--progress" in p.opts for p in self.params):
            args = _older_spellings(args)
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name) if param.name else None
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if (problem := value_problem(item)) is not None:
                    raise typer.BadParameter(problem, ctx=ctx, param=param)
        return rest


def _older_spellings(args: list[str]) -> list[str]:
    """--no-progress, from when --progress was on/off, is --progress off (scripts and Makefiles keep working)."""
    end = args.index("--") if "--" in args else len(args)
    return [*("--progress=off" if a == "--no-progress" else a for a in args[:end]), *args[end:]]


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


# The order of the help panels in every command's --help (the command's own panel where it has one comes with them).
PANELS = [IO_PANEL, MODEL_PANEL, TRANSFORMERS_PANEL, VLLM_PANEL, SERVER_PANEL, SAMPLING_PANEL, JUDGE_PANEL, JUDGE_ENGINE_PANEL, EVAL_PANEL,
          SYNTH_PANEL, TRAIN_PANEL, MONITOR_PANEL, PLAN_PANEL, SCALE_PANEL]


def _panel_rank(param: inspect.Parameter) -> int:
    """Arguments first; then options by PANELS (sorting is stable: within a panel, in the order declared)."""
    info = next((m for m in typing.get_args(param.annotation)[1:] if hasattr(m, "rich_help_panel")), None)
    if info is None or type(info).__name__ == "ArgumentInfo":
        return -1
    panel = info.rich_help_panel
    return PANELS.index(panel) if panel in PANELS else len(PANELS)


def command(app: typer.Typer, name: str, *, skip: frozenset[str] = frozenset()) -> Callable:
    """Register FN as `cai NAME`. A parameter of FN annotated with an option group is offered as the group's options
    (but those named in SKIP, which do not apply to this command) and handed to FN as the group; the rest are FN's own
    options and arguments, declared in options.py. A command that may run torch takes ThreadOptions (--threads): it
    is applied before FN runs, so before torch loads."""

    def register(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn, include_extras=True)
        groups: list[Group] = []
        own: list[inspect.Parameter] = []
        for p in inspect.signature(fn).parameters.values():
            kind = hints.get(p.name, p.annotation)
            if is_group(kind):
                groups.append(Group(p.name, kind, skip))
            else:
                own.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=kind))
        verbose = inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, annotation=VerboseOpt, default=False)
        params = sorted(own + [q for g in groups for q in g.parameters()] + [verbose], key=_panel_rank)
        state = {"verbose": False}

        def body(**kwargs):
            state["verbose"] = bool(kwargs.pop("verbose"))
            for group in groups:
                kwargs[group.param] = group.build({k: kwargs.pop(k) for k in group.names()})
                if isinstance(kwargs[group.param], ThreadOptions):
                    kwargs[group.param].apply()
            return fn(**kwargs)

        wrapped = report_errors(body, lambda: state["verbose"])
        wrapped.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapped.__doc__ = fn.__doc__
        wrapped.__name__ = fn.__name__
        app.command(name, cls=CheckedCommand)(wrapped)
        return fn

    return register
