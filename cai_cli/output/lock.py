"""One writer per output: the lock a run holds on its side file (or eval on its work folder's lock file)."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

from ..errors import CaiError


class OutputLock:
    """One writer per output: from its start to its end a run holds an exclusive lock (flock) on its side file (PATH;
    `cai eval` locks OUT.work/lock before it writes anything in its work folder), created empty if need be. A second run on the same output stops at once with one line naming the holder.
    The kernel drops a killed run's lock, so it never blocks the resume; and where a process the killed run
    forked (an engine's worker) still holds it, the side file is carried over to a new file that is not locked.
    """

    def __init__(self, path: Path, output: str):
        self.path = path
        self.fd: int | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without locks (some NFS)
                    print(f"cai: {path}: this file system takes no locks; make sure no other run writes {output}", file=sys.stderr)
                    self.fd = fd
                    return
                holder = _flock_holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if holder is not None and (holder == os.getpid() or not _alive(holder)):
                    _carry_over(path)  # the run that took it is gone: a child of it holds the old file
                    continue
                who = f"pid {holder}" if holder else "another process"
                raise CaiError(f"{output}: another cai run ({who}) is writing this output and holds {path}; wait for it to end, or write elsewhere") from None
            if _same_file(path, fd):
                self.fd = fd
                return
            os.close(fd)  # the holder finished and removed it between our open and our lock: take the new one
        raise CaiError(f"{path}: could not take the lock on this side file")

    def still_held(self) -> bool:
        """Whether the lock is still on the file at PATH (no other run carried it over)."""
        return self.fd is not None and _same_file(self.path, self.fd)

    def discard_contents(self) -> None:
        """--restart: empty the side file (kept, and locked, rather than removed)."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)

    def release(self, remove: bool) -> None:
        """Let go of the lock; REMOVE: delete the side file first (the output is finished, or nothing was done)."""
        if self.fd is None:
            return
        try:
            if remove and self.still_held():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flock_holder(fd: int) -> int | None:
    """The pid that took the flock on FD's file, from /proc/locks (Linux; None where it cannot be told)."""
    st = os.fstat(fd)
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                if "FLOCK" in parts and "->" not in parts and want in parts:
                    pid = int(parts[parts.index(want) - 1])
                    return pid or None
    except (OSError, ValueError):
        pass
    return None


def _carry_over(path: Path) -> None:
    """Copy the side file onto a new file at the same path (atomic rename); the old one, still locked, is left to
    the process that holds it."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, path)
