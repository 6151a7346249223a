"""The stage I/O contract: rows stream through a batch at a time, each input row gives 0..N output rows,
a fingerprinted, locked side file makes a rerun resume (never mixing settings or inputs), and the output
appears atomically. Where rows go and what a run never destroys: output/.

contract.py (RunOptions, the Stage protocol, what a stage gives per row), run.py (run_stage: the one loop over rows),
executor.py (where batches run: here, or behind the same seam on Ray: scale/ray_executor.py), destination.py (each
finished input row to the side file or stdout), summary.py (the summary line)."""


from .contract import Dropped, OnError, Outcome, RunOptions, RunResult, Stage, StageStats, Tally, error_record, outcome_record
from .run import run_stage, stage_inputs

__all__ = ["Dropped", "OnError", "Outcome", "RunOptions", "RunResult", "Stage", "StageStats", "Tally", "error_record", "outcome_record",
           "run_stage", "stage_inputs"]
