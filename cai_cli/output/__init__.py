"""The output side of a run: where its rows go, and what it never destroys.

plan.py names and checks every file a run writes before any work; stream.py keeps stdout for rows alone;
files.py sets rows aside (errors, dropped rows) and writes the summary file; destination.py takes each finished
input row to the side file (then OUT) or to stdout.
"""

from .destination import Destination
from .files import AppendedFile, SetAside, os_error_message, take_back, write_summary
from .plan import MIN_FREE, Outputs, check_room, summary_path
from .stream import RowStream, seal_stdout

__all__ = [
    "MIN_FREE", "AppendedFile", "Destination", "Outputs", "RowStream", "SetAside", "check_room", "os_error_message",
    "seal_stdout", "summary_path", "take_back", "write_summary",
]
