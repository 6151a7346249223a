"""What the model-driven stages share: a lazily started engine, sampling, provenance, token counts."""

from __future__ import annotations

from ..engines import Engine, EngineOptions, Sampling, load_engine, resolve_engine_name
from ..errors import RowFailure
from ..rows import conversation, input_digest, stable_hash
from ..runner import StageStats


class EngineStage:
    name = "stage"
    tallies: tuple[str, ...] = ("stats",)  # the counts that add up over batches (see runner.Stage)
    # Every text the stage generates stays in its rows with its finish reason, so the summary's count of texts cut at
    # --max-tokens is recounted from the finished rows (cut_texts): a resumed run counts each row once, as an
    # uninterrupted one does. A stage whose texts do not all stay in its rows (a judge's reasoning) counts them as
    # they are generated.
    cut_in_rows = False

    def __init__(self, engine_opts: EngineOptions, sampling: Sampling):
        self.engine_opts = engine_opts
        self.sampling = sampling
        self.engine: Engine | None = None
        self.stats = StageStats()
        self._settings_hash: str | None = None

    def start(self) -> None:
        if self.engine is None:
            self.engine = load_engine(self.engine_opts)

    def started_engine(self) -> Engine:
        """The engine start() loaded: the runner starts a stage before it checks or processes rows."""
        assert self.engine is not None, f"{self.name}: the engine is used before start() loaded it"
        return self.engine

    def check(self, row: dict) -> None:
        raise NotImplementedError

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
        if self.engine is not None and self.engine.name == "openai":
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

    def settings(self) -> dict:
        """The stage's own options that shape its rows (JSON-serialisable); stages with such options override it."""
        return {}

    def input_files(self) -> dict[str, str]:
        """The files this stage reads besides its input (what -> path): no output of the run may be one of them."""
        constitution = getattr(self, "constitution", None)
        if constitution is None or constitution.source.startswith("builtin:"):
            return {}
        return {"the constitution": constitution.source}

    def settings_hash(self) -> str:
        """A hash of what makes rows besides the input and the constitution: the model's identity, the engine, the
        sampling and settings(). Recorded per row (meta.<stage>.settings_hash), so `--amend` copies only rows made
        the same way."""
        from ..resume import model_identity

        engine = resolve_engine_name(self.engine_opts.engine)
        model = model_identity(engine, self.engine_opts.model, list(self.engine_opts.base_urls))
        return stable_hash({"model": model, "engine": [engine, self.engine_opts.dtype], "sampling": self.sampling.as_meta(), "settings": self.settings()})

    def amend_keys(self, row: dict) -> dict:
        """What meta.<stage> records for `--amend`: the input row's digest and settings_hash() (computed once)."""
        if self._settings_hash is None:
            self._settings_hash = self.settings_hash()
        return {"input_hash": input_digest(row), "settings_hash": self._settings_hash}

    def fingerprint(self) -> dict:
        """Everything of this stage that changes its rows, for the side file (see cai_cli/resume.py)."""
        from ..resume import engine_stage_fingerprint

        engine = resolve_engine_name(self.engine_opts.engine)
        constitution = getattr(self, "constitution", None)
        return engine_stage_fingerprint(engine, self.engine_opts, self.engine, self.sampling.as_meta(), constitution, self.settings())

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
        """One finished input row into the summary (runner.Stage): its cut texts, read from its rows."""
        if self.cut_in_rows:
            self.stats.truncated += sum(self.cut_texts(row) for row in rows)


def finish_reason(completion) -> str | list[str] | None:
    """What meta.<stage>.finish_reason records: one reason, or a list when --n > 1 gave several texts."""
    reasons = list(completion.finish_reasons)
    if not reasons:
        return None
    return reasons[0] if len(reasons) == 1 else reasons
