"""train-policy --reward judge: the judge as settled before anything loads (Judging), and the judge that scores the
samples (JudgeSide), whose engine starts once, when first asked, shared by the gold measurement (--gold,
cai_cli/judge/checks.py), the trainer's reward functions and the reward monitor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..constitution import Constitution
    from ..engines import EngineOptions
    from ..judge.checks import RewardJudged
    from ..judge.reward import JudgeReward
    from ..judge.reward_config import JudgeRewardConfig


@dataclass
class Judging:
    """--reward judge, settled before anything loads: the judge's engine (its own: in this process, or a server), the
    constitution sized for it, what it asks, and --reward-weights as given."""

    engine: EngineOptions
    charter: Constitution
    cfg: JudgeRewardConfig
    weights: str | None = None


class JudgeSide:
    """The judge that scores the samples: its engine started once, when first asked (after the cost of a gold
    measurement is printed)."""

    def __init__(self, judging: Judging):
        self.judging = judging
        self.engine: Any = None
        self._reward: JudgeReward | None = None

    def reward(self) -> JudgeReward:
        if self._reward is None:
            from ..engines import load_engine
            from ..judge.reward import JudgeReward

            self.engine = load_engine(self.judging.engine)
            self._reward = JudgeReward(self.engine, self.judging.charter, self.judging.cfg)
        return self._reward

    def gold_judged(self, weights: Sequence[float]) -> RewardJudged:
        from ..judge.checks import RewardJudged
        from ..judge.reward import JudgeReward

        j = self.judging
        identity = {"model": j.engine.model or "embedded", "engine": j.engine.engine, "constitution": j.charter.name,
                    "constitution_hash": j.charter.hash, **j.cfg.settings(), "reward_weights": list(weights)}
        return RewardJudged(self.reward, weights, identity, plan=JudgeReward(None, j.charter, j.cfg))

    def where(self) -> str:
        urls = self.judging.engine.server.base_url
        return f"--judge-base-url {' '.join(urls)}" if urls else f"on {self.judging.engine.engine}"

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
