"""Every `cai` command printed in README.md and docs/*.md still parses, and the README's pipeline runs as printed.

Each fenced shell block (```bash, ```sh, ```console) is read as a shell would: continuation lines joined, variables
the block assigns expanded (any other `$VAR` stands for 0), then every command of a line (split at `|`, `&&`, `;`,
`&`, redirections dropped) that is `cai ...`, `python -m cai_cli ...` or `$(which cai) ...` is parsed by the real app
(its click command, values checked as at parse time) without running it: the command exists, every option exists for
it and every value parses. A `...` token stands for arguments given elsewhere and is left out. Commands that need a
GPU, a server or a file the project does not ship are parsed like the rest; the docs mark them with a comment
("not timed here", "a GPU", ...).

The README's pipeline block (the first of its blocks) is also run, command by command, on the fake engine and a
tiny model (tests/test_train_docs.py's `small`), from a fresh folder: every line of it works as printed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:bash|sh|console)\n(.*?)^```", re.S | re.M)
ASSIGN = re.compile(r"^([A-Za-z_]\w*)=(.*)$")
VAR = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
REDIRECTS = {">", ">>", "<", "2>", "2>>", "&>"}
KEYWORDS = {"do", "then", "else", "time", "nice", "exec"}


def blocks(doc: Path) -> list[str]:
    return FENCE.findall(doc.read_text(encoding="utf-8"))


def shell_lines(block: str) -> list[str]:
    """The block's logical lines: continuations joined, the block's own variables expanded."""
    joined = re.sub(r"\\\n\s*", " ", block)
    variables: dict[str, str] = {}
    lines = []
    for line in joined.splitlines():
        line = line.strip()
        if (found := ASSIGN.match(line)) and " cai " not in f" {line} ":
            variables[found.group(1)] = " ".join(shlex.split(found.group(2), comments=True))  # unquoted: words
            continue
        line = line.replace("$(which cai)", "cai")
        line = VAR.sub(lambda m: variables.get(m.group(1), "0"), line)
        if line:
            lines.append(line)
    return lines


def commands(line: str) -> list[list[str]]:
    """The cai argument lists of one shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    found, segment = [], []
    for token in [*tokens, ";"]:
        if token not in SEPARATORS:
            segment.append(token)
            continue
        words, skip = [], False
        for word in segment:
            if skip:
                skip = False
            elif word in REDIRECTS or re.fullmatch(r"\d?>>?", word):
                skip = True
            else:
                words.append(word)
        while words and (words[0] in KEYWORDS or ASSIGN.match(words[0])):
            words = words[1:]
        if words and words[0] == "cai":
            found.append(words[1:])
        elif "cai_cli" in words and words.index("cai_cli") > 0 and words[words.index("cai_cli") - 1] == "-m":
            found.append(words[words.index("cai_cli") + 1:])
        segment = []
    return found


def printed() -> list[tuple[str, str, list[str]]]:
    return [(doc.name, line, argv) for doc in DOCS for block in blocks(doc) for line in shell_lines(block)
            for argv in commands(line)]


def parse(argv: list[str]) -> None:
    """ARGV as the app parses it, down to its (sub)command, values checked; raises the app's usage error. With a
    `...` (arguments elided) a missing argument is no error."""
    import typer

    from cai_cli.cli import app

    node = typer.main.get_command(app)
    name, args = "cai", [a for a in argv if a != "..."]
    while hasattr(node, "commands"):
        assert args, f"{name}: no subcommand given"
        name = args.pop(0)
        sub = node.commands.get(name)
        assert sub is not None, f"no command {name!r}"
        node = sub
    try:
        node.make_context(name, args, resilient_parsing=False)
    except Exception as exc:
        if not ("..." in argv and type(exc).__name__ == "MissingParameter"):
            raise


def test_the_docs_print_commands():
    names = {doc for doc, _, _ in printed()}
    assert {"README.md", "contract.md", "eval.md", "training.md", "constitutions.md"} <= names


@pytest.mark.parametrize(("doc", "line", "argv"), printed(), ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else "")
def test_every_printed_command_parses(doc, line, argv):
    try:
        parse(argv)
    except Exception as exc:  # the app's usage errors (typer vendors click): the message says what is wrong
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        pytest.fail(f"{doc}: {line}\n  {type(exc).__name__}: {message}")


def made_small(argv: list[str], out: Path, tiny: Path) -> list[str]:
    """A README command as test_train_docs makes a training doc's small (tiny model, one step, two rows, the fake
    engine where no trained model is named), plus the fake engine for the stages and eval that it leaves alone."""
    from test_train_docs import small

    argv = small(argv, out, tiny)
    if argv[0] in {"critique", "revise", "eval"} and "--engine" not in argv:
        argv += ["--engine", "fake"]
    if argv[0] == "eval":
        argv += ["--bootstrap", "0"]
    return argv


@pytest.mark.usefixtures("one_torch_thread")
def test_the_readme_pipeline_runs_as_printed(tmp_path, fake_engine):
    """The README's first block, every line in order, each reading what the lines before it wrote."""
    from test_train import cai
    from tiny_model import build_tiny_model

    tiny, out = build_tiny_model(tmp_path / "tiny"), tmp_path / "out"
    out.mkdir()
    pipeline = blocks(ROOT / "README.md")[1]
    assert "cai report" in pipeline and "cai train-policy" in pipeline
    for line in shell_lines(pipeline):
        stdout = None
        for argv in commands(line):
            proc = cai(*made_small(argv, out, tiny), input=stdout)
            assert proc.returncode == 0, f"{line}\n{proc.stderr}"
            stdout = proc.stdout
    assert (out / "rl-cai" / "config.json").exists() and (out / "report.png").stat().st_size > 0
