"""The stage contract's base classes: Stage (every hook the runner calls, each a no-op by default, and the capabilities
a stage declares instead of having them looked up), and EngineStage (a stage that runs a model: its engine from a
pool, provenance, token counts, finish reasons, and the one description of what makes its rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ..engines import Engine, EngineName, EngineOptions, Sampling, resolve_engine_name
from ..engines.pool import EnginePool
from ..errors import RowFailure
from ..rows import conversation, row_digest, stable_hash
from ..runner import Outcome, StageStats

if TYPE_CHECKING:
    from ..constitution import Constitution


class Stage:
    """What the runner runs (runner.Stage): rows in, 0..N rows out per input row. Override what applies; the rest is a
    no-op. See docs/design.md, "Stage I/O contract"."""

    name = "stage"
    # The counts that add up over batches, carried back from where batches ran (cai_cli/scale/tallies.py).
    tallies: tuple[str, ...] = ("stats",)
    # Capabilities, declared:
    writes_summary: bool = False  # summary_dict() goes to OUT.summary.json (or --summary) at the end
    engine_opts: EngineOptions | None = None  # the engine it runs on (None: none; --ray refuses a served one)
    constitution: Constitution | None = None  # the constitution its rows are made under (None: none)

    def __init__(self) -> None:
        self.stats = StageStats()

    def check(self, row: dict) -> None:
        """Raise FieldProblem for a row this stage cannot use. Runs before any model is loaded."""

    def start(self) -> None:
        """Load models. A file input: once there is work to do. A pipe: at once, while upstream works."""

    def check_loaded(self, row: dict) -> None:
        """Checks that need the model (a prompt longer than the context): raise RowFailure."""

    def process(self, rows: list[dict]) -> Sequence[Outcome]:
        """Per input row, in order: a dict (one output row), a list of dicts, Dropped and Tally (0..N rows), or a RowFailure."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The stage's own options that shape its rows (JSON-serialisable)."""
        return {}

    def fingerprint(self) -> dict:
        """Everything of this stage that changes its rows, for the side file (cai_cli/resume)."""
        return {"settings": self.settings()}

    def input_files(self) -> dict[str, str]:
        """The files this stage reads besides its input (what -> path): no output of the run may be one of them."""
        if self.constitution is None or self.constitution.source.startswith("builtin:"):
            return {}
        return {"the constitution": self.constitution.source}

    def screen(self, record: dict) -> dict:
        """One finished input row's record, in input order, just before recount: may move rows into its `dropped` with a
        reason (synthesize: a near-duplicate of an earlier row), so the decision is the same whatever the batches, --ray
        or a crash and resume saw."""
        return record

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """One finished input row, in input order, as its rows leave (stdout) or as OUT is written from the side file: a
        summary counted here, not in process(), counts every row exactly once whichever run finished it."""

    def summary(self) -> str:
        """Stage-specific words for the summary line ('' for none)."""
        return ""

    def summary_dict(self) -> dict:
        """What OUT.summary.json holds (only where writes_summary)."""
        return {}


class EngineStage(Stage):
    """A stage that runs a model: its engine from POOL (its own unless it shares one), provenance, token counts."""

    # Every text the stage generates stays in its rows with its finish reason, so the summary's count of texts cut at
    # --max-tokens is recounted from the finished rows (cut_texts): a resumed run counts each row once, as an
    # uninterrupted one does. A stage whose texts do not all stay in its rows (a judge's reasoning) counts them as
    # they are generated.
    cut_in_rows: ClassVar[bool] = False

    def __init__(self, engine_opts: EngineOptions, sampling: Sampling, pool: EnginePool | None = None):
        super().__init__()
        self.engine_opts: EngineOptions = engine_opts
        self.sampling = sampling
        self.pool = pool if pool is not None else EnginePool()
        self.engine: Engine | None = None
        self._settings_hash: str | None = None

    def share(self, pool: EnginePool) -> EngineStage:
        """Take the engine from POOL, shared with the other stages that use it (eval's phases, `cai plan`'s pipeline)."""
        self.pool = pool
        return self

    def start(self) -> None:
        if self.engine is None:
            self.engine = self.pool.get(self.engine_opts)

    def started_engine(self) -> Engine:
        """The engine start() loaded: the runner starts a stage before it checks or processes rows."""
        assert self.engine is not None, f"{self.name}: the engine is used before start() loaded it"
        return self.engine

    def context_messages(self, row: dict) -> list[dict]:
        """The conversation the model will see for this row (used to check it fits the context)."""
        return conversation(row)

    def check_loaded(self, row: dict) -> None:
        engine = self.started_engine()
        limit = engine.max_context
        if not limit:
            return
        used = engine.count_tokens(self.context_messages(row))
        if used + self.sampling.max_tokens > limit:
            raise RowFailure(
                f"the prompt is {used} tokens; with --max-tokens {self.sampling.max_tokens} it exceeds the model's context of {limit}",
                field="messages" if row.get("messages") else "prompt",
            )

    def _model_name(self) -> str:
        if self.engine_opts.model:
            return self.engine_opts.model
        if self.engine is not None and self.engine.name == EngineName.openai:
            return self.engine.model  # whatever the server serves
        return "embedded:SmolLM2-135M-Instruct"

    def provenance(self, **extra) -> dict:
        info = {
            "model": self._model_name(),
            "engine": resolve_engine_name(self.engine_opts.engine),
            "sampling": self.sampling.as_meta(),
        }
        info.update(extra)
        return info

    def made_by(self) -> dict:
        """What makes rows besides the input and the constitution, known before the engine starts: the model's
        identity, the engine, the sampling and settings(). The side file's fingerprint and each row's settings_hash
        are both this."""
        from ..resume import model_identity

        engine = resolve_engine_name(self.engine_opts.engine)
        return {
            "model": model_identity(engine, self.engine_opts.model, list(self.engine_opts.server.base_url)),
            "engine": {"name": engine, "dtype": self.engine_opts.dtype.value},
            "sampling": self.sampling.as_meta(),
            "settings": self.settings(),
        }

    def settings_hash(self) -> str:
        """made_by() as one hash, recorded per row (meta.<stage>.settings_hash), so `--amend` copies only rows made the
        same way."""
        return stable_hash(self.made_by())

    def fingerprint(self) -> dict:
        """made_by(), with the model an OpenAI-compatible server serves (once the engine has asked it) and the
        constitution."""
        fp = self.made_by()
        if fp["engine"]["name"] == EngineName.openai and self.engine is not None:
            fp["model"]["served"] = self.engine.model
        if self.constitution is not None:
            fp["constitution"] = {"name": self.constitution.name, "hash": self.constitution.hash}
        # settings last, as the side file has always listed them
        fp["settings"] = fp.pop("settings")
        return fp

    def amend_keys(self, row: dict) -> dict:
        """What meta.<stage> records for `--amend`: the input row's digest and settings_hash() (computed once)."""
        if self._settings_hash is None:
            self._settings_hash = self.settings_hash()
        return {"input_hash": row_digest(row), "settings_hash": self._settings_hash}

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.stats.extra.items())

    def chat(self, conversations: list[list[dict]], seeds: list[int], sampling: Sampling | None = None):
        """Generate for each conversation with its own seed (see rows.row_seed); counts tokens and truncated texts."""
        return self.count(self.started_engine().chat(conversations, sampling or self.sampling, seeds=seeds))

    def count(self, completions):
        """Add the completions' tokens (read, written, from cache) and truncated texts to the summary line's counts."""
        for c in completions:
            self.stats.tokens_in += c.prompt_tokens
            self.stats.tokens_out += c.completion_tokens
            self.stats.cached_tokens += c.cached_tokens
            if not self.cut_in_rows:
                self.stats.truncated += c.truncated
        return completions

    def cut_texts(self, row: dict) -> int:
        """How many of the texts this stage wrote into ROW its finish reasons mark as cut at --max-tokens."""
        raise NotImplementedError

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """One finished input row into the summary: its cut texts, read from its rows."""
        if self.cut_in_rows:
            self.stats.truncated += sum(self.cut_texts(row) for row in rows)


def finish_reason(completion) -> str | list[str] | None:
    """What meta.<stage>.finish_reason records: one reason, or a list when --n > 1 gave several texts."""
    reasons = list(completion.finish_reasons)
    if not reasons:
        return None
    return reasons[0] if len(reasons) == 1 else reasons
