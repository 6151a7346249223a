"""The `cai` command line: app.py (one thin function per command), options.py (every option, declared once),
plumbing.py (shared option groups, one-line errors, command registration)."""

from .app import app, main

__all__ = ["app", "main"]
