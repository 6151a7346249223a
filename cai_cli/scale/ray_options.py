"""--ray, --ray-actors, --ray-gpus: a stage's batches on a Ray cluster (ray_executor.py), and the engine its actors
start, decided here rather than by this machine (the actors run elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from ..engines import EngineName, EngineOptions
from ..errors import CaiError
from ..flags import SCALE_PANEL, Flag


@dataclass
class RayOptions:
    ray: Annotated[str | None, Flag(
        metavar="ADDRESS", panel=SCALE_PANEL,
        help="Run the batches on a Ray cluster (Ray Data, one engine per actor, built once); order, resume and the summary stay as "
        "without it. ADDRESS: auto (the running cluster: `ray start --head`), local (start one here), or an address (host:6379, "
        "ray://host:10001). The value is required: `--ray auto`.",
    )] = None
    ray_actors: Annotated[int | None, Flag(
        min=1, show_default="the cluster's GPUs / --ray-gpus, else its CPUs", panel=SCALE_PANEL,
        help="With --ray: actors, each with its own engine; each runs --batch-size rows at a time.",
    )] = None
    ray_gpus: Annotated[float | None, Flag(
        min=0.0, show_default="--tensor-parallel-size with --engine vllm, else 0", panel=SCALE_PANEL,
        help="With --ray: GPUs per actor. Above 0, --engine auto is vllm; at 0, the transformers engine on CPU actors (one CPU each).",
    )] = None

    def gpus_per_actor(self, engine: EngineOptions | None) -> float:
        if self.ray_gpus is not None:
            return self.ray_gpus
        return float(engine.vllm.tensor_parallel_size) if engine is not None and engine.engine == EngineName.vllm else 0.0

    def executor(self, engine: EngineOptions | None = None):
        """--ray's executor, or None: batches run in this process."""
        if self.ray is None:
            if self.ray_actors is not None or self.ray_gpus is not None:
                raise CaiError("--ray-actors and --ray-gpus go with --ray ADDRESS (e.g. --ray auto)")
            return None
        from .ray_executor import RayExecutor, RaySettings

        return RayExecutor(RaySettings(address=self.ray, actors=self.ray_actors, gpus_per_actor=self.gpus_per_actor(engine)))

    def engine_options(self, engine: EngineOptions) -> EngineOptions:
        """ENGINE as the actors start it: with --ray, `--engine auto` is vllm on GPU actors, transformers on CPU ones."""
        if self.ray is None or engine.engine != EngineName.auto:
            return engine
        return replace(engine, engine=(EngineName.vllm if self.gpus_per_actor(engine) > 0 else EngineName.transformers).value)
