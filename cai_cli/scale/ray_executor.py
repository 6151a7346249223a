"""--ray: a stage's batches on a Ray cluster, through one Ray Data pipeline; the runner keeps everything else.

The runner (cai_cli/runner/) reads, validates, shards and resumes as always, and hands each batch of rows
still to do to this executor (its BatchExecutor seam). Each batch goes into Ray's object store as one
block (the driver keeps only references), and once the input is read, one pipeline runs them all:

    ray.data.from_arrow_refs(one block per batch) -> map_batches(StageActor, a fixed pool of N actors)

Each actor unpickles the stage (never started in the driver) and starts it once, so each actor holds one
engine: vLLM on GPU actors, the transformers engine on CPU actors. An actor runs on a batch exactly what
a local run runs (runner.executor.run_batch_here: check_loaded, then process), so the rows are the same: every
random draw is per row (rows.row_seed), never per process or per batch, and the batches are the runner's.
Batches come back as they finish, tagged with their sequence number; they are handed to the runner in
submission order, so the side file, resume, --on-error, dropped rows and the summary line behave as
without Ray. Each also brings back what it added to the stage's tallies (tokens, truncated texts, the
judge's counts; see tallies.py), which are added to the driver's stage, whose summary line is printed.

A lost actor (its process killed, its node gone) is started again by Ray, and the batches it held run
again on it: Ray Data's defaults for an actor pool (max_restarts and max_task_retries -1) do it, nothing
of ours; a batch that kills its actor every time (out of memory) is therefore tried without end. A lost
driver loses nothing finished: the side file has every batch that came back; rerun the command.

The work starts once the input is read (all of it, for a pipe: `cai a | cai b --ray auto` waits for a):
a pipeline fed while it runs would need a reader task pulling from the driver, which Ray Data coalesces
and backpressures into stalls, and which a lost node could not replay.

Why not `ray.data.llm` (vLLMEngineProcessorConfig + build_processor): its processors own the prompt
(a chat template applied to one `messages` column) and return generated text. No stage fits that
without a second copy of itself: critique and revise fit their worked examples to the context with
the engine's tokenizer per row, label-prefs scores option log-probs (no decoding) in both orders,
score runs a reward model; and generate's rows (meta, finish reasons, per-row seeds, token counts)
would be rebuilt outside the stage. Here each stage's own code runs on the actor, on the vLLM engine
where there is a GPU, so rows are the same with and without Ray.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import CaiError, EngineError
from ..runner.executor import Finished, run_batch_here
from ..stages.base import Stage
from .tallies import add_tallies, increase, snapshot


@dataclass
class RaySettings:
    """--ray ADDRESS, --ray-actors, --ray-gpus (and --batch-size: the rows of each batch an actor runs)."""

    address: str  # "auto": the running cluster (`ray start --head`); "local": start one in this process; or an address
    actors: int | None = None  # None: as many as the cluster holds (its GPUs / gpus_per_actor, else its CPUs)
    gpus_per_actor: float = 0.0  # > 0: GPU actors (vLLM); 0: CPU actors (the transformers engine)
    cpus_per_actor: float = 1.0


class StageActor:
    """One Ray Data actor: the stage, started once, runs the batches it is given as a local run would."""

    def __init__(self, stage: Stage, stop_at_failure: bool):
        # stdout is rows and nothing else: whatever a library prints in an actor goes to stderr.
        sys.stdout.flush()
        os.dup2(2, 1)
        self.stage, self.stop_at_failure = stage, stop_at_failure
        self.fatal: BaseException | None = None
        try:
            self.stage.start()
        except Exception as exc:  # reported with the first batch, as the one-line error a local run gives
            self.fatal = _portable(exc)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        return {"payload": [pickle.dumps(self.run(*pickle.loads(p))) for p in batch["payload"]]}

    def run(self, seq: int, rows: list[tuple[int, dict]]) -> tuple:
        """(seq, the (line, row) pairs that came back, their outcomes, the tallies' increase, None), or the error last."""
        if self.fatal is not None:
            return seq, None, None, None, self.fatal
        before = snapshot(self.stage)
        try:
            done, outcomes = run_batch_here(self.stage, rows, self.stop_at_failure)
        except Exception as exc:
            return seq, None, None, None, _portable(exc)
        return seq, done, list(outcomes), increase(self.stage, before), None


def _portable(exc: BaseException) -> BaseException:
    """The exception as the driver should raise it: a CaiError as it is; anything else with the actor's traceback."""
    if isinstance(exc, CaiError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            return CaiError(str(exc))
    return RuntimeError(f"{type(exc).__name__} in a Ray actor: {exc}\n{traceback.format_exc()}")


def _ray_messages_to_stderr() -> None:
    """Ray prints the cluster's messages ("(raylet) Task ... failed ...") and its workers' stdout to the driver's
    stdout, where the rows go: send them to stderr (once per process; before ray.init, which binds its printer)."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "to_stderr", False):
        return

    def to_stderr(data, ignore_prefix):
        return original({**data, "is_err": True}, ignore_prefix)

    to_stderr.to_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


class RayExecutor:
    """The runner's BatchExecutor on a Ray cluster (see the module's docstring)."""

    def __init__(self, settings: RaySettings):
        self.settings = settings
        self.started_ray = False

    def start(self, stage: Stage, stop_at_failure: bool) -> None:
        engine_opts = stage.engine_opts
        if engine_opts is not None:
            from ..engines import EngineName, resolve_engine_name

            if resolve_engine_name(engine_opts.engine) == EngineName.openai:
                raise CaiError("--ray with --engine openai: the servers already share the rows (--base-url, repeated); drop --ray")
        self.stage, self.stop_at_failure = stage, stop_at_failure
        self.blocks: list[Any] = []  # one object-store reference per batch, in submission order
        _ray_messages_to_stderr()
        self._connect()

    def _connect(self) -> None:
        import ray

        from ..engines import PLUGINS_ENV

        if ray.is_initialized():
            return
        address = None if self.settings.address == "local" else self.settings.address
        plugins = os.environ.get(PLUGINS_ENV)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level=logging.ERROR,
                runtime_env={"env_vars": {PLUGINS_ENV: plugins}} if plugins else None,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"--ray {self.settings.address}: cannot reach a Ray cluster ({exc}); start one with `ray start --head`, or use --ray local") from None
        self.started_ray = True

    # ------------------------------------------------------------------ batches

    def submit(self, batch: list[tuple[int, dict]]) -> list[Finished]:
        """Into the object store; nothing runs until finish()."""
        import pyarrow as pa
        import ray

        payload = pickle.dumps((len(self.blocks), batch))
        self.blocks.append(ray.put(pa.table({"payload": pa.array([payload], type=pa.binary())})))
        return []

    def finish(self) -> Iterator[Finished]:
        """Run every batch through the actors; hand each back in submission order as soon as it and those before it are back."""
        if not self.blocks:
            return
        import ray

        blocks, self.blocks = self.blocks, []
        actors = min(len(blocks), self.settings.actors or self._default_actors())
        self._check_resources(actors)
        ds = ray.data.from_arrow_refs(blocks).map_batches(
            StageActor,
            fn_constructor_args=(self.stage, self.stop_at_failure),
            batch_size=None,  # one block is one batch the runner made: the same batches as a local run
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.settings.cpus_per_actor,
            num_gpus=self.settings.gpus_per_actor,
        )
        del blocks  # the dataset holds them now
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines say what the summary line says
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": ours counts the rows
        ctx = ds.context
        ctx.execution_options.preserve_order = False  # a slow batch holds nothing up there; the order is restored here
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        arrived: dict[int, tuple] = {}
        next_seq = 0
        try:
            # Block by block as each is made (iter_rows and iter_batches hold one back until the next arrives).
            for bundle in ds.iter_internal_ref_bundles():
                for entry in bundle.blocks:
                    for payload in ray.get(entry.ref).column("payload").to_pylist():
                        seq, done, outcomes, gained, error = pickle.loads(payload)
                        if error is not None:
                            raise error
                        arrived[seq] = (done, outcomes, gained)
                while next_seq in arrived:
                    done, outcomes, gained = arrived.pop(next_seq)
                    add_tallies(self.stage, gained)
                    next_seq += 1
                    yield done, outcomes
        except (CaiError, RuntimeError):
            raise
        except Exception as exc:  # the cluster, not a stage: a node lost with the only copy of a batch, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CaiError(f"--ray: the Ray pipeline failed ({first}); finished rows are kept (with -o, in OUT.partial): rerun to resume") from exc
        if arrived:
            raise RuntimeError(f"--ray: batches {sorted(arrived)} came back, but not batch {next_seq}")

    def _default_actors(self) -> int:
        import ray

        res = ray.cluster_resources()
        if self.settings.gpus_per_actor > 0:
            return max(1, int(res.get("GPU", 0) // self.settings.gpus_per_actor))
        return max(1, int(res.get("CPU", 1) // self.settings.cpus_per_actor))

    def _check_resources(self, actors: int) -> None:
        import ray

        res = ray.cluster_resources()
        wants = {"GPU": actors * self.settings.gpus_per_actor, "CPU": actors * self.settings.cpus_per_actor}
        short = [f"{need:g} {kind} (the cluster has {res.get(kind, 0):g})" for kind, need in wants.items() if need > res.get(kind, 0)]
        if short:
            print(f"cai: --ray: {actors} actors need {' and '.join(short)}; they wait until the cluster grows", file=sys.stderr)

    def close(self) -> None:
        import ray

        self.blocks = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False
