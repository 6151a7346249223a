"""The two ways the tests run `cai ARGS...`, both answering (returncode, stdout, stderr) as text:

run_cai: in this process (the default). The entry point (`cai_cli.cli.main`) runs as `python -m cai_cli` runs it, on
  real file descriptors: stdin is a pipe fed INPUT (as a subprocess's), stdout and stderr are files at descriptors 1
  and 2 (so what a command does with them, the stdout guard included, happens as in a process), in CWD, with ENV
  added to os.environ. What one run changes in this process is put back after it: os.environ (threads.py sets OMP
  settings), the working folder, sys.stdin/stdout/stderr/argv and descriptors 0-2, logging's root handlers, the
  signal handlers, torch's thread count, the engines registry's entries. The fake engine (fakes/engine.py) is the
  one the test scripts, and engine plugins (CAI_ENGINE_PLUGINS) are imported once, as modules are.
run_cai_process: in a new process, only where the process boundary is the point: a signal or kill -9, what C
  libraries print to stdout, locks between processes, the `python -m cai_cli` entry point itself, Ray, what happens
  at exit. FAKE_ENV gives such a process the fake engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

# `run_cai_process(..., env=FAKE_ENV)`: the process registers the fake engine by importing fakes.engine (in this
# process it is registered already, by conftest).
FAKE_ENV = {"CAI_ENGINE_PLUGINS": "fakes.engine", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))}
PROCESS_ONLY_ENV = ("CAI_FAKE_NOISE", "CAI_FAKE_DELAY")  # the fake engine printing at exit, or slow enough to kill


@dataclass
class CaiResult:
    """What a `cai` run gave: as subprocess.CompletedProcess (returncode, stdout, stderr), and as typer's CliRunner
    result (exit_code, output) for the tests written against it."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def exit_code(self) -> int:
        return self.returncode

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cai(*args: str | os.PathLike, input: str | bytes | None = None, cwd: Path | str | None = None, env: dict | None = None,
            timeout: float | None = None, stdin: IO | None = None, stdout: IO | None = None) -> CaiResult:
    """`cai ARGS...` in this process, as `python -m cai_cli ARGS...` in CWD (default: the repository) with ENV added.

    INPUT (text or bytes) is fed through a pipe; or STDIN, an open file, is stdin (then seekable, as a redirect
    `< file`); STDOUT, an open file, takes stdout (`> file`; .stdout is then empty). TIMEOUT is the subprocess
    runner's; a run here has none. An exception escaping the command is a crash, as in a process: its traceback
    on stderr and exit code 1."""
    del timeout
    argv = [str(a) for a in args]
    env = {k: str(v) for k, v in (env or {}).items()}
    if any(env.get(k) for k in PROCESS_ONLY_ENV):
        raise AssertionError(f"{', '.join(PROCESS_ONLY_ENV)} change the process (output at exit, timing for a kill): use run_cai_process")
    with _restored_process_state(), tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        os.environ.update(env)
        os.chdir(cwd or ROOT)
        feeder = None
        if stdin is not None:
            in_fd = os.dup(stdin.fileno())
        else:
            in_fd, write_fd = os.pipe()
            feeder = threading.Thread(target=_feed, args=(write_fd, input.encode() if isinstance(input, str) else input or b""), daemon=True)
            feeder.start()
        os.dup2(in_fd, 0)
        os.close(in_fd)
        os.dup2((stdout or out_file).fileno(), 1)
        os.dup2(err_file.fileno(), 2)
        # As Python sets them up in a process whose stdout and stderr are pipes. Never closed: a logging handler made
        # during the run may keep one (it writes to the test's own descriptors afterwards, harmlessly).
        outer = (sys.stdout, sys.stderr)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = out_text = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = err_text = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)  # noqa: SIM115
        with _warnings_as_in_a_process(), _handlers_on(outer, (out_text, err_text)):
            code = _main(argv)
        for text in (out_text, err_text):
            with contextlib.suppress(Exception):
                text.flush()
        os.close(0)  # the feeder, if it still writes, meets a closed pipe
        if feeder is not None:
            feeder.join(timeout=10)
        out_bytes, err_bytes = _read(out_file), _read(err_file)
    # A command ends with its threads, as a process would: a progress timer left running (progress.py) goes on
    # printing into whatever runs next in this process.
    timers = [t for t in threading.enumerate() if t.name == "cai-progress"]
    if timers:
        raise AssertionError(f"`cai {' '.join(argv)}` (exit {code}) left {len(timers)} progress timer(s) running")
    return CaiResult(argv, code, out_bytes.decode("utf-8", "replace"), err_bytes.decode("utf-8", "replace"), out_bytes, err_bytes)


def _main(argv: list[str]) -> int:
    """The entry point as `python -m cai_cli ARGV...` runs it (click names the program after __main__: "python -m
    cai_cli" in usage lines); its exit code (a crash: its traceback on stderr, 1)."""
    import types

    from cai_cli.cli import main

    entry = types.ModuleType("__main__")
    entry.__package__ = "cai_cli"
    entry.__file__ = str(ROOT / "cai_cli" / "__main__.py")
    sys.argv = [entry.__file__, *argv]
    pytest_main, sys.modules["__main__"] = sys.modules["__main__"], entry
    try:
        main()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - what the interpreter does with an exception that ends the program
        traceback.print_exc()
        return 1
    finally:
        sys.modules["__main__"] = pytest_main
    return 0


def _feed(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    os.close(fd)


def _read(fh) -> bytes:
    fh.seek(0)
    return fh.read()


@contextlib.contextmanager
def _warnings_as_in_a_process():
    """Warnings printed on stderr under Python's default filters, as a process shows them (under pytest they are
    collected instead), each once per run."""
    import warnings

    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category in (("default", DeprecationWarning), ("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                                 ("ignore", ImportWarning), ("ignore", ResourceWarning)):
            warnings.filterwarnings(action, category=category, module="__main__" if action == "default" else "", append=True)
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        warnings._showwarnmsg_impl = _print_warning  # type: ignore[attr-defined]  # pytest's recorder, replaced
        yield


def _print_warning(msg) -> None:
    """What the interpreter does with a warning shown: its lines on stderr."""
    import warnings

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(warnings.formatwarning(msg.message, msg.category, msg.filename, msg.lineno, msg.line))


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]


@contextlib.contextmanager
def _handlers_on(outer: tuple[IO[str], IO[str]], run: tuple[IO[str], IO[str]]):
    """Logging handlers that write to the test's stdout or stderr (OUTER, or the interpreter's own: a library's handler
    made when it was first imported) write to the run's (RUN) while it lasts; those the run made on its streams write
    to the test's after it."""
    moved = []
    for handler in _stream_handlers():
        for i, streams in enumerate(zip(outer, (sys.__stdout__, sys.__stderr__))):
            if handler.stream in streams:
                moved.append((handler, handler.stream))
                handler.setStream(run[i])
    try:
        yield
    finally:
        for handler, stream_ in moved:
            handler.setStream(stream_)
        for handler in _stream_handlers():
            for i in (0, 1):
                if handler.stream is run[i]:
                    handler.setStream(outer[i])


@contextlib.contextmanager
def _restored_process_state():
    """Whatever a command changes in the process it runs in, put back when the block ends."""
    from cai_cli.engines import _REGISTRY
    from cai_cli.output import stream

    environ = dict(os.environ)
    cwd = os.getcwd()
    streams = (sys.stdin, sys.stdout, sys.stderr)
    argv = sys.argv
    fds = [os.dup(fd) for fd in (0, 1, 2)]
    for stream_ in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream_.flush()
    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)}
    registry = dict(_REGISTRY)
    open_streams = list(stream._open_streams)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.argv = argv
        for fd, saved in zip((0, 1, 2), fds):
            os.dup2(saved, fd)
            os.close(saved)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.disable(disabled)
        for sig, handler in signals.items():
            if handler is not None:
                signal.signal(sig, handler)
        _REGISTRY.update(registry)  # engines registered by a plugin's import stay, as its module stays imported
        stream._open_streams[:] = open_streams
        torch = sys.modules.get("torch")
        if torch is not None:
            threads = torch_threads or (int(environ["OMP_NUM_THREADS"]) if environ.get("OMP_NUM_THREADS", "").isdigit() else None)
            if threads and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


def run_cai_process(*args: str | os.PathLike, input: str | bytes | None = None, cwd: Path | str | None = None, env: dict | None = None,
                    timeout: float = 900, stdin: IO | int | None = None, stdout: IO | int | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m cai_cli ARGS...` in a new process, in CWD (default: the repository), with ENV added to this process's
    environment; returns the CompletedProcess with text stdout/stderr. Only where a process boundary is the point."""
    if stdin is not None and input is not None:
        raise ValueError("input or stdin, not both")
    proc: subprocess.CompletedProcess = subprocess.run(
        [sys.executable, "-m", "cai_cli", *(str(a) for a in args)],
        input=input.encode() if isinstance(input, str) else input,
        stdin=stdin if input is None else None,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    proc.stdout = proc.stdout.decode("utf-8", "replace") if isinstance(proc.stdout, bytes) else ""
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


