"""The `cai` typer apps; each command module registers its commands on them (app.py imports them all)."""

from typing import Annotated

import typer

from .plumbing import OneLineErrors

app = typer.Typer(
    name="cai",
    cls=OneLineErrors,
    help="Constitutional AI, stage by stage over JSONL: generate → critique → revise → label-prefs → train.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
constitution_app = typer.Typer(help="Inspect, validate, import, compare constitutions, and see which sections rows used.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")
judge_app = typer.Typer(help="Check the judge: does it read the constitution?", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


def _print_version(value: bool) -> None:
    if value:
        from .. import version

        print(f"cai {version()}")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print cai's version and exit.")] = False,
) -> None:
    """Constitutional AI, stage by stage over JSONL: generate → critique → revise → label-prefs → train."""
