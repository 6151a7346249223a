"""trl's side of the judge in the loop (`train-policy --reward judge`): the judge's rewards (cai_cli/judge/reward.py)
as trl reward functions, one per reward name, weighted by trl's reward_weights.

trl calls its reward functions one after another with the same completions. The first asks the judge for all of
them (every question of the step in one engine call per kind, answers cached) and the others read what it found,
so a step costs one round of judge calls, not one per function. Under several processes the completions of one
group may sit on different processes: the first function gathers every process's completions (trl's order, so
groups are consecutive runs of num_generations), each process asks its share of the questions, and the answers
are gathered back, so each question is asked once in the whole run.

The main process writes DIR/samples.jsonl: one row per group (the prompt's `messages`, the `candidates`, the
`rewards` trl received and their `reward_parts`, the step), which `cai score --judge` takes as it is and re-scores
to the same numbers. metrics.jsonl gets the judge's cost per step (judge/questions, judge/cached, judge/prompts,
judge/prompt_tokens, judge/seconds, judge/failed) beside trl's rewards/<name>/mean.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CaiError, EngineError
from ..judge.reward import Group, JudgeReward
from ..judge.reward_config import total
from .record import SAMPLES


def _text(value) -> str:
    """A trl completion (conversational: [{"role": "assistant", "content": ...}]) or prompt text as plain text."""
    if isinstance(value, str):
        return value
    return "".join(m.get("content") or "" for m in value if isinstance(m, dict))


def _conversation(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


class JudgeRewards:
    """The reward functions for trl: `functions()` in the order of `reward.names`."""

    def __init__(self, reward: JudgeReward, num_generations: int, weights: Sequence[float], out: Path | None,
                 reference_field: str | None = None, describe: str = "the judge"):
        self.reward = reward
        self.num_generations = num_generations
        self.weights = list(weights)
        self.samples = out / SAMPLES if out is not None else None
        self.reference_field = reference_field
        self.describe = describe
        self._current: list[dict[str, float | None]] = []

    def functions(self) -> list:
        return [_RewardFunction(self, name, head=(n == 0)) for n, name in enumerate(self.reward.names)]

    def score_batch(self, prompts: list, completions: list, kwargs: dict) -> None:
        """Judge the batch of every process; keep this process's completions' rewards for the other functions."""
        from accelerate import PartialState
        from accelerate.utils import gather_object

        state = PartialState()
        world, rank = state.num_processes, state.process_index
        references = kwargs.get(self.reference_field) if self.reference_field else None
        local = [(_conversation(p), _text(c), None if references is None else references[i]) for i, (p, c) in enumerate(zip(prompts, completions))]
        parts = gather_object([local]) if world > 1 else [local]
        everything = [item for part in parts for item in part]
        offset = sum(len(part) for part in parts[:rank])
        g = self.num_generations
        groups = [Group(everything[s][0], [item[1] for item in everything[s : s + g]], everything[s][2]) for s in range(0, len(everything), g)]
        trainer_state = kwargs.get("trainer_state")
        step = (trainer_state.global_step + 1) if trainer_state is not None else None
        questions = self.reward.plan(groups)
        before = _calls(self.reward)
        problem = None
        try:
            answers = self.reward.answer(questions[rank::world])
        except EngineError as exc:
            answers, problem = {}, str(exc)
        if world > 1:
            # Every process learns every answer (and every failure: a process that raised alone would leave the
            # others waiting for it forever).
            shared = gather_object([(answers, problem)])
            answers = {k: v for found, _ in shared for k, v in found.items()}
            problem = next((p for _, p in shared if p), None)
        if problem is not None:
            at = f" at step {step}" if step is not None else ""
            # The engine's own message may already say to rerun (the openai engine's does).
            hint = "" if "rerun" in problem else "; rerun the same command to resume from the last checkpoint"
            raise CaiError(f"{self.describe} failed{at}: {problem.rstrip('.')}{hint}")
        rewards = self.reward.rewards(groups, answers)
        flat = [parts for group in rewards for parts in group]
        self._current = flat[offset : offset + len(local)]
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            for name, value in _calls(self.reward).items():
                log_metric(name, value - before[name])
        if self.samples is not None and (trainer_state is None or trainer_state.is_world_process_zero):
            self._write(step, groups, rewards)

    def _write(self, step: int | None, groups: list[Group], rewards: list) -> None:
        from ..output import append_rows

        names = self.reward.names
        rows = []
        for n, (g, parts) in enumerate(zip(groups, rewards)):
            row: dict[str, Any] = {"id": f"step{step}:{n}", "step": step, "messages": g.conversation, "candidates": g.completions}
            if self.reference_field and g.reference is not None:
                row[self.reference_field] = g.reference
            row["rewards"] = {"candidates": [total(p, names, self.weights) for p in parts]}
            row["reward_parts"] = {"candidates": parts}
            passages = self.reward.passages(g.conversation)
            if passages:  # what each reward asked about, as `cai score --judge` records it
                row["reward_passages"] = passages
            rows.append(row)
        assert self.samples is not None  # checked by the caller
        append_rows(self.samples, rows)

    def value(self, name: str, count: int) -> list[float | None]:
        if len(self._current) != count:
            raise CaiError(f"the judge's rewards: trl asked for {count} rewards after scoring {len(self._current)} completions")
        return [parts.get(name) for parts in self._current]


def _calls(reward: JudgeReward) -> dict[str, float]:
    return reward.calls.as_metrics()


class _RewardFunction:
    """One reward for trl, named as trl logs it (rewards/<name>/mean); the head one asks the judge."""

    def __init__(self, owner: JudgeRewards, name: str, head: bool):
        self.owner, self.__name__, self.head = owner, name, head

    def __call__(self, prompts, completions, completion_ids=None, **kwargs):
        if self.head:
            self.owner.score_batch(list(prompts), list(completions), kwargs)
        return self.owner.value(self.__name__, len(completions))


def rewind_samples(out: Path, step: int) -> None:
    """Keep the samples of the steps a resumed checkpoint holds (step <= STEP): the later ones are sampled again."""
    path = out / SAMPLES
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # a line cut short by a crash, and nothing after it
        if isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    from ..output import write_file

    write_file(path, "".join(kept))


def samples_callback(out: Path):
    """A trainer callback that rewinds DIR/samples.jsonl to the step training starts (or resumes) from."""
    from transformers import TrainerCallback

    class RewindSamples(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                rewind_samples(out, state.global_step)

    return RewindSamples()
