"""revise: the model rewrites its response to answer the last round's critique; the revision becomes `response`.

As in the method, every round writes the model's revision: `changed` says whether its text differs
from the response it revises. With --skip-unchanged the model itself is first asked, yes or no in
both phrasings, whether the critique asks for any change; where P(change) is below --skip-threshold
the response is kept, and the round records the probability (`skip_check`). No wording of the
critique is pattern-matched: "No, the response is harmful" must never keep a harmful answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..constitution import Constitution, FewShotExample
from ..constitution.requests import has_principle, round_principle
from ..errors import RowFailure
from ..rows import (
    REVISION_FINISH,
    FieldProblem,
    check_conversation,
    check_rounds,
    check_string,
    conversation,
    is_cut,
    round_finish_reason,
    row_seed,
    set_meta,
)
from .base import finish_reason
from .critique_prompts import (
    CHANGE_QUESTION,
    NO_CHANGE_QUESTION,
    SKIP_THRESHOLD,
    clean_output,
    revision_messages,
    skip_check_messages,
)
from .few_shot import FewShotStage


class Revise(FewShotStage):
    name = "revise"
    cut_in_rows = True

    def __init__(self, engine_opts, sampling, constitution: Constitution, few_shot: int | None = None,
                 examples: Sequence[FewShotExample] | None = None, examples_source: str | None = None,
                 skip_unchanged: bool = False, skip_threshold: float = SKIP_THRESHOLD):
        super().__init__(engine_opts, sampling, constitution, few_shot, examples, examples_source)
        if not 0.0 <= skip_threshold <= 1.0:
            from ..errors import CaiError

            raise CaiError(f"--skip-threshold: expected a probability between 0 and 1, got {skip_threshold}")
        self.skip_unchanged = skip_unchanged
        self.skip_threshold = skip_threshold
        self.stats.extra = {"revised": 0, "unchanged": 0, "empty": 0}
        if skip_unchanged:
            self.stats.extra["skipped"] = 0

    def cut_texts(self, row: dict) -> int:
        return int(is_cut(round_finish_reason(row, -1, "revision")))  # this round's revision; none where --skip-unchanged kept the response

    def settings(self) -> dict:
        s = super().settings()
        s.update(skip_unchanged=self.skip_unchanged, skip_threshold=self.skip_threshold if self.skip_unchanged else None)
        return s

    def summary(self) -> str:
        e = self.stats.extra
        parts = [f"revised {e['revised']}", f"unchanged {e['unchanged']}"]
        if "skipped" in e:
            parts.append(f"skipped {e['skipped']} (--skip-unchanged)")
        if e["empty"]:
            parts.append(f"{e['empty']} empty revisions kept as written (marked empty_revision)")
        return ", ".join(parts)

    def check(self, row: dict) -> None:
        check_conversation(row)
        check_string(row, "response")
        rounds = check_rounds(row)
        where = f"rounds[{len(rounds) - 1}]" if rounds else "rounds"
        if not rounds or not isinstance(rounds[-1].get("critique"), str):
            raise FieldProblem(where, "no critique to answer; run `cai critique` first")
        if "revision" in rounds[-1]:
            raise FieldProblem(where, "the last round is already revised; run `cai critique` for a new round")
        pid = rounds[-1].get("principle")
        if not isinstance(pid, str) or not has_principle(self.constitution, rounds[-1]):
            raise FieldProblem(f"{where}.principle", f"{pid!r} is not a critique principle of constitution '{self.constitution.name}' (was the critique made with another --constitution?)")

    def _build(self, row: dict):
        last = row["rounds"][-1]
        principle = round_principle(self.constitution, last)
        return lambda examples: revision_messages(
            conversation(row), row["response"], last["critique_request"], last["critique"], principle.revision, examples
        )

    def context_messages(self, row: dict) -> list[dict]:
        build = self._build(row)
        return build(self.examples[: self.fitting(build)])

    def p_change(self, rows: list[dict]) -> list[float | None]:
        """P(the critique asks for a change) per row: the change question and the no-change question, a scored
        yes/no pair (cai_cli.judge.maths.yes_no_pairs), so a constant lean towards "Yes" cancels. None where the
        model gave neither answer any probability."""
        from ..judge.maths import yes_no_pairs

        def ask(row: dict, question: str) -> list[dict]:
            return skip_check_messages(conversation(row), row["response"], row["rounds"][-1]["critique"], question)

        return yes_no_pairs(self.started_engine(), [(ask(row, CHANGE_QUESTION), ask(row, NO_CHANGE_QUESTION)) for row in rows])

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        p_change: list[float | None] = self.p_change(rows) if self.skip_unchanged else [None] * len(rows)
        skipped = [self.skip_unchanged and p is not None and p < self.skip_threshold for p in p_change]
        todo = [i for i in range(len(rows)) if not skipped[i]]
        builds = {i: self._build(rows[i]) for i in todo}
        shown = {i: self.fitting(builds[i]) for i in todo}
        convs = [builds[i](self.examples[: shown[i]]) for i in todo]
        # The seed depends on the row and round alone, so a revision is the same with or without --skip-unchanged.
        seeds = [row_seed(self.sampling.seed, self.name, rows[i]["id"], len(rows[i]["rounds"])) for i in todo]
        completions = dict(zip(todo, self.chat(convs, seeds) if convs else []))

        keys = [self.amend_keys(row) for row in rows]
        out: list[dict | RowFailure] = []
        for i, row in enumerate(rows):
            last = dict(row["rounds"][-1])
            principle = round_principle(self.constitution, last)
            last["revision_request"] = principle.revision
            last["revision_hash"] = principle.revision_hash  # what the reviser was shown of the constitution
            extra: dict = {}
            if skipped[i]:
                last["revision"] = row["response"]
                last["changed"] = False
                self.stats.extra["skipped"] += 1
            else:
                comp = completions[i]
                if comp.error:
                    out.append(RowFailure(comp.error))
                    continue
                raw = comp.texts[0].strip()
                revision = clean_output(raw)
                if revision != raw:
                    last["revision_raw"] = raw  # what clean_output took off stays visible
                if not revision:
                    last["empty_revision"] = True  # kept as written, never replaced by the old response
                    self.stats.extra["empty"] += 1
                last["revision"] = revision
                last[REVISION_FINISH] = finish_reason(comp)  # in the round: the next round's revision must not overwrite it
                last["changed"] = revision != row["response"]
                self.stats.extra["revised" if last["changed"] else "unchanged"] += 1
                extra = self.few_shot_meta(shown[i])
            if self.skip_unchanged:
                p = p_change[i]
                last["skip_check"] = {
                    "p_change": None if p is None else round(p, 6), "threshold": self.skip_threshold, "skipped": bool(skipped[i])
                }
            row["rounds"] = row["rounds"][:-1] + [last]
            row["response"] = last["revision"]
            set_meta(row, self.name, self.provenance(
                constitution=self.constitution.name,
                constitution_hash=self.constitution.hash,
                round=len(row["rounds"]),
                **(extra or {"few_shot": 0}),
                **keys[i],
            ))
            out.append(row)
        return out
