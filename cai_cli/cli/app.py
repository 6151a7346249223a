"""The `cai` command line: the app (apps.py) with every command registered on it, one module per family of commands
(stage_commands.py, eval_command.py, train_commands.py, tool_commands.py, constitution_commands.py, judge_commands.py), and the entry point."""

from . import constitution_commands, eval_command, judge_commands, stage_commands, tool_commands, train_commands  # noqa: F401 - each registers its commands
from .apps import app, constitution_app, judge_app

__all__ = ["app", "constitution_app", "judge_app", "main"]


def main() -> None:
    from ..output import seal_stdout
    from ..threads import set_defaults

    set_defaults()  # before any command loads torch: its OpenMP runtime reads the settings once, as it loads
    try:
        app()
    finally:
        seal_stdout()  # the command's output is out: what runs at exit (an engine's shutdown logging) goes to stderr


if __name__ == "__main__":
    main()
