"""Every file a run writes, named and checked before any work: none may be an input of the run or another of its
outputs; `-o` is not a folder; its folder takes writes and has room. A link is written through (to its target); a
device or FIFO is written to directly."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaiError

MIN_FREE = 1 << 20  # bytes a run's output folder must have free when it starts


def beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def summary_path(out: Path) -> Path:
    """OUT.summary.json, for out.jsonl: out.summary.json."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")


def _written_to(path: Path, flag: str) -> tuple[Path, bool]:
    """(where writing PATH lands, whether that is a regular file): a link's target, or PATH itself."""
    try:
        st = os.stat(path)  # follows links
    except FileNotFoundError:
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    except NotADirectoryError:
        raise CaiError(f"{flag} {path}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise CaiError(f"{flag} {path}: cannot use it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaiError(f"{flag} {path}: is a folder; name a file (for example {path / 'out.jsonl'})")
    if stat.S_ISREG(st.st_mode):
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    return path, False


@dataclass
class Outputs:
    """Every file one run writes, resolved: `out` (a regular -o, or None: rows go to `stream`, a device or FIFO
    -o, or to stdout when that is None too), the side file, the errors and dropped files (`*_named`: the user
    named it, so it is appended to), and OUT.summary.json for a stage that writes a summary."""

    out: Path | None
    stream: Path | None
    partial: Path | None
    errors: Path | None
    errors_named: bool
    dropped: Path | None
    dropped_named: bool
    summary: Path | None
    summary_named: bool = False  # the user named it (`eval --summary`)

    @classmethod
    def plan(cls, output: str | None, errors: str | None, dropped: str | None, summary: bool, summary_file: str | None = None) -> Outputs:
        """SUMMARY: the stage writes a summary JSON, to SUMMARY_FILE (`eval --summary`) or else beside a regular -o."""
        out = stream = None
        if output not in (None, "-"):
            target, regular = _written_to(Path(output), "-o")
            out, stream = (target, None) if regular else (None, target)
        err_path = _written_to(Path(errors), "--errors")[0] if errors else (beside(out, ".errors.jsonl") if out else None)
        drop_path = _written_to(Path(dropped), "--dropped")[0] if dropped else (beside(out, ".dropped.jsonl") if out else None)
        return cls(
            out=out, stream=stream, partial=beside(out, ".partial") if out else None,
            errors=err_path, errors_named=bool(errors), dropped=drop_path, dropped_named=bool(dropped),
            summary=(_written_to(Path(summary_file), "--summary")[0] if summary_file else summary_path(out) if out else None) if summary else None,
            summary_named=bool(summary and summary_file),
        )

    def written(self) -> list[tuple[str, Path]]:
        """(what it is, path) for every file the run may write, temporary files included."""
        files: list[tuple[str, Path]] = []
        if self.out is not None:
            files += [("-o", self.out), ("its temporary file", beside(self.out, ".tmp"))]
        if self.stream is not None:
            files.append(("-o", self.stream))
        if self.partial is not None:
            files += [("the side file", self.partial), ("the side file's copy", beside(self.partial, ".tmp"))]
        for path, named, flag in ((self.errors, self.errors_named, "--errors"), (self.dropped, self.dropped_named, "--dropped")):
            if path is not None:
                files.append((flag if named else f"{flag} (default)", path))
                if not named:
                    files.append((f"{flag}'s temporary file", beside(path, ".tmp")))
        if self.summary is not None:
            what = "--summary" if self.summary_named else "the summary"
            files += [(what, self.summary), (f"{what}'s temporary file", beside(self.summary, ".tmp"))]
        return files

    def check(self, inputs: list[tuple[str, str | None]]) -> None:
        """Refuse, before any work, an output that is an input (INPUTS: (what, path), None for stdin) or another
        output, and an output folder that cannot be written or is full."""
        check_written(self.written(), inputs, stdout=self.out is None and self.stream is None)


def check_written(written: list[tuple[str, Path]], inputs: list[tuple[str, str | None]], stdout: bool = False) -> None:
    """Refuse, before any work, a file in WRITTEN ((what, path), temporary files included) that is one of INPUTS
    ((what, path), None for stdin) under any name, or another of WRITTEN, and a folder among them that cannot be
    written or is full. STDOUT: the command writes to stdout too, so what stdout is redirected to counts."""
    read = [(what, _identity(path), path) for what, path in inputs]
    seen: list[tuple[str, Path | None, tuple[int, int] | None]] = []
    if stdout:
        from .stream import stdout_fd

        seen.append(("stdout", None, _identity(None, fd=stdout_fd())))
    seen += [(what, path, _identity(str(path))) for what, path in written]
    for i, (what, path, ident) in enumerate(seen):
        named = f"{what} {path}" if path is not None else what
        for in_what, in_ident, in_path in read:
            if (ident is not None and ident == in_ident) or (path is not None and in_path is not None and _same_name(path, Path(in_path))):
                raise CaiError(f"{named}: is {in_what} of this run ({in_path or 'stdin'}); writing there would destroy it. Write to another file")
        if path is not None and not _regular_or_absent(path):
            continue  # a device (/dev/null, /dev/stderr) may take several outputs
        for other_what, other_path, other_ident in seen[:i]:
            if (path is not None and other_path is not None and _same_name(path, other_path)) or (ident is not None and ident == other_ident):
                raise CaiError(f"{other_what} and {what} are the same file ({path}); give each output its own file")
    for folder in dict.fromkeys(p.parent for _, p, _ in seen if p is not None and _regular_or_absent(p)):
        _check_folder(folder)


def check_targets(targets: list[tuple[str, str | None]], inputs: list[tuple[str, str | None]], stdout: bool = False) -> list[Path | None]:
    """The files a command writes whole besides rows (`show --html`, `report -o`/`--json`, `plan --json`, `constitution
    import --sidecar`, eval's `--summary`), checked before any work as a run's outputs are: TARGETS ((flag, path);
    None: not asked for) must not be a folder or lie through a file, nor be one of INPUTS or one another, and their
    folders must take writes. Returns where each is written (a link's target; a device or FIFO as it is)."""
    resolved: list[Path | None] = []
    written: list[tuple[str, Path]] = []
    for flag, path in targets:
        if path in (None, "-"):
            resolved.append(None)
            continue
        target, regular = _written_to(Path(path), flag)
        resolved.append(target)
        written.append((flag, target))
        if regular:
            written.append((f"{flag}'s temporary file", beside(target, ".tmp")))
    check_written(written, inputs, stdout)
    return resolved


def _identity(path: str | None, fd: int = 0) -> tuple[int, int] | None:
    """(device, inode) of PATH (None: of file descriptor FD), for what can be one file under two names; None for
    what does not exist and for character devices (a terminal or /dev/null may well be read and written)."""
    try:
        st = os.stat(path) if path is not None else os.fstat(fd)
    except (OSError, ValueError):
        return None
    if stat.S_ISCHR(st.st_mode):
        return None
    return st.st_dev, st.st_ino


def _same_name(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _regular_or_absent(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _check_folder(folder: Path) -> None:
    """FOLDER (or, if it does not exist yet, its nearest existing parent) takes new files and has room."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CaiError(f"{folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".cai-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CaiError(f"{existing}: cannot write there ({exc.strerror}); choose another output folder") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE:
        raise CaiError(f"{existing}: only {free // 1024} KiB free on its disk; free some space or write elsewhere")


def check_room(folder: Path, needed: int, kept: Path) -> None:
    """Before OUT is assembled from the side file: room for a copy of it."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CaiError(
            f"{folder}: {free // 1024} KiB free, and writing the output needs about {needed // 1024} KiB; "
            f"the finished rows are kept in {kept}: free some space and rerun the same command to finish"
        )
