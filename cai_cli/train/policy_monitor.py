"""train-policy --monitor: the probe set, the training reward and the monitor as train/monitor.py asks for them, built
from the run's judge (or reward model); the monitor's own engine started at its first check (the training judge's,
for held-out questions)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..judge.reward_config import RewardMode
from .monitor import MonitorOptions, SpecKind, parse_spec, split_held_out

if TYPE_CHECKING:
    from .policy_judge import JudgeSide, Judging


class Watch:
    """One run's monitor: which questions train and which watch (held-out principles), and both scorers."""

    def __init__(self, opts: MonitorOptions, judging: Judging):
        assert opts.monitor is not None, "a Watch is made for --monitor SPEC"
        self.opts, self.judging, self.spec = opts, judging, parse_spec(opts.monitor)
        self.training_charter = self.monitor_charter = judging.charter
        if self.spec.kind is SpecKind.principles:
            self.training_charter, self.monitor_charter = split_held_out(judging.charter, self.spec.principles)
        self.cfg = replace(judging.cfg, mode=RewardMode.reference)
        self.engines: list = []
        self.monitor: Any = None
        self.scorer: JudgeSide | None = None

    def plan(self, examples, out: Path, config, scorer: JudgeSide | None) -> str:
        """The Monitor of the run, and its cost as one line (printed before training)."""
        from .monitor import Monitor, judge_calls, plan_line, probe_prompts

        self.scorer = scorer
        max_new = int(config.max_completion_length or 256)
        self.monitor = Monitor(self.opts, self.spec, probe_prompts(examples, self.opts.monitor_probes), self._train, self._monitor, out, max_new)
        train = "the training judge" if scorer is not None else "the reward model"
        train_calls = judge_calls(self.training_charter, self.cfg.principles) if scorer is not None else 1
        return plan_line(self.monitor, int(config.max_steps or 0), train, train_calls, judge_calls(self.monitor_charter, self.cfg.principles))

    def callback(self, trainer):
        from .monitor import monitor_callback

        self.trainer = trainer
        return monitor_callback(self.monitor)

    def _train(self):
        from ..judge.reward import JudgeReward
        from .monitor import judge_scorer, reward_model_scorer

        if self.scorer is not None:
            return judge_scorer(JudgeReward(self.scorer.reward().engine, self.training_charter, self.cfg), self.trainer.args.reward_weights)
        funcs = getattr(self.trainer, "reward_funcs", [])
        tokenizers = getattr(self.trainer, "reward_processing_classes", [])
        return reward_model_scorer(funcs[0], tokenizers[0])

    def _monitor(self):
        from ..engines import load_engine
        from ..judge.reward import JudgeReward
        from ..judge.reward_config import default_weights
        from .monitor import judge_scorer, monitor_engine

        if self.spec.kind is SpecKind.principles and self.scorer is not None:
            engine = self.scorer.reward().engine
        else:
            engine = load_engine(monitor_engine(self.spec, self.judging.engine))
            self.engines.append(engine)
        return judge_scorer(JudgeReward(engine, self.monitor_charter, self.cfg), default_weights(self.monitor_charter))

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
