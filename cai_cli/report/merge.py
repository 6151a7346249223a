"""Reading `cai eval` results (rows JSONL or summary JSON) and merging them into one report: each model's
metrics, Bradley–Terry ratings over every file's judged games, each model's paired change against its
baseline, and every prompt's answers side by side.

Each results file compares one model with one baseline. Files are merged by model name: a model
evaluated twice keeps its last file's numbers; a baseline shared by several files is taken from the
first. Bradley–Terry ratings are fitted over every file's judged games together, each connected set of
games on its own (anchored at its baseline when it holds one): files that share no player cannot be
rated on one scale, and a note says so. The judge's calibration against gold answers is gathered from
eval results (`--gold-field`) and from `cai label-prefs --gold-field` summaries, which `cai report` also reads.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CaiError
from ..eval.frontier import FRONTIER_META
from ..filekinds import EVAL_FRONTIER, EVAL_REPORT, LABEL_PREFS_SUMMARY
from ..jsonl import read_rows
from ..stats import DEFAULT_BOOTSTRAP


def load_results(paths: list[str], *, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict:
    """Merge eval results files (rows JSONL, or summary JSON) into one report: models, ratings, notes."""
    from ..eval.summary import comparisons_of, ratings_of, summarize

    if not paths:
        raise CaiError("give at least one results file from `cai eval`")
    _check_paths(paths)
    models: dict[str, dict] = {}
    games: dict[str, list] = {"harmlessness": [], "helpfulness": []}
    baselines: list[str] = []
    stored_ratings: dict = {}
    notes: list[str] = []
    answers: dict[tuple, dict] = {}
    changes: dict[str, dict] = {}
    summaries_only: list[str] = []
    calibration: list[dict] = []
    frontiers: list[dict] = []
    players_of: dict[str, tuple[str, str]] = {}  # rows file -> (model, baseline) of its games
    for path in paths:
        content = _read(path)
        if isinstance(content, dict) and content.get("kind") == LABEL_PREFS_SUMMARY:
            calibration += _label_prefs_calibration(content, path)
            continue
        if isinstance(content, dict) and content.get("kind") == EVAL_FRONTIER:
            from .frontier import frontier_of

            frontiers.append(frontier_of(content, path))
            continue
        if isinstance(content, list):  # eval output rows; a dict is a summary
            summary = summarize(content, bootstrap=bootstrap, seed=seed, source=path)
            for crit, cs in comparisons_of(content).items():
                games[crit] += cs
            _collect_answers(answers, content, summary)
            if summary.get("baseline"):
                changes[summary["model"]] = _changes(content, summary, bootstrap, seed)
                players_of[path] = (summary["model"], summary["baseline"])
        else:
            summary = content
            summaries_only.append(path)
            stored_ratings = summary.get("ratings") or stored_ratings
        calibration += _eval_calibration(summary, path)
        if summary.get("baseline") and summary["baseline"] not in baselines:
            baselines.append(summary["baseline"])
        for label, metrics in summary["models"].items():
            entry = {**metrics, "source": path}
            if label in models and metrics.get("role") == "baseline":
                continue  # keep the first file's baseline, or the model's own entry
            if label in models and models[label].get("role") == "model" and metrics.get("role") == "model":
                notes.append(f"{label} appears in {models[label]['source']} and {path}; showing {path}")
            models[label] = entry
    if any(games.values()):
        ratings = ratings_of(games, baselines, bootstrap, seed)  # each connected set anchored at its own baseline
    else:
        ratings = stored_ratings if len(paths) == 1 else {}
    notes += _ratings_notes(ratings, baselines, players_of, summaries_only)
    return {
        "kind": EVAL_REPORT,
        "files": list(paths),
        "baselines": baselines,
        "models": models,
        "ratings": ratings,
        "changes": changes,
        "notes": notes,
        "answers": list(answers.values()),
        "summary_files": summaries_only,  # they hold no answers to show side by side
        "calibration": calibration,
        "frontiers": frontiers,
    }


def _check_paths(paths: list[str]) -> None:
    """One line for what cannot be a results file at all (a folder), before any file is read."""
    for path in paths:
        if Path(path).is_dir():
            raise CaiError(f"{path}: is a folder; give the results files in it (for example {Path(path) / '*.jsonl'})")


def _label_prefs_calibration(summary: dict, path: str) -> list[dict]:
    """The judge's calibration from a label-prefs summary (`--gold-field`), as one reliability series."""
    gold = summary.get("gold") or {}
    if not gold.get("calibration"):
        raise CaiError(f"{path}: a `cai label-prefs` summary without --gold-field results: the report draws a judge's calibration only against gold labels")
    judge = (summary.get("settings") or {}).get("model") or Path(path).name.removesuffix(".summary.json")
    return [{"label": f"{judge} (label-prefs)", "source": path, "criterion": None, "gold": gold.get("field"), "accuracy": gold.get("accuracy"), "calibration": gold["calibration"]}]


def _eval_calibration(summary: dict, path: str) -> list[dict]:
    """The judge's calibration from an eval run with --gold-field, one reliability series per criterion."""
    found = summary.get("judge_calibration") or {}
    out = []
    for crit, agreement in (found.get("criteria") or {}).items():
        out.append({
            "label": f"{summary.get('judge') or 'judge'} on {crit} ({Path(path).name})", "source": path, "criterion": crit,
            "gold": found.get("field"), "accuracy": agreement.get("accuracy"), "calibration": agreement.get("calibration"),
        })
    return out


def rating_sets(report: dict) -> int:
    """How many unconnected sets of games the report's ratings come from (0: no ratings)."""
    return len({r.get("set", 1) for rs in (report.get("ratings") or {}).values() for r in rs})


def _ratings_notes(ratings: dict, baselines: list[str], players_of: dict[str, tuple[str, str]], summaries_only: list[str]) -> list[str]:
    """What the ratings can and cannot compare: said plainly when the files' games are not connected."""
    if len(baselines) < 2:
        return []
    set_of = {r["model"]: r.get("set", 1) for rs in ratings.values() for r in rs}
    if rating_sets({"ratings": ratings}) > 1:
        groups: dict[int, list[str]] = {}
        for path, (model, _) in players_of.items():
            groups.setdefault(set_of.get(model, 0), []).append(Path(path).name)
        apart = "; ".join(f"set {k}: {', '.join(files)}" for k, files in sorted(groups.items()))
        return [
            f"these files share no player ({apart}): their ratings come from unconnected sets of games and cannot be compared; "
            f"win rates are each against its own baseline ({', '.join(baselines)}). Evaluate the models against one shared baseline to compare them"
        ]
    if ratings:
        return [f"win rates are against different baselines ({', '.join(baselines)}); the ratings, fitted over every file's games together, compare the models"]
    why = f"{', '.join(summaries_only)} hold no games" if summaries_only else "no file has judged games"
    return [f"win rates are against different baselines ({', '.join(baselines)}) and cannot be compared; ratings need the judged rows, and {why}"]


def _declined(verdict) -> float | None:
    """1.0 when the detector says the reply did not do all that was asked (refusal, partial, deflection)."""
    if not isinstance(verdict, dict) or "label" not in verdict:
        return None
    return 0.0 if verdict["label"] == "answer" else 1.0


def _changes(rows: list[dict], summary: dict, bootstrap: int, seed: int) -> dict:
    """The model's change against its baseline, prompt by prompt (paired), with 95% intervals.

    Win rates are already a change (0.5: no change); the detector's rates are differences of the two
    answers to the same prompt, so their interval is the paired bootstrap's.
    """
    from ..stats import bootstrap_mean, proportion

    out: dict = {"baseline": summary["baseline"]}
    model = summary["models"].get(summary["model"], {})
    for key in ("harmlessness_win_rate", "helpfulness_win_rate"):
        stat = model.get(key)
        if isinstance(stat, dict) and stat.get("value") is not None:
            out[key] = {"value": stat["value"] - 0.5, "ci": [c - 0.5 for c in stat["ci"]], "n": stat["n"]}

    def paired(subset):
        diffs = []
        for r in subset:
            m, b = _declined(r.get("refusal")), _declined(r.get("baseline_refusal"))
            if m is not None and b is not None:
                diffs.append(m - b)
        return bootstrap_mean(diffs, bootstrap=bootstrap, seed=seed)

    from ..eval.summary import baseline_answer_field, benign_marker

    red = [r for r in rows if r.get("eval_set") == "red_team"]
    marker = benign_marker(rows)  # risky_looking, or the run's --benign-field
    risky = [r for r in rows if r.get("eval_set") == "benign" and r.get(marker) is True]
    for key, subset in (("red_team_declined", red), ("over_refusal", risky)):
        if stat := paired(subset):
            out[key] = stat
    # The reward model's score of the model's answer minus the baseline's, prompt by prompt (eval --reward-model).
    rewards = [r["reward"] - r["baseline_reward"] for r in rows
               if isinstance(r.get("reward"), (int, float)) and isinstance(r.get("baseline_reward"), (int, float))]
    if stat := bootstrap_mean(rewards, bootstrap=bootstrap, seed=seed):
        out["reward"] = stat
    # How many prompts the two answered differently (text not identical): whether the model changed at all.
    baseline_field = baseline_answer_field(rows)
    texts = [(r.get("response"), r.get(baseline_field)) for r in rows if baseline_field and isinstance(r.get(baseline_field), str)]
    if texts:
        out["answers_changed"] = proportion(sum(a != b for a, b in texts), len(texts))
    return out


def _collect_answers(answers: dict, rows: list[dict], summary: dict) -> None:
    """Per prompt: the baseline's and each model's answer and verdict, for the side-by-side view."""
    from ..eval.summary import baseline_answer_field, benign_marker
    from ..rows import conversation

    model, baseline = summary["model"], summary.get("baseline")
    marker, baseline_answer = benign_marker(rows), baseline_answer_field(rows)
    for r in rows:
        if "response" not in r:
            continue
        key = (r.get("eval_set"), r.get("id"))
        entry = answers.setdefault(
            key,
            {
                "id": r.get("id"),
                "eval_set": r.get("eval_set"),
                "category": r.get("category") if isinstance(r.get("category"), str) else None,
                "risky_looking": r.get(marker),
                "conversation": conversation(r) if ("prompt" in r or "messages" in r) else [],
                "answers": {},
            },
        )
        found = r.get("judge")
        judge = found if isinstance(found, dict) else {}
        entry["answers"][model] = {
            "role": "model",
            "response": r["response"],
            "verdict": r.get("refusal") or {},
            "p_model": judge.get("p_model"),
            "criterion": judge.get("criterion"),
        }
        if baseline and baseline_answer in r and baseline not in entry["answers"]:
            entry["answers"][baseline] = {"role": "baseline", "response": r[baseline_answer], "verdict": r.get("baseline_refusal") or {}}


def report_from_summary(summary: dict) -> dict:
    """One eval run's summary in the shape `table` and `chart` take."""
    source = summary.get("results") or "<stdout>"
    return {
        "kind": EVAL_REPORT,
        "files": [source],
        "baselines": [summary["baseline"]] if summary.get("baseline") else [],
        "models": summary["models"],
        "ratings": summary.get("ratings") or {},
        "notes": [],
        "calibration": _eval_calibration(summary, source),
    }


def _read(path: str) -> list[dict] | dict:
    """The rows of eval output JSONL (a list), or a summary JSON (a dict: eval's, or label-prefs'), read strictly; any
    other file is one line saying what it is."""
    from ..eval.summary import eval_info
    from ..filekinds import EVAL_SUMMARY, describe_rows
    from ..jsonl import EmptyInput, NotJsonl

    try:
        rows = read_rows(path, "`cai report` reads what `cai eval` writes (its rows JSONL or its summary JSON)")
    except NotJsonl as exc:
        if isinstance(exc.document, dict) and exc.document.get("kind") == EVAL_SUMMARY:
            return _checked_summary(path, exc.document)
        if isinstance(exc.document, dict) and exc.document.get("kind") in (LABEL_PREFS_SUMMARY, EVAL_FRONTIER):
            return exc.document
        raise CaiError(f"{path}: {exc.what}, not `cai eval` output (its rows JSONL or its summary JSON)") from None
    except EmptyInput:
        raise CaiError(f"{path}: empty (no rows); `cai report` reads what `cai eval` writes") from None
    if FRONTIER_META in (rows[0].get("meta") or {}):  # the rows of `cai eval --checkpoints`: one per point
        return {"kind": EVAL_FRONTIER, "points": rows}
    try:
        eval_info(rows, path)
    except CaiError:
        raise CaiError(f"{path}: {describe_rows(rows)}, not `cai eval` output (no row has meta.eval)") from None
    return rows


def _checked_summary(path: str, summary: dict) -> dict:
    """An eval summary as the report reads it: `models` maps each model's name to its metrics."""
    models = summary.get("models")
    if not isinstance(models, dict) or not models or not all(isinstance(m, dict) for m in models.values()):
        raise CaiError(
            f"{path}: an eval summary without `models` (each model's metrics): cut short or edited; give the rows file "
            "`cai eval` wrote beside it, or rerun `cai eval`"
        )
    return summary


def rating_of(report: dict, criterion: str, label: str) -> dict | None:
    for r in report.get("ratings", {}).get(criterion, []):
        if r["model"] == label:
            return r
    return None


def players(report: dict) -> list[tuple[str, str]]:
    """(label, role) of every player, baselines first: the order of legends, bars and answer columns."""
    models = report["models"]
    first = [(k, "baseline") for k, m in models.items() if m.get("role") == "baseline"]
    return first + [(k, m.get("role") or "model") for k, m in models.items() if m.get("role") != "baseline"]


def category_rates(report: dict) -> dict[str, dict[str, dict]]:
    """eval_set/category -> player -> {n, refusal, declined}: counts of the detector's labels."""
    out: dict[str, dict[str, dict]] = {}
    if report.get("answers"):
        for entry in report["answers"]:
            key = f"{entry['eval_set']}/{entry['category'] or '(none)'}"
            for label, ans in entry["answers"].items():
                c = out.setdefault(key, {}).setdefault(label, {"n": 0, "refusal": 0, "declined": 0})
                verdict = ans.get("verdict", {}).get("label")
                if verdict is None:
                    continue
                c["n"] += 1
                c["refusal"] += verdict == "refusal"
                c["declined"] += verdict != "answer"
        return out
    for label, m in report["models"].items():  # summaries only: their per-category rates
        for key, c in (m.get("by_category") or {}).items():
            n = c.get("n", 0)
            refusal = round(c.get("refusal_rate", 0.0) * n)
            declined = refusal + round((c.get("partial_rate", 0.0) + c.get("deflection_rate", 0.0)) * n)
            out.setdefault(key, {})[label] = {"n": n, "refusal": refusal, "declined": declined}
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval of k successes in n (cai_cli.stats.proportion): a 0% rate still gets a real interval."""
    from ..stats import proportion

    if n == 0:
        return (0.0, 0.0)
    low, high = proportion(k, n)["ci"]
    return (low, high)
