"""The `cai` command line: one thin function per stage. Heavy imports happen inside the commands."""

from typing import Annotated, Optional

import typer

from .common import Common, report_errors, stage_command
from .options import ConstitutionOpt, FewShotOpt

app = typer.Typer(
    name="cai",
    help="Constitutional AI, stage by stage over JSONL: generate → critique → revise → label-prefs → train.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
constitution_app = typer.Typer(help="Inspect and validate constitutions.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")


@stage_command(app, "generate")
def generate(
    common: Common,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per prompt; with N > 1 they go to `candidates`.")] = 1,
):
    """Sample a reply to each prompt: rows with `prompt` or `messages` gain `response` and `initial_response`.

    Example:

        cai generate examples/red_team.jsonl --limit 4 --max-tokens 64 -o out/gen.jsonl
    """
    from .runner import run_stage
    from .stages.generate import Generate

    run_stage(Generate(common.engine_options(), common.sampling(n)), common.run_options())


@stage_command(app, "critique")
def critique(
    common: Common,
    constitution: ConstitutionOpt = None,
    few_shot: FewShotOpt = 1,
):
    """Critique each row's current `response` against one principle, drawn per row and per round (seeded).

    Appends a round {principle, critique_request, critique} to `rounds`. Chain with `cai revise`;
    repeat the pair for more rounds.

    Example:

        cai generate examples/red_team.jsonl --limit 4 | cai critique | cai revise > out/round1.jsonl
    """
    from .constitution import load_constitution
    from .runner import run_stage
    from .stages.critique import Critique

    stage = Critique(common.engine_options(), common.sampling(), load_constitution(constitution), few_shot)
    run_stage(stage, common.run_options())


@stage_command(app, "revise")
def revise(
    common: Common,
    constitution: ConstitutionOpt = None,
    few_shot: FewShotOpt = 1,
):
    """Revise each row's response to answer its last critique; the revision becomes `response`.

    Boilerplate such as "Sure, here is a revised response:" is stripped. When the critique finds
    nothing to change, the response is kept and the round records `"changed": false`.

    Example:

        cai critique out/gen.jsonl | cai revise -o out/revised.jsonl
    """
    from .constitution import load_constitution
    from .runner import run_stage
    from .stages.revise import Revise

    stage = Revise(common.engine_options(), common.sampling(), load_constitution(constitution), few_shot)
    run_stage(stage, common.run_options())


@app.command("show")
def show(
    file: Annotated[str, typer.Argument(help="JSONL file from any stage; '-' reads stdin.")] = "-",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Show at most N rows.")] = None,
    width: Annotated[int, typer.Option("--width", min=20, help="Clip each text to this many characters.")] = 400,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback on errors.")] = False,
):
    """Print rows readably: the prompt, the first answer, each round's critique and revision, candidates, preferences.

    Example:

        cai show out/revised.jsonl --limit 3
    """

    def body():
        from rich.console import Console

        from .jsonl import read_lines
        from .show import render_rows

        rows = [item.row for item in read_lines(file) if item.row is not None]
        render_rows(rows[:limit] if limit else rows, Console(), width)

    report_errors(body, lambda: verbose)()


def _verbose_flag():
    return typer.Option("--verbose", "-v", help="Show the traceback on errors.")


@constitution_app.command("show")
def constitution_show(
    file: Annotated[str, typer.Argument(help="Constitution file or shipped name.")] = "default",
    verbose: Annotated[bool, _verbose_flag()] = False,
):
    """Print a constitution as readable tables.

    Example:

        cai constitution show default
    """

    def body():
        from rich.console import Console

        from .constitution import constitution_table, load_constitution

        tables = constitution_table(load_constitution(file))
        console = Console()
        for table in tables if isinstance(tables, list) else [tables]:
            console.print(table)

    report_errors(body, lambda: verbose)()


@constitution_app.command("check")
def constitution_check(
    file: Annotated[str, typer.Argument(help="Constitution file or shipped name.")],
    verbose: Annotated[bool, _verbose_flag()] = False,
):
    """Validate a constitution (native YAML/JSON, Hugging Face recipe JSON or Anthropic's JSON); exit 2 on the first problem.

    Example:

        cai constitution check constitutions/default.yaml
    """

    def body():
        from .constitution import load_constitution

        c = load_constitution(file)
        print(
            f"{c.source}: ok ({c.format} format, {len(c.critiques)} critique principles, "
            f"{len(c.comparisons)} comparison questions, {len(c.few_shot)} few-shot examples, hash {c.hash})"
        )

    report_errors(body, lambda: verbose)()


def main() -> None:
    app()
