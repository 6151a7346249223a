"""Resume, in one place: the side file (OUT.partial) a run appends its finished rows to (side_file.py), the
fingerprint it records (fingerprint.py) (the lock that makes a run its output's only writer is output/lock.py), so a
rerun picks up where a crash stopped and never mixes rows made with other settings or from other input."""

from .fingerprint import (
    SHAPING_FILES,
    WEIGHT_SUFFIXES,
    changes,
    file_identity,
    folder_identity,
    model_identity,
    normalised,
    shown,
    stage_fingerprint,
)
from .side_file import SIDE_FILE_VERSION, SideFile, check_fingerprint, open_side_file, scan_side_file, side_records

__all__ = [
    "SHAPING_FILES", "WEIGHT_SUFFIXES", "shown", "SIDE_FILE_VERSION", "SideFile", "changes", "check_fingerprint", "file_identity", "folder_identity", "model_identity", "normalised", "open_side_file", "scan_side_file",
    "side_records", "stage_fingerprint",
]
