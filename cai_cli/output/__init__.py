"""THE writer: every file any cai command writes goes through this package, and nothing else in cai_cli writes a file
(tests/test_write_sites.py walks the code to keep it so).

plan.py names and checks every file a command writes before any work (inputs, each other, folders, room); encode.py
is strict JSON text; files.py writes rows and whole files atomically (through links, directly to devices and FIFOs),
appends to files the user names and sets rows aside; log.py is the append-only side file; lock.py makes a run its
output's only writer; stream.py keeps stdout for rows alone; folders.py holds what libraries write as whole folders
(models, checkpoints), temporary folders and what cai removes.
"""

from .encode import dumps, dumps_compact
from .files import (
    AppendedFile,
    AtomicWriter,
    SetAside,
    append_rows,
    figure_bytes,
    os_error_message,
    take_back,
    write_file,
    write_npz,
    write_rows,
    write_stream,
    write_summary,
)
from .folders import (
    library_writes,
    make_folder,
    move_into,
    remove,
    remove_empty_folder,
    remove_quietly,
    temporary_folder,
    write_extracted,
    write_folder,
    write_pretrained,
)
from .lock import OutputLock
from .log import AppendLog
from .plan import MIN_FREE, Outputs, check_room, check_targets, check_written, summary_path
from .stream import RowStream, quiet_broken_pipe, seal_stdout

__all__ = [
    "MIN_FREE", "AppendLog", "AppendedFile", "AtomicWriter", "OutputLock", "Outputs", "RowStream", "SetAside", "append_rows",
    "check_room", "check_targets", "check_written", "dumps", "dumps_compact", "figure_bytes", "library_writes", "make_folder",
    "move_into", "os_error_message", "quiet_broken_pipe", "remove", "remove_empty_folder", "remove_quietly", "seal_stdout",
    "summary_path", "take_back", "temporary_folder", "write_extracted", "write_file", "write_folder", "write_npz", "write_pretrained", "write_rows",
    "write_stream", "write_summary",
]
