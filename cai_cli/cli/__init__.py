"""The `cai` command line: app.py (the app and its entry point), one module per family of commands (one thin function
each), options.py (each command's own options, declared once), groups.py (option groups: the options several commands
share, declared on the dataclass that uses them), plumbing.py (registration, one-line errors)."""

from .app import app, main

__all__ = ["app", "main"]
