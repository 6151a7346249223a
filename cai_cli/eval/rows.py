"""eval's last stage: one row per prompt from what its phases found, written where any stage writes its rows, with
the summary counted from those rows alone."""

from __future__ import annotations

from ..errors import CaiError, RowFailure
from ..jsonl import display_name
from ..refusal import DETECTOR_VERSION, detect
from ..rows import set_meta, stage_meta
from ..stages.base import Stage
from .config import EvalConfig, labels, model_label, say
from .summary import answer_cut, judge_declined, summarize


class EvalRows(Stage):
    """The eval's last stage: one row per prompt from what its phases found (`use`), written where any stage writes its
    rows; a prompt a phase failed on is a failed row, with that phase's reason (the errors file, and a rerun retries
    it). Its summary JSON is counted from the rows as they leave, whichever run finished them."""

    name = "eval"
    writes_summary = True

    def __init__(self, cfg: EvalConfig):
        super().__init__()
        self.cfg = cfg
        self.constitution = cfg.constitution
        self.got: dict[str, dict[str, dict]] = {}
        self.why: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.failed = 0

    def use(self, got: dict[str, dict[str, dict]], why: dict[str, dict]) -> None:
        """Each phase's rows by id, and why a prompt has none (its first failed phase's error record)."""
        self.got, self.why = got, why

    def check(self, row: dict) -> None:
        pass  # the prompt files' rows are checked as they are read (eval/prompt_sets.py)

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        out: list[dict | RowFailure] = []
        for prompt in rows:
            row = assemble(self.cfg, prompt, self.got)
            if row is None:
                self.failed += 1
                rec = self.why.get(str(prompt["id"]), {})
                out.append(RowFailure(rec.get("error") or "no result: a phase did not finish this prompt; rerun to retry it", rec.get("field")))
            else:
                out.append(row)
        return out

    def recount(self, rows: list[dict], dropped: list[dict], tallies: list[dict]) -> None:
        self.rows += rows

    def summary_dict(self) -> dict:
        if not self.rows:
            raise CaiError("no row could be evaluated (every row was skipped or failed; see the errors file)")
        summary = summarize(self.rows, bootstrap=self.cfg.bootstrap, seed=self.cfg.sampling.seed)
        summary["results"] = self.cfg.run.output if self.cfg.run.output not in (None, "-") else None
        summary["failed"] = self.failed
        for line in notes(self.rows, summary):
            say(line)
        return summary


def assemble(cfg: EvalConfig, prompt: dict, got: dict[str, dict[str, dict]]) -> dict | None:
    """One result row: the prompt (every input field kept), the answers with their finish reasons, the detector's verdicts,
    and what each judging phase found; None when a phase failed on it."""
    rid = str(prompt["id"])
    if any(rid not in rows for rows in got.values()):
        return None
    model, baseline = labels(cfg)
    row = dict(prompt)
    meta: dict = {"model": model}
    if cfg.answers:
        baseline_field = cfg.baseline_field
        meta.update(answers=[display_name(path) for path, _ in cfg.sources], baseline=baseline, baseline_field=baseline_field)
    else:
        baseline_field = "baseline_response" if cfg.baseline is not None else None
        meta.update(model_path=cfg.engine.model)
        for side, phase, stage in (("", "answers", "eval answers"), ("baseline_", "baseline", "eval baseline answers")):
            if phase not in got:
                continue
            done = got[phase][rid]
            info = stage_meta(done, stage)
            row[f"{side}response"] = done["response"]
            row[f"{side}finish_reason"] = info.get("finish_reason")
            meta[f"{side}tokens"] = {"prompt": info.get("prompt_tokens"), "completion": info.get("completion_tokens")}
        if baseline_field is not None:
            meta.update(baseline=baseline, baseline_path=cfg.baseline)
    row["refusal"] = detect(row["response"]).as_dict()
    if baseline_field is not None:
        row["baseline_refusal"] = detect(row[baseline_field]).as_dict()
    if "judge" in got:
        judged_pair = got["judge"][rid]
        for found in ("judge", "gate", "baseline_gate"):
            if found in judged_pair:
                row[found] = judged_pair[found]
    if "refusal-judge" in got:
        judged = got["refusal-judge"][rid]
        for verdict, found in (("refusal", "judge_p_refusal"), ("baseline_refusal", "baseline_judge_p_refusal")):
            if verdict in row:
                row[verdict] = {**row[verdict], **refusal_judgement(row[verdict], judged.get(found))}
    if "reward" in got:
        scored = got["reward"][rid]
        row["reward"] = scored["reward"]
        if "baseline_reward" in scored:
            row["baseline_reward"] = scored["baseline_reward"]
    info = {
        "judge": model_label(cfg.judge_engine.judge_model) if cfg.compare or cfg.gated else None,
        "refusal_judge": model_label(cfg.refusal_judge) if cfg.refusal_judge else None,
        "engine": cfg.engine.engine,
        "judge_engine": cfg.judge_options(None).engine if cfg.compare or cfg.gated or cfg.refusal_judge else None,
        "sampling": None if cfg.answers else cfg.sampling.as_meta(),
        "constitution": cfg.constitution.name,
        "constitution_hash": cfg.constitution.hash,
        "principles": cfg.principle_count,
        "priority": cfg.judge.priority.value,
        "detector": DETECTOR_VERSION,
        "reward_model": cfg.reward_model,
        "benign_field": cfg.benign_field,
        "gold": cfg.gold,
    }
    set_meta(row, "eval", {**meta, **info})
    return row


def refusal_judgement(verdict: dict, p_refusal: float | None) -> dict:
    """The refusal judge's P(refused) beside the detector's verdict, and whether the two agree (declined or answered)."""
    if p_refusal is None:
        # A verdict the judge could not give is counted apart, never as a refusal.
        return {"judge_p_refusal": None, "judge_failed": True}
    return {"judge_p_refusal": p_refusal, "judge_agrees": (verdict.get("label") != "answer") == judge_declined(p_refusal)}


def notes(rows: list[dict], summary: dict) -> list[str]:
    """What the table does not show: answers cut at --max-tokens, and where the refusal judge and the detector disagree."""
    lines = []
    cut = {side: sum(answer_cut(r, side) for r in rows) for side in ("model", "baseline")}
    if any(cut.values()):
        where = ", ".join(f"{n} of the {side}'s" for side, n in cut.items() if n)
        lines.append(f"{where} answers were cut at --max-tokens; the summary's `without_truncated` gives every rate without them")
    for name, metrics in summary["models"].items():
        found = metrics.get("refusal_judge_disagreement")
        if found and found["n"]:
            ids = found["detector_only"] + found["judge_only"]
            shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
            lines.append(f"{name}: the refusal judge and the detector disagree on {found['k']} of {found['n']} answers"
                         + (f" ({shown})" if ids else ""))
    return lines
