"""The trainers' data: a whole input file through a row check and a conversion (cai_cli.trl_examples), helpful
rows mixed in, and a held-out split by prompt. No heavy imports here."""

from __future__ import annotations

import json
import random

from ..errors import CaiError, InputError
from ..jsonl import display_name, read_lines
from ..rows import FieldProblem

EVAL_FRACTION = 0.1  # train-rm --eval-fraction: the share of pairs held out, whole prompts at a time


def load_examples(path: str, check, convert) -> list:
    """Every row of PATH through CHECK then CONVERT; the first bad row stops everything (one line, exit 2)."""
    name = display_name(path)
    lines = read_lines(path)
    if not lines:
        raise CaiError(f"{name}: no rows (the input is empty)")
    bad: list[InputError] = []
    out = []
    for item in lines:
        if item.error is not None:
            bad.append(item.error)
            continue
        try:
            check(item.row)
            converted = convert(item.row)
        except FieldProblem as problem:
            bad.append(InputError(problem.message, file=name, line=item.line, field=problem.field))
            continue
        out.extend(converted if isinstance(converted, list) else [converted])
    if bad:
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise CaiError(f"{bad[0]}{more}; nothing was trained")
    return out


def mix_in(examples: list[dict], helpful: list[dict], ratio: float | None, seed: int) -> tuple[list[dict], int]:
    """Add helpful examples so they make up RATIO of the result (all of them, once, when RATIO is None)."""
    if ratio is None:
        return examples + helpful, len(helpful)
    if not 0.0 <= ratio < 1.0:
        raise CaiError(f"--mix-ratio: expected 0 <= R < 1 (the share of helpful examples), got {ratio}")
    want = round(len(examples) * ratio / (1.0 - ratio))
    rng = random.Random(seed)
    # Without replacement while the file has enough rows; only a small helpful file is repeated.
    picked = rng.sample(helpful, want) if want <= len(helpful) else [rng.choice(helpful) for _ in range(want)]
    return examples + picked, want


def split_by_prompt(examples: list[dict], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices) with every pair of one prompt on the same side.

    Pairs of one prompt share its text and usually one of their replies; split by row, the held-out accuracy would
    partly measure memorised prompts. Whole prompts, drawn with SEED, are held out until they hold FRACTION of the
    pairs (at least one prompt when FRACTION > 0), always leaving one prompt to train on.
    """
    groups: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        groups.setdefault(json.dumps(example["prompt"], sort_keys=True), []).append(i)
    if fraction <= 0 or len(groups) < 2:
        return list(range(len(examples))), []
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    want = max(1, round(len(examples) * fraction))
    held: list[int] = []
    for group in order[:-1]:
        if len(held) >= want:
            break
        held.extend(group)
    held_set = set(held)
    return [i for i in range(len(examples)) if i not in held_set], sorted(held)
