"""synthesize: requests written from the constitution itself, for each routed passage and each hard constraint.

The stage's input rows are its work units, one per request wanted (a passage or constraint, a Kind, an index), made
from the constitution by `units` (and `until_covered`); the runner reads them as any input, so ids, per-row seeds,
--limit, --shard, resume and --ray apply as to every stage. Each unit gives 0..1 rows: the model is asked for one
request (synthesize_prompts.py) written with a variation drawn from the row's own seed; what it writes is kept as a
prompt row (`prompt`, or `messages` for a short conversation) with its kind, passage and eval set, or left out with
its reason (Rejection) in OUT.dropped.jsonl.

Near-duplicates are removed by `screen`, which the runner calls on each finished unit in input order as its row
leaves (with -o OUT: as OUT is assembled from the side file): a request is left out where it is a near-duplicate of
a request kept before it in input order, or of a row of --exclude (dedupe.py). Its fate therefore depends on the
rows before it alone, never on which batch, process or earlier (killed) run wrote it. Under --shard I/N each shard
is screened on its own rows and --exclude; the unsharded command with --reuse of every shard's OUT and
OUT.dropped.jsonl then copies each unit's row instead of asking again (no model loads when none is missing) and
screens them all, giving the unsharded run's rows.
"""

from __future__ import annotations

import random
from collections import Counter

from ..constitution import Constitution
from ..constitution.passages import budget_for
from ..constitution.requests import sized
from ..errors import CaiError, ConstitutionError, RowFailure
from ..rows import FieldProblem, row_seed, set_meta, stable_hash, stage_meta
from ..runner import Dropped
from .base import EngineStage, finish_reason
from .dedupe import NearDuplicates
from .synthesize_config import SynthesizeConfig, prompt_rows, request_text, targets
from .synthesize_prompts import (
    EVAL_SET,
    EXAMPLES_SHOWN,
    Kind,
    Rejection,
    draw_variation,
    read_request,
    request_messages,
    template_identity,
)


class Synthesize(EngineStage):
    name = "synthesize"
    cut_in_rows = True
    writes_summary = True  # OUT.summary.json: what was kept and dropped, per kind and reason

    def __init__(self, engine_opts, sampling, constitution: Constitution, cfg: SynthesizeConfig):
        super().__init__(engine_opts, sampling)
        # A document's passages sized for this model (or --passage-tokens), as critique quotes them: rows name the
        # passages a critique round of the same model would.
        self.constitution: Constitution = sized(constitution, budget_for(engine_opts.model, engine_opts.vllm.max_model_len, cfg.passage_tokens))
        self.cfg = cfg
        if cfg.per_passage < 1:
            raise CaiError(f"--per-passage: expected at least 1, got {cfg.per_passage}")
        if not cfg.kinds:
            raise CaiError("--kinds: name at least one kind")
        if not 0.0 < cfg.similarity <= 1.0:
            raise CaiError(f"--similarity: expected a number above 0 and at most 1, got {cfg.similarity}")
        self.targets = {t.id: t for t in targets(self.constitution)}
        if not self.targets:
            raise ConstitutionError(f"{self.constitution.source}: has no routed passages, principles or hard constraints to write requests for")
        self.index: NearDuplicates | None = None  # built by the first screen (never in a process that only generates)
        self.kept: Counter = Counter()  # (kind) -> rows kept, counted by recount
        self.per_passage: dict[str, Counter] = {}
        self.left_out: Counter = Counter()
        self.cleaned = 0
        self.seen: dict[str, None] = {}  # the targets of every finished unit, in order
        self.reused: dict[str, dict] = {}  # unit id -> its row (or dropped row) from --reuse, made the same way
        self.engine_needed = True  # False where every unit of the run is reused: no model loads

    # ---- the work units ------------------------------------------------------------------------------------

    def units(self, only: set[tuple[str, str]] | None = None, after: int = 0) -> list[dict]:
        """One row per request wanted: each target and kind (ONLY: those (target, kind) pairs), --per-passage of each,
        indexed from AFTER + 1 (under --until-covered, the last index ROWS has: new ids, and new draws for a kind whose
        requests were all left out last time)."""
        out = []
        for target in self.targets.values():
            for kind in self.cfg.kinds:
                if only is not None and (target.id, kind.value) not in only:
                    continue
                for index in range(after + 1, after + 1 + self.cfg.per_passage):
                    out.append({"id": f"{target.id}:{kind.value}:{index}", "passage": target.id, "kind": kind.value, "index": index})
        return out

    def work(self, until_covered: str | None = None, covered_at: int = 1):
        """The run's input: its work units (RowsInput), --until-covered's only, with --reuse read; None where none is
        left to write."""
        from ..jsonl import RowsInput

        only, after = self.until_covered(until_covered, covered_at) if until_covered else (None, 0)
        units = self.units(only, after)
        if not units:
            return None
        self.load_reuse(units)
        return RowsInput(f"{self.constitution.source} (the requests to write)", units)

    def until_covered(self, path: str, at_least: int) -> tuple[set[tuple[str, str]], int]:
        """The (target, kind) pairs ROWS (at PATH) uses fewer than AT_LEAST times (constitution coverage: the critique
        rounds that used the target, plus the rows of that kind synthesized for it), and the last index of ROWS'
        synthesized rows."""
        from ..constitution.coverage import coverage
        from ..jsonl import iter_rows

        last = 0

        def rows():
            nonlocal last
            for row in iter_rows(path, "--until-covered reads rows of cai (prompts, critiques, synthesized requests)"):
                index = stage_meta(row, self.name).get("index")
                if isinstance(index, int) and not isinstance(index, bool):
                    last = max(last, index)
                yield row

        cov = coverage(rows(), self.constitution)
        return {(t, k.value) for t in self.targets for k in self.cfg.kinds if cov.uses_of_kind(t, k.value) < at_least}, last

    def load_reuse(self, units: list[dict]) -> None:
        """The rows of --reuse made with these settings for a passage unchanged since, by unit id; whether any unit of
        UNITS still needs the model."""
        from ..jsonl import iter_rows

        settings = self.settings_hash()
        for path in self.cfg.reuse:
            for row in iter_rows(path, "--reuse reads the rows (and dropped rows) `cai synthesize` wrote"):
                info = stage_meta(row, self.name)
                target = self.targets.get(str(row.get("passage")))
                if info.get("settings_hash") == settings and target is not None and row.get("passage_hash") == target.hash:
                    self.reused.setdefault(str(row.get("id")), row)
        self.engine_needed = any(u["id"] not in self.reused for u in units)

    # ---- the stage ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.engine_needed:
            super().start()

    def check_loaded(self, row: dict) -> None:
        if row["id"] not in self.reused:
            super().check_loaded(row)

    def check(self, row: dict) -> None:
        if row.get("passage") not in self.targets:
            raise FieldProblem("passage", f"expected a routed passage or hard constraint of {self.constitution.source}, got {row.get('passage')!r}")
        if row.get("kind") not in {k.value for k in Kind}:
            raise FieldProblem("kind", f"expected one of {', '.join(k.value for k in Kind)}, got {row.get('kind')!r}")
        if not isinstance(row.get("index"), int):
            raise FieldProblem("index", "expected an integer")

    def settings(self) -> dict:
        cfg = self.cfg
        return {"kinds": [k.value for k in cfg.kinds], "per_passage": cfg.per_passage, "domain": cfg.domain,
                "examples": stable_hash([[e.text, e.kind.value] for e in cfg.examples]) if cfg.examples else None,
                "templates": stable_hash(template_identity()),
                **({"passage_tokens": self.constitution.passage_tokens} if self.constitution.is_document else {})}

    def input_files(self) -> dict[str, str]:
        files = super().input_files()
        if self.cfg.examples_source:
            files["--examples"] = self.cfg.examples_source
        files.update({f"--exclude {path}": path for path in self.cfg.exclude})
        files.update({f"--reuse {path}": path for path in self.cfg.reuse})
        return files

    def request(self, row: dict) -> tuple[list[dict], dict]:
        """The conversation asking for ROW's request, and what the row records of how it was asked."""
        target, kind = self.targets[row["passage"]], Kind(row["kind"])
        rng = random.Random(row_seed(self.sampling.seed, self.name, row["id"], "variation"))
        variation = draw_variation(rng)
        pool = [e for e in self.cfg.examples if e.kind is kind]
        shown = rng.sample(pool, min(EXAMPLES_SHOWN, len(pool))) if pool else []
        messages = request_messages(target.what, target.heading, target.text, kind, variation, self.cfg.domain, [e.text for e in shown])
        return messages, {"variation": variation.as_meta(), **({"examples": [e.where for e in shown]} if shown else {})}

    def context_messages(self, row: dict) -> list[dict]:
        return self.request(row)[0]

    def process(self, rows: list[dict]) -> list[dict | Dropped | RowFailure]:
        out: list[dict | Dropped | RowFailure] = [self.copy(self.reused[r["id"]]) for r in rows if r["id"] in self.reused]
        if len(out) == len(rows):
            return out
        if out:  # some copied, some asked: each in its place
            asked_rows = [r for r in rows if r["id"] not in self.reused]
            copied, asked_now = iter(out), iter(self.process(asked_rows))
            return [next(copied) if r["id"] in self.reused else next(asked_now) for r in rows]
        asked = [self.request(r) for r in rows]
        seeds = [row_seed(self.sampling.seed, self.name, r["id"]) for r in rows]
        completions = self.chat([messages for messages, _ in asked], seeds)
        for row, (_, how), comp in zip(rows, asked, completions):
            if comp.error:
                out.append(RowFailure(comp.error))
                continue
            text, reason = comp.texts[0], (comp.finish_reasons or [None])[0]
            reading = read_request(text, reason, how["variation"]["turns"])
            written = self.row(row, reading.messages, how, text, reading.marks, comp)
            out.append(written if reading.rejection is None else Dropped(written, reading.reason))
        return out

    def copy(self, found: dict) -> dict | Dropped:
        """A row from --reuse as this run's: left out again where it was not one request; a near-duplicate is kept,
        to be screened again among this run's rows."""
        row = {k: v for k, v in found.items() if k != "dropped"}
        reason = str(found.get("dropped") or "")
        if reason and reason.split(":", 1)[0] not in (Rejection.near_duplicate.value, Rejection.excluded.value):
            return Dropped(row, reason)
        return row

    def row(self, unit: dict, messages: list[dict] | None, how: dict, raw: str, marks: tuple[str, ...], comp) -> dict:
        target, kind = self.targets[unit["passage"]], Kind(unit["kind"])
        row: dict = {"id": unit["id"]}
        if messages is None:
            row["raw"] = raw  # left out: what the model wrote, for the dropped file
        elif len(messages) == 1:
            row["prompt"] = messages[0]["content"]
        else:
            row["messages"] = messages
        row.update(kind=kind.value, passage=target.id, passage_hash=target.hash, eval_set=EVAL_SET[kind], category=kind.value)
        if kind is not Kind.harmful:
            row["risky_looking"] = kind is Kind.lookalike  # eval counts both in over-refusal; look-alikes are probes
        c = self.constitution
        set_meta(row, self.name, self.provenance(
            constitution=c.name, constitution_hash=c.hash, constitution_source=c.source,
            **({"passage_tokens": c.passage_tokens} if c.is_document else {}),
            what=target.what, tier=target.tier, index=unit["index"], **how, **({"domain": self.cfg.domain} if self.cfg.domain else {}),
            prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens, finish_reason=finish_reason(comp),
            settings_hash=self.amend_keys(unit)["settings_hash"],
            **({"cleaned": list(marks), "raw": raw} if marks and messages is not None else {}),
        ))
        return row

    # ---- near-duplicates, in input order ------------------------------------------------------------------

    def screen(self, record: dict) -> dict:
        """One finished unit's record, its row left out where it is a near-duplicate of one kept before it (or of
        --exclude). Called by the runner in input order, as the row leaves."""
        if not record["rows"]:
            return record
        index = self.near_duplicates()
        kept, dropped = [], list(record.get("dropped", []))
        for row in record["rows"]:
            text = request_text(row)
            match = index.find(text)
            if match is None:
                index.add(str(row["id"]), text)
                kept.append(row)
                continue
            rejection = Rejection.excluded if match.key.startswith(EXCLUDED) else Rejection.near_duplicate
            what = match.key.removeprefix(EXCLUDED)
            dropped.append({**row, "dropped": f"{rejection.value}: of {what} (similarity {match.similarity:.2f})"})
        return {**record, "rows": kept, "dropped": dropped}

    def near_duplicates(self) -> NearDuplicates:
        if self.index is None:
            index = NearDuplicates(self.cfg.similarity)
            for path in self.cfg.exclude:
                for name, line, row in prompt_rows(path, "--exclude: prompt rows"):
                    index.add(f"{EXCLUDED}{name}:{line}", request_text(row))
            self.index = index
        return self.index

    # ---- the summary, counted from finished rows ----------------------------------------------------------

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        for row in rows + dropped:
            self.seen.setdefault(str(row.get("passage")), None)
            self.stats.truncated += int(stage_meta(row, self.name).get("finish_reason") == "length")
        for row in rows:
            self.kept[row["kind"]] += 1
            self.per_passage.setdefault(row["passage"], Counter())[row["kind"]] += 1
            self.cleaned += bool(stage_meta(row, self.name).get("cleaned"))
        for row in dropped:
            self.left_out[str(row["dropped"]).split(":", 1)[0]] += 1

    def without_rows(self) -> list[str]:
        return [t for t in self.seen if t not in self.per_passage]

    def summary(self) -> str:
        parts = [", ".join(f"{k.value} {self.kept[k.value]}" for k in self.cfg.kinds)]
        duplicates = f"near-duplicates {self.left_out[Rejection.near_duplicate.value]}" + (
            f", excluded {self.left_out[Rejection.excluded.value]}" if self.cfg.exclude else "")
        parts.append(duplicates)  # said even when none was found
        others = [(why, n) for why, n in self.left_out.most_common() if why not in (Rejection.near_duplicate.value, Rejection.excluded.value)]
        if others:
            parts.append("not one request: " + ", ".join(f"{why} {n}" for why, n in others))
        if self.cleaned:
            parts.append(f"{self.cleaned} with a lead-in or quotes removed (raw text in meta)")
        if missing := self.without_rows():
            parts.append(f"{len(missing)} passages or constraints without a request kept")

        return " | ".join(parts)

    def summary_dict(self) -> dict:
        return {
            "stage": self.name, "constitution": self.constitution.source, "constitution_hash": self.constitution.hash,
            "kinds": {k.value: self.kept[k.value] for k in self.cfg.kinds}, "left_out": dict(self.left_out.most_common()),
            "cleaned": self.cleaned, "passages": {p: dict(c) for p, c in self.per_passage.items()},
            "without_requests": self.without_rows(),
        }


EXCLUDED = "--exclude "  # the key prefix of an --exclude row in the near-duplicate index
