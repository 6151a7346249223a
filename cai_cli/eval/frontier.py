"""eval over checkpoints: the harm / over-refusal frontier of a training run (or of several models), the trade a run
made, point by point, so a user can pick the checkpoint to keep.

`cai eval --checkpoints DIR -p harmful.jsonl --benign benign.jsonl -o OUT.jsonl` runs one ordinary eval (eval/run.py)
per point, each into `OUT.<label>.jsonl` with its summary (`cai report` reads them like any eval result), then writes
OUT: one row per point, in order, with
- `harmfulness`: red-team prompts the model answered, neither refusing nor deflecting (1 − the refusal detector's
  refusal, partial and deflection rates), with its Wilson 95% interval;
- `harm_judged`, where the constitution has hard constraints: red-team answers the gate judged to cross one;
- `over_refusal`: benign prompts declined (the detector's refusal, partial or deflection), Wilson 95%;
and OUT.summary.json (kind `cai-eval-frontier`), which `cai report` draws as the frontier: over-refusal across,
harmfulness up, the points joined in order.

Points: a training folder (its record, cai-train.json) gives its starting model (`base`, step 0), each complete
checkpoint in DIR/checkpoints in step order (`step-N`), then its final model (`final`, in place of the last checkpoint
where they are the same step). A LoRA checkpoint is merged onto the starting model first, into OUT.frontier/ (kept
until the frontier is done, so a rerun finds the same model and resumes). Anything else (a model folder, a hub id,
`embedded`) is one point. Several --checkpoints are joined in the order given. A point whose results are there from
an earlier run of the same settings is read, not evaluated again. Keep the checkpoints you want drawn: trl keeps the
last two every 500 steps unless `--config` says otherwise (`save_steps: 50`, `save_total_limit: null`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CaiError
from ..filekinds import EVAL_FRONTIER
from ..stats import proportion
from .config import say

FRONTIER_META = "eval-frontier"  # meta.<this> of each frontier row


@dataclass(frozen=True)
class Point:
    """One point of the frontier: its LABEL, the training STEP (None: a model, no step), the MODEL to evaluate, or a
    LoRA ADAPTER (a checkpoint) to merge onto BASE first."""

    label: str
    step: int | None
    model: str | None
    adapter: Path | None = None
    base: str | None = None


def _base_of(record: dict) -> str | None:
    """The model a training folder started from (None: the embedded model)."""
    found = (record.get("fingerprint") or {}).get("model") or {}
    if str(found.get("name", "")).startswith("embedded:"):
        return None
    return found.get("path") or record.get("base_model")


def points_of(spec: str, prefix: bool = False) -> list[Point]:
    """The points SPEC stands for (the module docstring); PREFIX: label them with the folder's name."""
    from ..train.record import CHECKPOINTS, checkpoint_step, read_record
    from .config import model_label

    path = Path(spec).expanduser()
    record = read_record(path) if path.is_dir() else None
    if record is None:
        return [Point(model_label(spec), None, spec)]
    name = f"{path.name}@" if prefix else ""
    base = _base_of(record)
    points = [Point(f"{name}base", 0, base)]
    found = []
    folder = path / CHECKPOINTS
    for ck in folder.iterdir() if folder.is_dir() else []:
        step = checkpoint_step(ck) if ck.is_dir() and ck.name.startswith("checkpoint-") else None
        if step is not None and ck.name == f"checkpoint-{step}":
            found.append((step, ck))
    final = record.get("steps") if record.get("state") == "done" else None
    for step, ck in sorted(found):
        if step == final:
            continue
        if (ck / "adapter_config.json").exists():
            points.append(Point(f"{name}step-{step}", step, None, adapter=ck, base=base))
        else:
            points.append(Point(f"{name}step-{step}", step, str(ck)))
    if final is not None:
        points.append(Point(f"{name}final", int(final), str(path)))
    if len(points) == 1:
        raise CaiError(f"--checkpoints {spec}: a training folder with no checkpoint and no final model yet: nothing to draw beyond its starting model")
    return points


def frontier_point(summary: dict, rows: list[dict]) -> dict:
    """Harmfulness, harm judged by the gate and over-refusal of one eval (its summary and rows), with intervals."""
    model = summary["models"][summary["model"]]
    red, benign = model.get("red_team_n") or 0, model.get("benign_n") or 0
    declined = sum((model.get(k) or {}).get("k") or 0 for k in ("refusal_rate", "partial_rate", "deflection_rate"))
    out: dict = {"red_team_n": red, "benign_n": benign, "harmfulness": proportion(red - declined, red),
                 "over_refusal": model.get("benign_refusal_rate") or proportion(0, 0)}
    gated = [r["gate"] for r in rows if r.get("eval_set") == "red_team" and isinstance(r.get("gate"), dict)]
    if gated:
        out["harm_judged"] = proportion(sum(1 for g in gated if g.get("crossed")), len(gated))
    return out


def _rows_of(path: Path) -> list[dict]:
    from ..jsonl import read_rows

    return read_rows(str(path))


def _finished(out: Path, cfg, point_label: str, model: str | None, prompts: int) -> dict | None:
    """The summary of a point an earlier run finished with these settings (None: evaluate it)."""
    import json

    from ..output.plan import summary_path
    from ..rows import stage_meta

    summary_file = summary_path(out)
    if not (out.is_file() and summary_file.is_file()):
        return None
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        rows = _rows_of(out)
    except (OSError, ValueError, CaiError):
        return None
    info = stage_meta(rows[0], "eval") if rows else {}
    same = (summary.get("model") == point_label and info.get("model_path") == model and info.get("constitution_hash") == cfg.constitution.hash
            and info.get("sampling") == cfg.sampling.as_meta() and len(rows) == prompts)
    return summary if same else None


def prompt_counts(cfg) -> dict[str, int]:
    """Red-team and benign prompts the run takes (--limit from each file), and about how many tokens they hold, read
    once before any model loads; bad rows stop here, naming file, line and field, as every phase would."""
    from ..constitution.passages import estimate_tokens
    from ..jsonl import open_input
    from ..rows import conversation
    from .prompt_sets import prompt_inputs

    specs = prompt_inputs(cfg.sources, cfg.benign_field, False, None, None, cfg.suite)
    counts = {"red_team": 0, "benign": 0, "tokens": 0}
    source = open_input(None, specs)
    taken: dict[int, int] = {}
    try:
        for item in source.lines():
            if item is None:
                continue
            if item.error is not None:
                raise item.error
            if cfg.run.limit is not None and taken.get(item.part, 0) >= cfg.run.limit:
                continue
            taken[item.part] = taken.get(item.part, 0) + 1
            assert item.row is not None
            counts[item.row["eval_set"]] += 1
            counts["tokens"] += sum(estimate_tokens(m["content"]) for m in conversation(item.row))
    finally:
        source.close()
    return counts


def run_frontier(cfg, specs: list[str]) -> dict:
    """Every point of SPECS evaluated in order (the module docstring); the frontier's summary."""
    from ..output import Outputs, make_folder, remove, remove_empty_folder, write_rows, write_summary
    from ..train.run import merge_adapter
    from .run import run_eval

    if any(path in (None, "-") for path, _ in cfg.sources):
        raise CaiError("--checkpoints evaluates every point on the same prompt files: give them with --prompts / --benign, not stdin")
    out_opt = cfg.run.output
    if out_opt in (None, "-"):
        raise CaiError("--checkpoints writes one result per point beside -o OUT.jsonl, and the frontier to OUT: give -o")
    outputs = Outputs.plan(out_opt, None, None, summary=True)
    if outputs.out is None:
        raise CaiError(f"-o {out_opt}: --checkpoints writes files beside it; name a regular file")
    out = outputs.out
    outputs.check([("an input", path) for path, _ in cfg.sources])
    points = [p for spec in specs for p in points_of(spec, prefix=len(specs) > 1)]
    labels = [p.label for p in points]
    if len(set(labels)) != len(labels):
        raise CaiError(f"--checkpoints: two points share a name ({', '.join(sorted({x for x in labels if labels.count(x) > 1}))}): give each model once")
    counts = prompt_counts(cfg)
    if not counts["red_team"] or not counts["benign"]:
        raise CaiError(f"--checkpoints draws harm against over-refusal: it needs red-team prompts ({counts['red_team']}) and benign ones "
                       f"({counts['benign']}); add --prompts / --benign")
    per_point = counts["red_team"] + counts["benign"]
    gate_calls = 2 * len(cfg.constitution.hard_constraints) * per_point
    say(f"the frontier: {len(points)} points ({', '.join(labels)}) x {per_point} prompts ({counts['red_team']} red-team, {counts['benign']} benign): "
         f"{len(points) * per_point} answers of up to {cfg.sampling.max_tokens} tokens to about {len(points) * counts['tokens']:,} prompt tokens"
         + (f", {len(points) * gate_calls} hard-constraint judge calls" if gate_calls else "")
         + f"; {sum(1 for p in points if p.adapter is not None)} LoRA checkpoints merged first")
    stem = out.name.removesuffix(".jsonl")
    merged_dir = out.with_name(f"{stem}.frontier")
    found: list[dict] = []
    for n, point in enumerate(points, 1):
        result = out.with_name(f"{stem}.{point.label.replace('/', '_')}.jsonl")
        model = point.model
        if point.adapter is not None:
            model = str(merged_dir / point.label.replace("/", "_"))
            if not (Path(model) / "config.json").exists():
                say(f"point {n}/{len(points)} {point.label}: merging the LoRA checkpoint {point.adapter} onto {point.base or 'the embedded model'}")
                from ..model_specs import resolve_model

                make_folder(merged_dir)
                merge_adapter(point.adapter, resolve_model(point.base), "causal", Path(model))
        summary = _finished(result, cfg, point.label, model, per_point)
        if summary is not None:
            say(f"point {n}/{len(points)} {point.label}: results from an earlier run ({result})")
        else:
            say(f"point {n}/{len(points)} {point.label}: evaluating {model or 'the embedded model'}")
            summary = run_eval(replace(cfg, engine=replace(cfg.engine, model=model), name=point.label, summary=None,
                                       run=replace(cfg.run, output=str(result))))
        metrics = frontier_point(summary, _rows_of(result))
        found.append({"id": point.label, "checkpoint": point.label, "step": point.step, "model": str(point.adapter or model or "embedded"),
                      "results": str(result), **metrics, "meta": {FRONTIER_META: {"constitution": cfg.constitution.name,
                                                                                  "constitution_hash": cfg.constitution.hash}}})
    frontier = {"kind": EVAL_FRONTIER, "points": [{k: v for k, v in p.items() if k != "meta"} for p in found],
                "constitution": cfg.constitution.name, "prompts": {k: counts[k] for k in ("red_team", "benign")}, "sampling": cfg.sampling.as_meta()}
    write_rows(out, found)
    assert outputs.summary is not None
    write_summary(outputs.summary, frontier)
    if merged_dir.is_dir():
        for child in merged_dir.iterdir():
            remove(child)
        remove_empty_folder(merged_dir)
    print_frontier(frontier)
    say(f"{len(found)} points -> {out}, frontier -> {outputs.summary} (`cai report {outputs.summary} -o frontier.png` draws it)")
    return frontier


def _cell(stat: dict | None) -> str:
    if not stat or stat.get("value") is None:
        return "n/a"
    return f"{stat['value']:.2f} ({stat['ci'][0]:.2f}-{stat['ci'][1]:.2f})"


def print_frontier(frontier: dict) -> None:
    """The frontier as a table on stderr (stdout may carry nothing here, but the eval's rows go to files)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Harm / over-refusal frontier (95% Wilson intervals)", title_justify="left")
    judged = any("harm_judged" in p for p in frontier["points"])
    for col in ("point", "step", "harmfulness", *(["harm judged (gate)"] if judged else []), "over-refusal"):
        table.add_column(col)
    for p in frontier["points"]:
        table.add_row(p["checkpoint"], "" if p["step"] is None else str(p["step"]), _cell(p["harmfulness"]),
                      *([_cell(p.get("harm_judged"))] if judged else []), _cell(p["over_refusal"]))
    Console(file=sys.stderr).print(table)
