"""`cai judge ...`: checks of the judge itself (does it read the constitution?)."""

from __future__ import annotations

from ..constitution.routing import DEFAULT_RANKER
from ..engines import EngineOptions
from ..judge.options import JudgeOptions
from ..runner import RunOptions
from ..threads import ThreadOptions
from . import options as o
from .apps import judge_app
from .plumbing import command


@command(judge_app, "check")
def judge_check(
    pairs: o.PairsArg,
    constitution: o.ConstitutionOpt = None,
    questions: o.QuestionsOpt = None,
    reversals: o.ReversalsOpt = None,
    limit: o.LimitOpt = None,
    gate_threshold: o.GateThresholdOpt = JudgeOptions.gate_threshold,
    passage_tokens: o.PassageTokensOpt = None,
    output: o.OutputOpt = None,
    progress: o.ProgressOpt = RunOptions.progress,
    ranker: o.RankerOpt = DEFAULT_RANKER,
    *, engine: EngineOptions, threads: ThreadOptions,
):
    """Does the judge read the constitution? Each comparison question is asked on the same pairs as written and with its meaning reversed (your --reversals, or drafted); per question, how often the preference flips, with its 95% interval. A judge that ignores the question flips nothing.

    Each hard constraint is also reworded to allow what it forbade: of the answers the gate stopped, how many it lets through. The cost is printed first. See docs/label-prefs.md ("Does the judge read the constitution?").

    Example:

        cai judge check examples/gold-hhh.jsonl --questions less-harmful,more-ethical --limit 12
        cai judge check out/prefs.jsonl -c assistant --reversals my-reversals.jsonl -o out/sensitivity.json
    """
    from pathlib import Path

    from ..engines import load_engine
    from ..judge.sensitivity import check_constitution
    from ..output import check_targets

    charter_file = [("the constitution", constitution)] if constitution and Path(constitution).is_file() else []
    [target] = check_targets([("-o", output)], [("the pairs", pairs), ("--reversals", reversals), *charter_file])
    ids = {q.strip() for q in questions.split(",") if q.strip()} if questions else None
    check_constitution(pairs, constitution, ids, reversals, limit, engine, lambda: load_engine(engine), gate_threshold, passage_tokens, target,
                       progress, ranker)
