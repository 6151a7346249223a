"""The house rules a newcomer relies on (issue 29): one meaning per flag name across every command, each option
declared once (so its help reads the same wherever it is offered), and no module over 400 lines."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def _options(cmd, path: tuple[str, ...], found: dict[str, dict[str, list[str]]]) -> None:
    if hasattr(cmd, "commands"):  # a group (typer's click may be its own copy: duck-typed)
        for name, sub in cmd.commands.items():
            _options(sub, (*path, name), found)
        return
    for param in cmd.params:
        if param.param_type_name == "option":
            for flag in (*param.opts, *param.secondary_opts):
                found[flag][param.help or ""].append(" ".join(path))


def test_each_flag_name_has_one_meaning_across_every_command():
    from cai_cli.cli import app

    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    _options(typer.main.get_command(app), ("cai",), found)
    assert len(found) > 100  # the walk reached the commands' options, not just the top level
    differ = {flag: {help_[:60]: cmds for help_, cmds in helps.items()} for flag, helps in found.items() if len(helps) > 1}
    assert not differ, f"one flag name, two declarations (different help): {differ}"


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "cai_cli").rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concern: {long}"
