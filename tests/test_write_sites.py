"""One writer: no module of cai_cli outside cai_cli/output/ writes, replaces, moves or removes a file or a folder.

The test reads every module's syntax tree (no import, nothing runs) and lists each call that would: open() in a mode
that writes, os.open with a flag that writes or creates, Path.write_text/write_bytes, renames and replaces, copies,
removals, new folders and temporary files, and the libraries' own writers (save_pretrained, save_model, savefig,
torch.save, numpy's save). Libraries that must write a folder themselves are called from output/folders.py alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cai_cli"
WRITER = PACKAGE / "output"

# Methods and functions that write, whatever they are called on.
WRITING_METHODS = {
    "write_text", "write_bytes", "save_pretrained", "save_model", "savefig", "savez", "savez_compressed", "to_csv",
    "to_json", "to_parquet", "mkdir", "makedirs", "mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryDirectory",
    "unlink", "rmdir", "rmtree", "truncate", "ftruncate", "symlink_to", "hardlink_to", "touch", "mkfifo", "mknod",
    "chmod", "copymode", "copystat", "copyfile", "copytree", "copy2", "copyfileobj", "utime",
}
# module.function calls that write (their names alone are too common: list.remove, dict.copy, str.replace).
WRITING_FUNCTIONS = {
    ("os", "remove"), ("os", "replace"), ("os", "rename"), ("os", "renames"), ("os", "link"), ("os", "symlink"),
    ("os", "removedirs"), ("shutil", "copy"), ("shutil", "move"), ("torch", "save"), ("np", "save"), ("numpy", "save"),
}
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _mode(call: ast.Call, position: int) -> str | None:
    """The mode argument of an open-like call, where it is a literal."""
    arg = call.args[position] if len(call.args) > position else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def writes(call: ast.Call) -> str | None:
    """What CALL writes, in a few words; None when it writes nothing."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
    if name is None:
        return None
    if name in ("open", "fdopen"):
        if owner == "os" and name == "open":
            flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if len(call.args) > 1 else set()
            return f"os.open with {', '.join(sorted(flags & WRITE_FLAGS))}" if flags & WRITE_FLAGS else None
        mode = _mode(call, 0 if isinstance(func, ast.Attribute) and owner not in ("os", "io", "gzip", "bz2", "lzma") else 1)
        return f"{name}(..., {mode!r})" if mode is not None and set(mode) & set("wax+") else None
    if name in WRITING_METHODS:
        return name
    if (owner, name) in WRITING_FUNCTIONS:
        return f"{owner}.{name}"
    if name in ("replace", "rename") and isinstance(func, ast.Attribute) and len(call.args) == 1 and not call.keywords:
        return f"Path.{name}"  # str.replace takes two arguments; Path.replace and Path.rename one
    return None


def write_sites() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if WRITER in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (what := writes(node)) is not None:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {what}")
    return found


def test_no_module_outside_output_writes_a_file():
    assert write_sites() == []


def test_the_walk_finds_each_kind_of_write():
    """The checker itself: each way of writing is found, and reading is not."""
    code = """
open(p, "w"); open(p, mode="ab"); p.open("x"); os.fdopen(fd, "w"); os.open(p, os.O_WRONLY | os.O_CREAT)
p.write_text(t); p.write_bytes(b); os.replace(a, b); p.replace(b); p.rename(b); shutil.copy(a, b); shutil.rmtree(d)
p.unlink(); p.mkdir(); tempfile.mkdtemp(); model.save_pretrained(d); trainer.save_model(d); fig.savefig(p)
torch.save(x, p); np.save(p, x); os.remove(p)
open(p); open(p, "rb"); p.open(); os.open(p, os.O_RDONLY); s.replace("a", "b"); items.remove(x); d.copy(); fig.savefig
"""
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)]
    found = [writes(c) for c in calls]
    assert sum(f is not None for f in found) == 21, found
    assert [ast.unparse(c) for c, f in zip(calls, found) if f is None] == [
        "open(p)", "open(p, 'rb')", "p.open()", "os.open(p, os.O_RDONLY)", "s.replace('a', 'b')", "items.remove(x)", "d.copy()"
    ]
