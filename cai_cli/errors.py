"""Typed errors. Each one prints as a single line and exits with code 2 (JudgeBelowFloor: 3, RewardDiverged: 4)."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class CaiError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""

    exit_code = 2


class InputError(CaiError):
    """A bad input row: names the file, the line and the field."""

    def __init__(self, message: str, *, file: str = "<stdin>", line: int | None = None, field: str | None = None):
        self.file = file
        self.line = line
        self.field = field
        self.reason = message
        where = file if line is None else f"{file}:{line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ConstitutionError(CaiError):
    """An unreadable or invalid constitution file."""


class ModelError(CaiError):
    """A model that cannot be found or loaded."""


class EngineError(CaiError):
    """An engine that cannot start or serve (missing package, unreachable server)."""


class JudgeBelowFloor(CaiError):
    """The judge, measured on gold pairs before a run (--gold with --min-accuracy / --max-ece), is below the floor:
    nothing was labelled, scored or trained. Its own exit code, so a script tells it from bad input (2)."""

    exit_code = 3


class RewardDiverged(CaiError):
    """train-policy --monitor --stop-on-divergence: the training reward rose while the monitor's fell beyond the
    threshold; the run stopped at a checkpoint it can resume from. Its own exit code (4)."""

    exit_code = 4


class Interrupted(CaiError):
    """Ctrl-C (or SIGTERM) where the usual line, "rerun the same command to resume", would not be true."""

    exit_code = 130


class RowFailure(Exception):
    """One row could not be processed (e.g. prompt longer than the context); the run goes on under --on-error."""

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        self.needs_model = False  # set where a check that needs the model failed it (too long): a rerun fails it again
        super().__init__(reason)


def choice(enum: type[E], value, option: str) -> E:
    """VALUE as a member of the closed choice ENUM (a member or its value), or one line naming OPTION and the choices."""
    try:
        return enum(value)
    except ValueError:
        raise CaiError(f"{option}: expected one of {', '.join(str(m.value) for m in enum)}, got {value!r}") from None
