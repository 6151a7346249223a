"""The judge measured before it is trusted: its accuracy and calibration on gold pairs (judge/gold.py), asked exactly as
the run will ask it, and a floor that stops the run before anything is labelled, scored or trained.

`label-prefs`, `score --reward judge` and `train-policy --reward judge` share this (JudgeGateOptions, options.py): each hands over the probability its own
judge gives the gold answer of each pair (label-prefs: its label, through its own tiers, gate and principles, both
orders; the rewards: `reward_gold`), and `check` turns them into one record: the accuracy with its Wilson interval and
the expected calibration error (`gold_agreement`, the measurement `label-prefs --gold-field` and `eval --gold-field`
make after the fact), the floors and whether the judge passed.

The accuracy floor is on the lower end of the 95% Wilson interval: a judge passes only where the gold pairs show it
reaches the floor, so a judge at chance does not pass by luck on a few dozen pairs (the embedded 135M judge measured
0.639 on the 36 pairs of examples/gold-hhh.jsonl, 95% CI 0.476-0.775, its mean P(gold) 0.505: a coin with a lean).
More gold pairs narrow the interval. The ECE ceiling is on the measured ECE. A judge that decided no pair (every one
a tie, or failed) has no accuracy and does not pass. Below a floor the command stops with one line and exit code 3
(errors.JudgeBelowFloor); the record is kept either way, beside the run's output (`OUT.judge-gate.json`, or
`DIR/judge-gate.json` for a training folder).

Which side shows the gold answer first alternates by a hash of the pair's id, so a judge that always picks the same
position scores as a coin would, even where only one order is asked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import CaiError, JudgeBelowFloor
from ..filekinds import JUDGE_GATE
from ..rows import stable_hash
from .gold import GoldPair, load_gold
from .reliability import calibration_line, gold_agreement

if TYPE_CHECKING:
    from .reward import JudgeReward

GATE_SUFFIX = ".judge-gate.json"  # beside OUT.jsonl: OUT.judge-gate.json
GATE_FILE = "judge-gate.json"  # in a training folder
GOLD_BATCH = 16  # gold pairs judged per engine call (progress between them)


@dataclass(frozen=True)
class Floors:
    """--min-accuracy and --max-ece: the least accuracy and the most calibration error a judge may have on gold pairs."""

    min_accuracy: float | None = None
    max_ece: float | None = None

    def __bool__(self) -> bool:
        return self.min_accuracy is not None or self.max_ece is not None

    def as_dict(self) -> dict:
        return {"min_accuracy": self.min_accuracy, "max_ece": self.max_ece}


def gold_first(pair: GoldPair) -> bool:
    """Whether the pair's gold answer is shown (or listed) first: alternates by a hash of its id."""
    return int(stable_hash(["gold", pair.id], 8), 16) % 2 == 0


def ordered(pair: GoldPair) -> tuple[str, str]:
    """The pair's two answers in the order they are shown (see gold_first)."""
    return (pair.better, pair.worse) if gold_first(pair) else (pair.worse, pair.better)


@dataclass(frozen=True)
class Cost:
    """What a measurement asks of the judge before it runs: scored prompts, and about how many tokens they hold."""

    calls: int
    tokens: int

    def line(self, what: str) -> str:
        return f"{what}: {self.calls} judge calls (scored prompts), about {self.tokens:,} prompt tokens"


def cost(prompts: Iterable[tuple[Sequence[str], int]]) -> Cost:
    """The cost of prompts given as (the texts one prompt holds: conversation, answers, question; how many times it is
    scored), tokens estimated at 4 characters a token (constitution.passages.estimate_tokens) plus a few for the layout."""
    from ..constitution.passages import estimate_tokens

    calls = tokens = 0
    for texts, times in prompts:
        calls += times
        tokens += times * (sum(estimate_tokens(t) for t in texts) + 24)
    return Cost(calls, tokens)


def conversation_text(conversation: Sequence[dict]) -> str:
    return "\n".join(str(m.get("content", "")) for m in conversation)


def reward_cost(reward: JudgeReward, pairs: Sequence[GoldPair]) -> Cost:
    """What `reward_gold` will ask: every question the rewards plan for the pairs (comparisons in both orders, each
    pointwise question and each hard constraint as a yes/no pair)."""
    items: list[tuple[Sequence[str], int]] = []
    for q in reward.plan(reward_groups(reward, pairs)):
        conv = conversation_text(q.conversation)
        if q.kind == "gate":
            items += [((conv, q.a, h.text), 2) for h in reward.constraints]
        else:
            items += [((conv, q.a, q.b or "", p.question), 2) for p in q.principles]
    return cost(items)


def reward_groups(reward: JudgeReward, pairs: Sequence[GoldPair]) -> list:
    """The groups the rewards score for gold pairs, as training would: the pair as a group of two (group and pointwise
    modes), or each answer against the other as its reference (reference mode)."""
    from .reward import Group
    from .reward_config import RewardMode

    groups = []
    for pair in pairs:
        first, second = ordered(pair)
        if reward.cfg.mode is RewardMode.reference:
            groups += [Group(pair.conversation, [first], second), Group(pair.conversation, [second], first)]
        else:
            groups.append(Group(pair.conversation, [first, second]))
    return groups


def reward_gold(reward: JudgeReward, weights: Sequence[float], pairs: Sequence[GoldPair]) -> list[float | None]:
    """Per gold pair, the judge's rewards turned into P(the gold answer is better): 0.5 + Δ / (2 Σ|w|), where Δ is the
    gold answer's weighted reward less the other's over the rewards both have (Σ|w| their weights). With one tier and
    no hard constraint, in group mode, this is exactly the judge's P(gold beats other), both orders; in general it is
    the reward margin GRPO learns from, on a [0, 1] scale (a constraint neither answer crosses narrows it towards 0.5).
    None: the judge gave no reward to compare."""
    groups = reward_groups(reward, pairs)
    scored = reward.score(groups)
    names = reward.names
    out: list[float | None] = []
    from .reward_config import RewardMode

    step = 2 if reward.cfg.mode is RewardMode.reference else 1
    for n, pair in enumerate(pairs):
        found = scored[n * step : n * step + step]
        first, second = (found[0][0], found[1][0]) if step == 2 else (found[0][0], found[0][1])
        gold, other = (first, second) if gold_first(pair) else (second, first)
        both = [(w, g, o) for name, w in zip(names, weights) if (g := gold.get(name)) is not None and (o := other.get(name)) is not None]
        span = sum(abs(w) for w, _, _ in both)
        if not both or span == 0:
            out.append(None)
            continue
        delta = sum(w * (g - o) for w, g, o in both)
        out.append(min(1.0, max(0.0, 0.5 + delta / (2.0 * span))))
    return out


def measure(pairs: Sequence[GoldPair], p_gold: Sequence[float | None], limits: Floors, gold: str, command: str, judge: dict,
            spent: Cost) -> dict:
    """The record of one measurement: accuracy (Wilson 95%) and calibration over the pairs the judge answered, the
    floors, whether it passed and, if not, why; every pair's P(gold)."""
    answered = [p for p in p_gold if p is not None]
    agreement = gold_agreement(answered)
    accuracy = (agreement or {}).get("accuracy")
    calib = (agreement or {}).get("calibration")
    below = []
    if limits and accuracy is None:
        below.append(f"the judge decided none of the {len(pairs)} gold pairs (each a tie or a failure)")
    if limits.min_accuracy is not None and accuracy is not None and accuracy["ci"][0] < limits.min_accuracy:
        below.append(f"accuracy {accuracy['value']:.3f} (95% CI {accuracy['ci'][0]:.3f}-{accuracy['ci'][1]:.3f}) is not shown to "
                     f"reach --min-accuracy {limits.min_accuracy:g}: the interval's lower end is below it")
    if limits.max_ece is not None and calib is not None and calib["ece"] > limits.max_ece:
        below.append(f"ECE {calib['ece']:.3f} is above --max-ece {limits.max_ece:g}")
    return {
        "kind": JUDGE_GATE,
        "command": command,
        "gold": gold,
        "pairs": len(pairs),
        "failed": len(p_gold) - len(answered),
        "accuracy": accuracy,
        "calibration": calib,
        "floors": limits.as_dict(),
        "passed": not below,
        "below": below,
        "judge": judge,
        "cost": {"calls": spent.calls, "tokens": spent.tokens},
        "p_gold": [{"id": pair.id, "p_gold": None if p is None else round(p, 6)} for pair, p in zip(pairs, p_gold)],
    }


def line(record: dict) -> str:
    """The measurement, as printed: accuracy with its interval, the ECE, the floors."""
    acc = record["accuracy"]
    if acc is None:
        text = f"no gold pair decided ({record['pairs']} pairs)"
    else:
        text = f"accuracy {acc['value']:.3f} (95% CI {acc['ci'][0]:.3f}-{acc['ci'][1]:.3f}) on {acc['n']} gold pairs"
        if acc.get("ties"):
            text += f" ({acc['ties']} ties apart)"
    ece = calibration_line({"calibration": record["calibration"]})
    if ece:
        text += f", {ece}"
    if record["failed"]:
        text += f", {record['failed']} pairs the judge failed on"
    limits = record["floors"]
    given = [f"--min-accuracy {limits['min_accuracy']:g}" if limits["min_accuracy"] is not None else "",
             f"--max-ece {limits['max_ece']:g}" if limits["max_ece"] is not None else ""]
    given = [g for g in given if g]
    if given:
        text += f"; floor {', '.join(given)}: {'passed' if record['passed'] else 'below'}"
        floor = limits["min_accuracy"]
        if floor is not None and acc is not None and acc["ci"][0] < floor <= acc["ci"][1]:
            text += " (the interval straddles the floor: more gold pairs would settle it)"
    return text


def where_kept(output: str | None, folder: bool = False) -> Path | None:
    """Where a measurement is kept: beside -o OUT (OUT.judge-gate.json), or in a training folder (FOLDER); None for
    rows going to stdout or a device."""
    if output in (None, "-"):
        return None
    out = Path(output)
    if folder:
        return out / GATE_FILE
    if out.exists() and not out.is_file():
        return None
    return out.with_name(out.name.removesuffix(".jsonl") + GATE_SUFFIX)


def check_keep(path: Path | None) -> None:
    """Before any work: the record may go to PATH (no file of the user's is overwritten: only an earlier record)."""
    if path is None or not (path.exists() or path.is_symlink()):
        return
    import json

    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    if not isinstance(found, dict) or found.get("kind") != JUDGE_GATE:
        raise CaiError(f"{path}: exists and is not a judge measurement cai wrote; move it away (the gold measurement is kept there)")


def enforce(record: dict, keep: Path | None, command: str) -> None:
    """Print the measurement, keep it at KEEP, and stop (JudgeBelowFloor) where the judge is below a floor."""
    from ..output import write_summary

    if keep is not None:
        write_summary(keep, record)
    said = f"cai {command}: judge on gold pairs: {line(record)}"
    print(said + (f" -> {keep}" if keep is not None else ""), file=sys.stderr)
    if not record["passed"]:
        what = "trained" if command == "train-policy" else "scored" if command == "score" else "labelled"
        kept = f"; the measurement is in {keep}" if keep is not None else ""
        raise JudgeBelowFloor(f"the judge is below the floor on {record['pairs']} gold pairs from {record['gold']}: "
                              f"{'; '.join(record['below'])}; nothing was {what}{kept}")


def say_cost(command: str, spent: Cost, pairs: int, gold: str) -> None:
    print(f"cai {command}: {spent.line(f'measuring the judge on {pairs} gold pairs from {gold}')}", file=sys.stderr)


class GoldJudged(Protocol):
    """A command's judge, as it will be used: what judging gold pairs costs, P(gold better) per pair, and who it is."""

    def gold_cost(self, pairs: list[GoldPair]) -> Cost: ...

    def gold_probabilities(self, pairs: list[GoldPair], progress) -> list[float | None]: ...

    def gold_identity(self) -> dict: ...


class RewardJudged:
    """The judge's rewards (`score --reward judge`, `train-policy --reward judge`) as a GoldJudged: REWARD() builds them on a
    started engine (called once, after the cost is printed)."""

    def __init__(self, reward, weights: Sequence[float], identity: dict, plan=None):
        self._make = reward
        self._reward: JudgeReward | None = None
        self.weights = list(weights)
        self.identity = identity
        self.planner = plan  # a JudgeReward without an engine, to plan the questions before any model loads

    def reward(self) -> JudgeReward:
        if self._reward is None:
            self._reward = self._make()
        return self._reward

    def gold_cost(self, pairs: list[GoldPair]) -> Cost:
        return reward_cost(self.planner or self.reward(), pairs)

    def gold_probabilities(self, pairs: list[GoldPair], progress) -> list[float | None]:
        out: list[float | None] = []
        for at in range(0, len(pairs), GOLD_BATCH):
            out += reward_gold(self.reward(), self.weights, pairs[at : at + GOLD_BATCH])
            progress.done(len(pairs[at : at + GOLD_BATCH]))
        return out

    def gold_identity(self) -> dict:
        return self.identity


def run_check(judged: GoldJudged, gold: str, limits: Floors, keep: Path | None, command: str, progress=None) -> dict:
    """Measure JUDGED on the gold pairs of GOLD (its cost printed first, its progress on stderr as --progress says),
    print it, keep it at KEEP and stop below the floors (see the module docstring). Returns the record."""
    from ..progress import Progress

    pairs = load_gold(gold)
    check_keep(keep)
    spent = judged.gold_cost(pairs)
    say_cost(command, spent, len(pairs), gold)
    with Progress(f"{command} (the judge on gold pairs)", progress, len(pairs), unit="gold pairs") as shown:
        found = judged.gold_probabilities(pairs, shown)
    record = measure(pairs, found, limits, gold, command, judged.gold_identity(), spent)
    enforce(record, keep, command)
    return record
