"""score: a reward model from `cai train-rm` (Score), or the constitutional judge (JudgeScore: the rewards
`train-policy --reward judge` trains on), scores each row's reply, candidates, or chosen/rejected pair.

Score scores each text alone, unpadded, so a score is the same whatever --batch-size (which sets only how many rows
go to the side file at a time) and whatever rows share its batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engines import EngineOptions, Sampling
from ..engines.pool import EnginePool
from ..errors import ModelError, RowFailure
from ..judge.reward import Group, JudgeCalls, JudgeReward
from ..judge.reward_config import JudgeRewardConfig, RewardMode, total
from ..rows import FieldProblem, check_conversation, check_string, conversation, set_meta
from ..runner import StageStats
from ..trl_examples import pref_example
from .base import EngineStage, Stage

if TYPE_CHECKING:
    from ..constitution import Constitution


def _targets(row: dict) -> dict[str, list[list[dict]]]:
    """name → conversations to score, for every scorable field the row has."""
    out: dict[str, list[list[dict]]] = {}
    if "chosen" in row or "rejected" in row:
        ex = pref_example(row)
        out["chosen"] = [ex["prompt"] + ex["chosen"]]
        out["rejected"] = [ex["prompt"] + ex["rejected"]]
    if isinstance(row.get("response"), str) or isinstance(row.get("candidates"), list):
        check_conversation(row)
        if isinstance(row.get("response"), str):
            out["response"] = [conversation(row) + [{"role": "assistant", "content": row["response"]}]]
        if isinstance(row.get("candidates"), list):
            if not all(isinstance(c, str) for c in row["candidates"]):
                raise FieldProblem("candidates", "expected a list of strings")
            out["candidates"] = [conversation(row) + [{"role": "assistant", "content": c}] for c in row["candidates"]]
    if not out:
        raise FieldProblem("response", "nothing to score: rows need response, candidates, or chosen and rejected")
    return out


class Score(Stage):
    """Each scorable text of a row scored by a reward model (engines/reward_model.py), alone and unpadded."""

    name = "score"

    def __init__(self, reward_model: str, dtype: str = "auto", pool: EnginePool | None = None):
        from ..model_specs import reward_model_error

        super().__init__()
        problem = reward_model_error(reward_model)
        if problem:
            raise ModelError(problem)
        self.path = reward_model
        self.dtype = dtype
        self.pool = pool if pool is not None else EnginePool()
        self.model: Any = None
        self.stats = StageStats(extra={"scored": 0})

    def settings(self) -> dict:
        from pathlib import Path

        from ..resume import folder_identity

        return {"reward_model": folder_identity(Path(self.path)), "dtype": self.dtype}

    def check(self, row: dict) -> None:
        _targets(row)

    def start(self) -> None:
        if self.model is None:
            self.model = self.pool.reward_model(self.path, self.dtype)

    def check_loaded(self, row: dict) -> None:
        limit = self.model.max_context
        if not limit:
            return
        for name, convs in _targets(row).items():
            for conv in convs:
                used = self.model.count_tokens(self.model.render(conv))
                if used > limit:
                    raise RowFailure(f"{used} tokens, longer than the reward model's context of {limit}", field=name)

    def _scores(self, texts: list[str]) -> list[float]:
        """One forward pass per text, unpadded: a text's score depends on that text alone, never on --batch-size or on
        the texts beside it (see docs/contract.md, "Seeds")."""
        scores: list[float] = []
        for text in texts:
            value, tokens = self.model.score(text)
            self.stats.tokens_in += tokens
            scores.append(value)
        return scores

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        plan = [(i, name, self.model.render(conv)) for i, row in enumerate(rows) for name, convs in _targets(row).items() for conv in convs]
        values = self._scores([text for _, _, text in plan])
        rewards: list[dict] = [{} for _ in rows]
        for (i, name, _), value in zip(plan, values):
            rewards[i].setdefault(name, []).append(value)
        for row, found in zip(rows, rewards):
            row["rewards"] = {k: (v if k == "candidates" else v[0]) for k, v in found.items()}
            set_meta(row, self.name, {"reward_model": self.path})
            self.stats.extra["scored"] += len(found)
        return list(rows)

    def summary(self) -> str:
        return f"scored {self.stats.extra['scored']} fields"


class JudgeScore(EngineStage):
    """score --judge: the rewards `train-policy --reward judge` trains on, put on rows (cai_cli/judge/reward.py).

    A row's `candidates` are one group (as a prompt's samples are in training), `chosen` and `rejected` a group of
    two; a lone `response` is a group of one, which only --reward-mode reference and pointwise can score. Each field
    gets `rewards.<field>` (the weighted total trl trains on) and `reward_parts.<field>` (each reward by name).
    """

    name = "score"

    def __init__(self, engine_opts: EngineOptions, constitution: Constitution, config: JudgeRewardConfig, weights: str | None = None):
        from ..constitution.passages import budget_for
        from ..constitution.requests import sized
        from ..judge.reward_config import default_weights, parse_weights, reward_names

        super().__init__(engine_opts, Sampling())
        # A document's passages sized for the judge, as train-policy --reward judge sizes them: the same rewards.
        self.constitution: Constitution = sized(constitution, budget_for(engine_opts.model, engine_opts.vllm.max_model_len))
        constitution = self.constitution
        self.cfg = config
        self.names = reward_names(constitution)  # a constitution without comparison questions stops here
        self.weights = parse_weights(weights, self.names) or default_weights(constitution)
        self.reward: JudgeReward | None = None
        self.calls = JudgeCalls()
        self.stats = StageStats(extra={"scored": 0})

    def settings(self) -> dict:
        return {"judge_rewards": self.cfg.settings(), "rewards": self.names, "reward_weights": self.weights}

    def gold_judged(self):
        """These rewards as the gold measurement asks them (cai_cli/judge/checks.py): planned before the engine starts."""
        from ..judge.checks import RewardJudged

        def started() -> JudgeReward:
            self.start()
            assert self.reward is not None
            return self.reward

        identity = {"model": self._model_name(), "engine": self.engine_opts.engine, "constitution": self.constitution.name,
                    "constitution_hash": self.constitution.hash, **self.settings()}
        return RewardJudged(started, self.weights, identity, plan=JudgeReward(None, self.constitution, self.cfg))

    def _groups(self, row: dict) -> dict[str, Group]:
        """field -> the group it is scored as."""
        targets = _targets(row)
        reference = None
        if self.cfg.mode is RewardMode.reference:
            check_string(row, self.cfg.reference_field, "the reference answer (--reward-mode reference)")
            reference = row[self.cfg.reference_field]
        out: dict[str, Group] = {}
        if "chosen" in targets:
            ex = pref_example(row)
            out["pair"] = Group(ex["prompt"], [ex["chosen"][-1]["content"], ex["rejected"][-1]["content"]], reference)
        for name in ("response", "candidates"):
            if name in targets and not (reference is not None and name == self.cfg.reference_field):  # the reference itself is not scored
                out[name] = Group(conversation(row), [c[-1]["content"] for c in targets[name]], reference)
        if not out:
            raise FieldProblem(self.cfg.reference_field, "is the reference answer (--reference-field): rows need candidates, or chosen and rejected, to score against it")
        for name, group in out.items():
            if self.cfg.mode is RewardMode.group and len(group.completions) < 2:
                field = "candidates" if name == "candidates" else name
                raise FieldProblem(field, "--reward-mode group compares each completion with the others of its group: rows need "
                                          "candidates (2 or more) or chosen and rejected; use --reward-mode reference or pointwise for one response")
        return out

    def check(self, row: dict) -> None:
        self._groups(row)

    def start(self) -> None:
        super().start()
        if self.reward is None:
            self.reward = JudgeReward(self.started_engine(), self.constitution, self.cfg)

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        assert self.reward is not None, "start() builds the judge"
        plan = [(i, name, group) for i, row in enumerate(rows) for name, group in self._groups(row).items()]
        before = JudgeCalls(**vars(self.reward.calls))
        results = self.reward.score([group for _, _, group in plan])
        spent = self.reward.calls
        for name in ("questions", "cached", "prompts", "prompt_tokens", "failed"):
            setattr(self.calls, name, getattr(self.calls, name) + getattr(spent, name) - getattr(before, name))
        self.calls.seconds += spent.seconds - before.seconds
        self.stats.tokens_in += spent.prompt_tokens - before.prompt_tokens
        found: list[dict] = [{} for _ in rows]
        for (i, name, _), parts in zip(plan, results):
            found[i][name] = parts
        for i, _, group in plan:
            passages = self.reward.passages(group.conversation)
            if passages:  # what each reward was asked about: a tier's routed passage, a constraint's stating passage
                rows[i]["reward_passages"] = passages
        for row, by_field in zip(rows, found):
            totals: dict = {}
            parts_out: dict = {}
            row["rewards"], row["reward_parts"] = totals, parts_out
            for name, parts in by_field.items():
                values = [total(p, self.names, self.weights) for p in parts]
                if name == "pair":
                    totals["chosen"], totals["rejected"] = values
                    parts_out["chosen"], parts_out["rejected"] = parts
                elif name == "response":
                    totals[name], parts_out[name] = values[0], parts[0]
                else:
                    totals[name], parts_out[name] = values, parts
                self.stats.extra["scored"] += len(parts)
            info = self.provenance(judge="constitutional", constitution=self.constitution.name, constitution_hash=self.constitution.hash,
                                   **self.cfg.settings(), rewards=self.names, reward_weights=self.weights)
            info.pop("sampling", None)  # nothing is sampled
            set_meta(row, self.name, info)
        return list(rows)

    def summary(self) -> str:
        c = self.calls
        cached = f" ({c.cached} from the cache)" if c.cached else ""
        failed = f", {c.failed} without an answer" if c.failed else ""
        return f"scored {self.stats.extra['scored']} completions: {c.questions} judge questions{cached}, {c.prompts} scored prompts in {c.seconds:.1f}s{failed}"
