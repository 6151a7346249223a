"""Several inputs read as one (`cai eval`'s prompt files), their lines numbered on from one to the next."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .formats import EmptyInput
from .parse import Convert, InputLine
from .source import InputSource


@dataclass
class InputSpec:
    """One input of a run that reads several as one (InputChain): a path (None: stdin), the name its messages use,
    whether it is a CSV file with a header, and what each of its rows goes through (InputSource's `convert`)."""

    path: str | None
    name: str | None = None
    table: bool = False
    convert: Convert | None = None
    copy_of_stdin: bool = False  # PATH holds what stdin gave (so a run's outputs are checked against stdin)

    @property
    def read_from(self) -> str | None:
        """What the user gave, for the check that no output is an input (None: stdin)."""
        return None if self.copy_of_stdin else self.path

    def open(self) -> InputSource:
        return InputSource(self.path, self.table, self.name, self.convert)


class InputChain:
    """Several inputs read as one (`cai eval -p red.jsonl --benign benign.csv`), in order, for the runner: their lines
    are numbered on from one input to the next, so a run keys its records by one increasing number, while `where`
    gives each line's own file and line for messages. Each item says which input it came from (`part`). An input
    without a row is one line, as for a single input."""

    def __init__(self, specs: list[InputSpec]):
        self.parts: list[InputSource] = []
        try:
            for spec in specs:
                self.parts.append(spec.open())
        except BaseException:
            self.close()
            raise
        self.name = self.parts[0].name
        self.seekable = all(p.seekable for p in self.parts)
        self._bases: list[int] = []  # the number before each input's first line, once it has been reached

    def where(self, line: int) -> tuple[str, int]:
        for part, base in reversed(list(enumerate(self._bases))):
            if line > base:
                return self.parts[part].name, line - base
        return self.name, line

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        base = 0
        for n, part in enumerate(self.parts):
            if n == len(self._bases):
                self._bases.append(base)
            last = 0
            for item in part.lines(idle=idle):
                if item is None:
                    yield None
                    continue
                last = item.line
                item.line, item.part = base + item.line, n
                yield item
            if not last:
                raise EmptyInput(part.name)
            base += last

    def close(self) -> None:
        for part in self.parts:
            part.close()


class RowsInput:
    """Rows a command builds in memory as a run's input (`cai synthesize`: its work units, made from the constitution),
    read as a file is: twice (validated first), line N being the N-th row; each read hands out fresh copies, since a
    stage changes the rows it is given."""

    seekable = True

    def __init__(self, name: str, rows: list[dict]):
        self.name, self.rows = name, rows

    def where(self, line: int) -> tuple[str, int]:
        return self.name, line

    def lines(self, idle: bool = False, digest: bool = False) -> Iterator[InputLine | None]:
        import copy

        for number, row in enumerate(self.rows, 1):
            yield InputLine(number, copy.deepcopy(row), None)

    def close(self) -> None:
        pass
