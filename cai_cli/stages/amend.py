"""`--amend PREVIOUS`: rerun critique, revise or label-prefs under a changed constitution, recomputing only the rows
the change touches and copying the rest from PREVIOUS (this stage's earlier output).

One rule in every stage: a row records the hash of exactly what each model was shown of the constitution, and is
recomputed exactly when that changed. Every row of these stages records what it was made from: meta.<stage>.input_hash
(the input row, `meta` left out), meta.<stage>.settings_hash (the model, engine, sampling and the stage's options),
meta.<stage>.constitution_hash, and the hash of what each model saw:
- critique: the critique request (the passage it quotes whole, or a hard constraint with the passage stating it),
  `principle_hash`; the round's `tier` and `when` (they route it); what the gate asked of each constraint
  (`gate.hashes`: the constraint and its stating passage);
- revise: the revision request, `revision_hash` (the critique it answers is in its input row: an upstream change
  reaches it as a changed input);
- label-prefs (and the judge's rewards): each question as the judge was shown it, with the passage it quoted
  (`preference.used.questions`), the constraints as the gate asked them, the tiers' order (`preference.used`).
An edit to a part of a section no model was shown (another passage of it) touches no row. For each input row,
Amending finds the PREVIOUS rows made from the same input with the same settings and copies them when nothing they
were shown changed; it recomputes the row otherwise, or when no such PREVIOUS row exists. Each row out is marked in
meta.<stage>.amend: {"action": "copied", "made_under": the constitution hash it was made under, "why": ...} or
{"action": "recomputed", "reason": why}. Units added to the constitution touch no earlier row, except hard
constraints: the gate checks every answer against every constraint, so a row whose gate did not check a new one is
recomputed. Routing is not redone for rows whose principle is unchanged.

Amending wraps a stage and is itself a stage (the runner's Stage protocol), so resume, the side file, --limit,
--shard and the summary line work as for any run; its engine starts only when some row needs recomputing.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..constitution import Constitution
from ..constitution.requests import round_principle
from ..errors import CaiError, ConstitutionError, RowFailure
from ..jsonl import read_lines
from ..rows import row_digest, stable_hash, stage_meta
from ..runner import Dropped, Outcome
from .base import Stage


def dropped_path(output: Path) -> Path:
    return output.with_name(output.name + ".dropped.jsonl")


def _changed_hashes(kind: str, recorded: dict, current: dict) -> str | None:
    """Why RECORDED (id -> hash, what a row used) no longer holds in CURRENT, or None."""
    for uid, digest in recorded.items():
        if uid not in current:
            return f"{kind} '{uid}' was removed"
        if current[uid] != digest:
            return f"{kind} '{uid}' changed"
    return None


def constraints_changed(recorded: dict, constitution: Constitution) -> str | None:
    """Why what the gate asked (RECORDED: constraint id -> hash of its question's constitution text) no longer holds."""
    from ..judge.gate import constraint_hashes

    current = constraint_hashes(constitution)
    why = _changed_hashes("hard constraint", recorded, current)
    if why is None and set(current) - set(recorded):
        why = f"hard constraint '{sorted(set(current) - set(recorded))[0]}' was added (the gate checks every answer against every constraint)"
    return why


def round_changed(last: dict, constitution: Constitution, stage: str) -> str | None:
    """Why a critique/revise round no longer holds under CONSTITUTION: what its model was shown changed (critique: the
    critique request and what its gate asked; revise: the revision request), or its principle was removed or now routes
    otherwise (tier, `when`)."""
    pid = last.get("principle")
    if not isinstance(pid, str):
        return "the round records no principle"
    try:
        principle = round_principle(constitution, last)
    except ConstitutionError:
        return f"principle '{pid}' was removed"
    shown = "passage" if principle.passage is not None and principle.passage == pid else "principle"
    if stage == "revise":
        if principle.revision_hash != last.get("revision_hash"):
            return f"the revision request of {shown} '{pid}' changed" if "revision_hash" in last else "the round records no revision_hash (made by an older cai)"
        return None
    if principle.critique_hash != last.get("principle_hash"):
        return f"{shown} '{pid}' changed"
    if principle.tier != last.get("tier"):
        return f"the tier of '{pid}' changed ({last.get('tier')} -> {principle.tier})"
    if "when" in last and principle.when != last.get("when"):
        return f"the `when` of '{pid}' changed ({last.get('when')} -> {principle.when})"
    if isinstance(last.get("behaviours"), dict):
        from ..constitution.behaviours import note_hash

        if note_hash(constitution, last["behaviours"]) != last.get("behaviours_hash"):
            return "the instructable behaviours the critic was told of changed"
    gate = last.get("gate")
    return constraints_changed(gate.get("hashes", {}) if isinstance(gate, dict) else {}, constitution)


def label_changed(pref: dict, constitution: Constitution) -> str | None:
    """Why a label no longer holds: a question as the judge was shown it (with the passage it quoted) changed, the
    constraints changed, or the tiers' order did. A label that used no constitution (revision-wins, identical
    responses) always holds."""
    from ..judge.tiers import shown_questions

    used = pref.get("used")
    if not isinstance(used, dict):
        return None
    if "questions" not in used:
        return "the label records no question hashes (made by an older cai)"
    states = pref.get("behaviours") if isinstance(pref.get("behaviours"), dict) else None
    why = _changed_hashes("question", used["questions"], shown_questions(constitution, used, states))
    why = why or constraints_changed(used.get("constraints", {}), constitution)
    if why is None and list(used.get("priorities", [])) != list(constitution.priorities):
        why = f"the priority tiers changed ({', '.join(used.get('priorities', [])) or 'none'} -> {', '.join(constitution.priorities) or 'none'})"
    return why


def touched(row: dict, stage: str, constitution: Constitution) -> str | None:
    """Why a row of STAGE's output must be recomputed under CONSTITUTION (None: it still holds)."""
    if stage == "label-prefs":
        pref = row.get("preference")
        return label_changed(pref, constitution) if isinstance(pref, dict) else None
    rounds = row.get("rounds")
    if not isinstance(rounds, list) or not rounds or not isinstance(rounds[-1], dict):
        return "the row records no round"
    return round_changed(rounds[-1], constitution, stage)


class Amending(Stage):
    """STAGE run with --amend PREVIOUS (see the module docstring). STAGE has `constitution`, `settings_hash()`, and
    writes meta.<name>.input_hash / settings_hash / constitution_hash on every row."""

    def __init__(self, stage, previous: str):
        super().__init__()
        self.inner = stage
        self.name = stage.name
        self.stats = stage.stats
        self.tallies = stage.tallies
        self.writes_summary = stage.writes_summary  # label-prefs' OUT.summary.json, with the amend's counts
        self.engine_opts = stage.engine_opts
        self.constitution: Constitution = stage.constitution
        self.previous = Path(previous)
        self.settings_hash = stage.settings_hash()
        self.index: dict[str, tuple[list[dict], list[dict]]] = {}
        self.unmatched = 0  # PREVIOUS rows that record no input digest (made by an older cai, or another stage)
        self.copied = 0
        self.recomputed: Counter = Counter()
        self.made_under: Counter = Counter()
        self.copied_because: Counter = Counter()
        self._started = False
        self._load()

    # ------------------------------------------------------------------ PREVIOUS

    def _load(self) -> None:
        if not self.previous.is_file():
            raise CaiError(f"--amend {self.previous}: no such file (give the output of an earlier run of `cai {self.name}`)")
        seen: dict[str, set] = {}
        first: dict | None = None
        ours = False  # some row was written by this stage (with or without the digest an amend matches on)
        for path, dropped in ((self.previous, False), (dropped_path(self.previous), True)):
            if not path.is_file():
                continue
            for item in read_lines(str(path)):
                if item.error is not None:
                    raise CaiError(f"--amend: {item.error}")
                assert item.row is not None  # a line without an error has its row
                first = first or item.row
                meta = item.row.get("meta")
                info = meta.get(self.name) if isinstance(meta, dict) else None
                ours = ours or isinstance(info, dict)
                digest = info.get("input_hash") if isinstance(info, dict) else None
                if not isinstance(digest, str):
                    self.unmatched += 1
                    continue
                # Identical input rows (the same id and content) give identical rows: each such input gets one copy.
                key = (dropped, stable_hash(item.row))
                if key in seen.setdefault(digest, set()):
                    continue
                seen[digest].add(key)
                kept, left_out = self.index.setdefault(digest, ([], []))
                (left_out if dropped else kept).append(item.row)
        if not ours:
            from ..filekinds import describe_rows

            what = describe_rows([first] if first is not None else [])
            raise CaiError(f"--amend {self.previous}: {what}, not an earlier output of `cai {self.name}`; give the -o of an earlier "
                           f"`cai {self.name}` run (its rows record meta.{self.name})")
        if not self.index:
            print(f"cai {self.name}: --amend {self.previous}: no row records meta.{self.name}.input_hash (made by an older cai?): every row is recomputed",
                  file=sys.stderr)

    def plan(self, row: dict) -> tuple[list[dict], list[dict]] | str:
        """The PREVIOUS rows (kept, dropped) to copy for this input row, or why it is recomputed."""
        found = self.index.get(row_digest(row))
        if found is None:
            return "input changed (no row of the previous output was made from this input)"
        kept, left_out = found
        for prev in kept + left_out:
            info = prev["meta"][self.name]
            if info.get("settings_hash") != self.settings_hash:
                return "made with other settings (model, engine, sampling or the stage's options)"
            why = touched(prev, self.name, self.constitution)
            if why is not None:
                return why
        return kept, left_out

    # ------------------------------------------------------------------ the Stage protocol

    def fingerprint(self) -> dict:
        from ..resume import file_identity

        return {**self.inner.fingerprint(), "amend": {"previous": str(self.previous.resolve()), "file": file_identity(self.previous)}}

    def check(self, row: dict) -> None:
        self.inner.check(row)

    def input_files(self) -> dict[str, str]:
        """The inner stage's files, and PREVIOUS: no output of this run may overwrite what it copies from."""
        return {**self.inner.input_files(), "--amend": str(self.previous)}

    def start(self) -> None:
        """Nothing yet: the engine starts with the first row to recompute."""

    def _start(self) -> None:
        if not self._started:
            self.inner.start()
            self._started = True

    def check_loaded(self, row: dict) -> None:
        if isinstance(self.plan(row), str):
            self._start()
            self.inner.check_loaded(row)

    def process(self, rows: list[dict]) -> list[Outcome]:
        plans = [self.plan(row) for row in rows]
        redo = [i for i, p in enumerate(plans) if isinstance(p, str)]
        done: dict[int, Outcome] = {}
        if redo:
            self._start()
            done = dict(zip(redo, self.inner.process([rows[i] for i in redo])))
        out: list[Outcome] = []
        for i, (row, plan) in enumerate(zip(rows, plans)):
            if isinstance(plan, str):
                outcome = done[i]
                if not isinstance(outcome, RowFailure):
                    self._mark(outcome, {"action": "recomputed", "reason": plan, "previous": str(self.previous)})
                out.append(outcome)
            else:
                out.append(self._copy(row, *plan))
        return out

    def _copy(self, row: dict, kept: list[dict], left_out: list[dict]) -> list:
        """The PREVIOUS rows for ROW, with the input's own provenance of earlier stages and this stage's marked."""
        under = next((r["meta"][self.name].get("constitution_hash") for r in kept + left_out), None)
        mark = {"action": "copied", "made_under": under, "why": self._why_kept(under, kept + left_out), "previous": str(self.previous)}
        found = row.get("meta")
        upstream: dict = found if isinstance(found, dict) else {}
        out: list = []
        for prev in kept:
            out.append(self._with_meta(prev, upstream, mark))
        for prev in left_out:
            copied = self._with_meta(prev, upstream, mark)
            out.append(Dropped({k: v for k, v in copied.items() if k != "dropped"}, str(prev.get("dropped", "dropped"))))
        return out

    def _why_kept(self, under: str | None, rows: list[dict]) -> str:
        """Why a copy holds: made under this very constitution, or nothing its models were shown changed."""
        if under == self.constitution.hash:
            return "made under this constitution"
        shown: list[str] = []
        for row in rows:
            if self.name == "label-prefs":
                used = (row.get("preference") or {}).get("used") or {}
                shown += [f"question {q}" for q in used.get("questions", {})]
            else:
                last = (row.get("rounds") or [{}])[-1]
                shown.append(f"{'passage' if 'passage' in last else 'principle'} '{last.get('principle')}'")
        what = ", ".join(dict.fromkeys(shown)) or "no part of the constitution"
        return f"unchanged: what its model was shown ({what})"

    def _with_meta(self, prev: dict, upstream: dict, mark: dict) -> dict:
        meta = {**upstream, self.name: {**prev["meta"][self.name], "amend": mark}}
        return {**prev, "meta": meta}

    def _mark(self, outcome: Any, mark: dict) -> None:
        for item in outcome if isinstance(outcome, list) else [outcome]:
            target = item.row if isinstance(item, Dropped) else item
            if isinstance(target, dict) and isinstance(target.get("meta"), dict) and isinstance(target["meta"].get(self.name), dict):
                target["meta"][self.name]["amend"] = mark

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        """One finished input row, as the runner counts it (so a resumed run's counts equal an uninterrupted run's):
        copied or recomputed, read from the mark on its rows; then the inner stage's own counts."""
        mark = next((m for r in [*rows, *dropped] if isinstance(m := stage_meta(r, self.name).get("amend"), dict)), None)
        if mark is not None and mark.get("action") == "copied":
            self.copied += 1
            self.made_under[str(mark.get("made_under"))] += 1
            self.copied_because["made under this constitution" if str(mark.get("why", "")).startswith("made under")
                                else "what its model was shown is unchanged"] += 1
        elif mark is not None:
            self.recomputed[_kind(str(mark.get("reason", "")))] += 1
        self.inner.recount(rows, dropped, tallies)

    def summary_dict(self) -> dict:
        return {**self.inner.summary_dict(), "amend": self.counts()}

    def counts(self) -> dict:
        return {"previous": str(self.previous), "copied": self.copied, "recomputed": sum(self.recomputed.values()),
                "copied_because": dict(self.copied_because), "recomputed_because": dict(self.recomputed),
                "copied_made_under": dict(self.made_under)}

    def summary(self) -> str:
        inner = self.inner.summary()
        under = ", ".join(self.made_under)
        why = "; ".join(f"{n} {k}" for k, n in self.copied_because.most_common())
        line = (f"amended from {self.previous}: {self.copied} rows copied{f' ({why}; made under {under})' if under else ''}, "
                f"{sum(self.recomputed.values())} recomputed")
        if self.recomputed:
            line += f" ({', '.join(f'{n} {k}' for k, n in self.recomputed.most_common())})"
        return f"{inner} | {line}" if inner else line


def _kind(reason: str) -> str:
    if reason.startswith("input changed"):
        return "input changed"
    if reason.startswith("made with other settings"):
        return "other settings"
    return "constitution changed"
