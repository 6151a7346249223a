"""Where a stage's batches run: here, one after the other (LocalExecutor), or elsewhere behind the same seam
(cai_cli.scale.RayExecutor, a Ray cluster). The runner keeps everything else (input order, resume, the
fingerprint, --on-error, dropped rows, the summary): an executor only turns batches into one outcome per row,
check_loaded's RowFailure included, and hands finished batches back in the order they were submitted."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..errors import RowFailure

# A batch's (line, row) pairs and one outcome per row (runner.Outcome: a row, a list of rows, Dropped, RowFailure).
Finished = tuple[list[tuple[int, dict]], Sequence[Any]]


class BatchExecutor(Protocol):
    def start(self, stage: Any, stop_at_failure: bool) -> None:
        """Load what STAGE needs (here, or on the cluster); stop_at_failure: --on-error fail."""

    def submit(self, batch: list[tuple[int, dict]]) -> Iterable[Finished]:
        """Take a batch; give back the batches finished so far (none, this one, or more), in submission order."""

    def finish(self) -> Iterable[Finished]:
        """Wait for every batch submitted and give them back, in submission order."""

    def close(self) -> None:
        """Release what start() took; also after an error, with batches still running."""


def run_batch_here(stage: Any, batch: list[tuple[int, dict]], stop_at_failure: bool) -> Finished:
    """check_loaded, then process, in this process: what LocalExecutor does, and what each Ray actor does.

    Under --on-error fail (stop_at_failure) a row that fails check_loaded stops the batch before any work, and only
    that row comes back; otherwise it comes back as its RowFailure and the others are processed.
    """
    failures: dict[int, RowFailure] = {}
    ready: list[int] = []
    for i, (_, row) in enumerate(batch):
        try:
            stage.check_loaded(row)
        except RowFailure as failure:
            failure.needs_model = True  # a check that needs the model: a rerun with this model fails it again
            if stop_at_failure:
                return [batch[i]], [failure]
            failures[i] = failure
            continue
        ready.append(i)
    processed = stage.process([copy.deepcopy(batch[i][1]) for i in ready]) if ready else []
    if len(processed) != len(ready):
        raise RuntimeError(f"{stage.name}: process() gave {len(processed)} outcomes for {len(ready)} rows")
    outcomes: dict[int, Any] = {**dict(zip(ready, processed)), **failures}
    return batch, [outcomes[i] for i in range(len(batch))]


class LocalExecutor:
    """Batches run here, one after the other, as they are submitted."""

    def start(self, stage: Any, stop_at_failure: bool) -> None:
        stage.start()
        self.stage, self.stop_at_failure = stage, stop_at_failure

    def submit(self, batch: list[tuple[int, dict]]) -> Iterable[Finished]:
        return [run_batch_here(self.stage, batch, self.stop_at_failure)]

    def finish(self) -> Iterable[Finished]:
        return []

    def close(self) -> None:
        pass
