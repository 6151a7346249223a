"""train-policy: DPO from labelled pairs, or GRPO / RLOO against a reward model from `cai train-rm` or with the
constitutional judge as the online reward (--reward judge: cai_cli/judge/reward.py, trl's side in judge_reward.py)."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines import EngineName
from ..errors import CaiError, choice
from ..judge.options import JudgeGateOptions, JudgeRewardOptions
from ..judge.reward_config import JudgeRewardConfig, RewardMode
from ..model_specs import load_reward_model, quiet_libraries, reward_model_error
from ..rows import FieldProblem, check_conversation, check_string, conversation
from ..trl_examples import check_pref, pref_example, prompt_example
from .common import (
    TrainOptions,
    prepare_output,
    say,
    setup,
    trl_errors,
)
from .dataset import load_examples
from .monitor import MonitorOptions
from .policy_judge import JudgeSide, Judging
from .policy_monitor import Watch
from .record import data_identity
from .run import already_done, run_training, start

if TYPE_CHECKING:
    from ..constitution import Constitution


class Algo(str, Enum):
    """--algo: dpo learns from labelled pairs; grpo and rloo sample, score (a reward model, or the judge), improve.
    (No ppo: trl has no PPO trainer.)"""

    dpo = "dpo"
    grpo = "grpo"
    rloo = "rloo"


class RewardSource(str, Enum):
    """--reward: what scores grpo's and rloo's samples."""

    model = "model"  # a reward model from `cai train-rm` (--reward-model DIR)
    judge = "judge"  # the constitutional judge itself, asked at every step


# trl's GRPO default beta is 0: no KL term, nothing holding the policy near where it started while it climbs a
# learned (and exploitable) reward. RL-CAI keeps a KL penalty, so cai does too unless --beta says otherwise.
GRPO_BETA = 0.04


def train_policy(
    opts: TrainOptions,
    rows: str,
    algo: Algo | str,
    reward_model: str | None = None,
    beta: float | None = None,
    num_generations: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    soft: bool = True,
    reward: RewardSource | str | None = None,
    judge_options: JudgeRewardOptions | None = None,
    constitution: str | None = None,
    gate: JudgeGateOptions | None = None,
    monitor: MonitorOptions | None = None,
) -> dict:
    if algo == "ppo":
        raise CaiError("--algo ppo: trl 1.16 offers no PPO trainer (not even in trl.experimental); use grpo or rloo with --reward-model, or dpo")
    algo = choice(Algo, algo, "--algo")
    source = choice(RewardSource, reward, "--reward") if reward is not None else None
    online = algo is not Algo.dpo
    if online and not soft:
        raise CaiError(f"--hard is for --algo dpo (labelled pairs); {algo.value} learns from the rewards of its samples")
    charter: Constitution | None = None
    reward_cfg: JudgeRewardConfig | None = None
    judge: Judging | None = None
    if online:
        if source is RewardSource.judge:
            if reward_model is not None:
                raise CaiError("--reward judge scores with the constitutional judge; --reward-model is for --reward model")
            judge = _judge_setup(judge_options or JudgeRewardOptions(), constitution)
            charter, reward_cfg = judge.charter, judge.cfg
        elif reward_model is None:
            raise CaiError(f"--algo {algo.value} needs --reward-model DIR (a folder from `cai train-rm`), or --reward judge")
        else:
            problem = reward_model_error(reward_model)
            if problem:
                raise CaiError(problem)
        if opts.max_length is not None:
            raise CaiError(f"--max-length applies to dpo; for {algo.value} use --max-tokens (tokens per sampled completion)")
    else:
        if reward_model is not None or source is not None:
            raise CaiError(f"--{'reward-model' if reward_model is not None else 'reward'} is for --algo grpo or rloo; dpo learns from the labelled pairs directly")
        if num_generations is not None or max_tokens is not None or temperature is not None:
            raise CaiError("--num-generations, --max-tokens and --temperature are for --algo grpo or rloo (dpo samples nothing)")
    watch: Watch | None = None
    if monitor is not None and monitor.monitor is not None:
        if not online:
            raise CaiError("--monitor watches grpo and rloo as they sample; dpo samples nothing to probe")
        watch = Watch(monitor, judge or _judge_setup(judge_options or JudgeRewardOptions(), constitution))
        if judge is not None:
            charter = watch.training_charter  # held-out questions are the monitor's alone
            judge = replace(judge, charter=charter)
    prepare_output(opts.output)
    if online and reward_cfg is not None and reward_cfg.mode is RewardMode.reference:
        examples = load_examples(rows, _reference_check(reward_cfg.reference_field), _reference_example(reward_cfg.reference_field))
    elif online:
        examples = load_examples(rows, check_conversation, prompt_example)
    else:
        examples = load_examples(rows, check_pref, pref_example)
        if not soft:  # plain DPO: every pair as certain, trl's own loss
            examples = [{k: e[k] for k in ("prompt", "chosen", "rejected")} for e in examples]

    quiet_libraries()
    from datasets import Dataset

    extra = {"beta": beta, "num_generations": num_generations, "max_completion_length": max_tokens, "temperature": temperature}
    opts.extra.update({k: v for k, v in extra.items() if v is not None})
    data = Dataset.from_list(examples)
    if algo is Algo.dpo:
        from trl import DPOConfig

        plan = setup(Algo.dpo.value, opts, DPOConfig, "CAUSAL_LM", "train-policy")
        if soft:
            from .dpo import unsupported

            problem = unsupported(plan.config)
            if problem:
                raise CaiError(f"--config asks for {problem}: soft labels train DPO's sigmoid loss only; add --hard for trl's own loss")
    else:
        config_cls: Any
        if algo is Algo.grpo:
            from trl import GRPOConfig as config_cls

            defaults: dict[str, Any] = {"beta": GRPO_BETA}
        else:
            from trl import RLOOConfig as config_cls

            defaults = {}
        if charter is not None:
            assert judge is not None
            from ..judge.reward_config import default_weights, parse_weights, reward_names

            defaults["reward_weights"] = default_weights(charter)
            weights = parse_weights(judge.weights, reward_names(charter))
            if weights is not None:
                opts.extra["reward_weights"] = weights
        plan = setup(algo.value, opts, config_cls, "CAUSAL_LM", "train-policy", defaults)
        if plan.config.temperature == 0:
            raise CaiError(f"--temperature 0: {algo.value} learns by comparing several samples of each prompt, and greedy decoding "
                           "makes them all the same, so nothing would be learned; give a temperature above 0 (trl's default is 1.0)")
        if charter is not None:
            _check_weights(plan.config, charter)
        _check_enough_prompts(algo, plan.config, len(examples))
    settings: dict[str, Any] = {"algo": algo.value}
    if algo is Algo.dpo:
        settings["soft_labels"] = soft
    elif charter is not None:
        assert judge is not None and reward_cfg is not None
        settings["reward"] = {"judge": _judge_identity(judge, charter, reward_cfg)}
    else:
        settings["reward"] = _reward_identity(reward_model)
    run = start("train-policy", opts, plan, settings, {"input": data_identity(rows, examples)})
    if run.nothing_to_do:
        return already_done(run)
    labels = ("; soft labels (conservative DPO, label smoothing 1 - p_chosen per pair)" if soft else "; hard labels (plain DPO)") if algo is Algo.dpo else ""
    say(f"train-policy: {algo.value} on {len(examples)} {'pairs' if algo is Algo.dpo else 'prompts'}, beta {plan.config.beta}{labels}")
    record: dict[str, Any] = {"input": rows, "algo": algo.value, "examples": len(examples), "beta": plan.config.beta, "reward_model": reward_model}
    if algo is Algo.dpo:
        record["soft_labels"] = soft
    scorer: JudgeSide | None = None
    if charter is not None:
        assert judge is not None and reward_cfg is not None
        from ..judge.reward_config import reward_names

        record["reward"] = "judge"
        record["judge"] = {"model": judge.engine.model or "embedded", "engine": judge.engine.engine, "base_urls": judge.engine.server.base_url,
                           "constitution": charter.name, "constitution_hash": charter.hash, **reward_cfg.settings(),
                           "rewards": reward_names(charter), "reward_weights": list(plan.config.reward_weights)}
        say(_judge_plan(judge, charter, reward_cfg, plan.config))
        scorer = JudgeSide(judge)
    if watch is not None:
        say(watch.plan(examples, run.out, plan.config, scorer))
    try:
        with run.undo_unless_started():
            if scorer is not None and gate is not None and gate.gold is not None:
                from ..judge.checks import GATE_FILE, run_check

                run_check(scorer.gold_judged(plan.config.reward_weights), gate.gold, gate.floors(), run.out / GATE_FILE, "train-policy", opts.progress)
            with trl_errors():
                if algo is Algo.dpo:
                    trainer = _dpo_trainer(plan, data, soft)
                elif scorer is not None:
                    trainer = _judge_trainer(algo, plan, data, scorer, run.out)
                else:
                    trainer = _online_trainer(algo, plan, data, reward_model)
            if watch is not None:
                trainer.add_callback(watch.callback(trainer))
            result = run_training(trainer, run, plan.base, plan.lora, "causal", record, opts.progress)
    finally:
        if scorer is not None:
            scorer.close()
        if watch is not None:
            watch.close()
    if not result.get("skipped"):
        say(f"train-policy: {result['steps']} steps, loss {result['train_loss']:.4f}, {result['seconds']:.1f}s; model in {run.out}")
    return result


def _judge_setup(options: JudgeRewardOptions, constitution: str | None) -> Judging:
    """The judge's engine, the constitution and what the judge asks, checked before anything loads."""
    from ..constitution import load_constitution
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized
    from ..judge.reward_config import reward_names

    engine = options.engine.engine_options(in_trainer=True)
    # A document's passages sized for the judge's model, as `cai score --reward judge` sizes them: the same rewards.
    charter = sized(load_constitution(constitution), budget_for(engine.model, engine.vllm.max_model_len))
    reward_names(charter)  # a constitution without comparison questions stops here
    if engine.engine == EngineName.openai and not engine.server.base_url:
        raise CaiError("--judge-engine openai needs --judge-base-url URL (the server the judge runs on)")
    return Judging(engine, charter, options.reward_config(), options.reward_weights)


def _judge_identity(judge: Judging, charter: Constitution, cfg: JudgeRewardConfig) -> dict:
    """What scores the samples, for the record's fingerprint: the judge's model, engine, constitution and questions."""
    from ..judge.reward_config import reward_names
    from ..resume import model_identity

    return {"model": model_identity(judge.engine.engine, judge.engine.model, judge.engine.server.base_url), "engine": judge.engine.engine,
            "dtype": judge.engine.dtype.value, "constitution": {"name": charter.name, "hash": charter.hash}, "rewards": reward_names(charter),
            **cfg.settings()}


def _check_weights(config, charter: Constitution) -> None:
    from ..judge.reward_config import reward_names

    names = reward_names(charter)
    weights = list(config.reward_weights or [])
    if len(weights) != len(names):
        raise CaiError(f"reward_weights: {len(weights)} weights for {len(names)} rewards; give one per reward, in this order: {', '.join(names)}")


def prompts_per_step(config) -> int:
    """How many distinct prompts one step of GRPO or RLOO samples: its generation batch (--batch-size x gradient
    accumulation x processes completions) shared out as --num-generations completions per prompt. trl's sampler drops
    a last group smaller than this, so with fewer prompts no step is ever formed."""
    return max(1, int(config.generation_batch_size) // max(1, int(config.num_generations)))


def _check_enough_prompts(algo: Algo, config, prompts: int) -> None:
    """Before any model loads: at least one step's worth of prompts (fewer would train nothing, silently)."""
    need = prompts_per_step(config)
    if prompts < need:
        raise CaiError(
            f"train-policy: {prompts} prompt{'s' if prompts != 1 else ''}, fewer than one {algo.value} step takes: {need} prompts x "
            f"{config.num_generations} completions (--batch-size {config.per_device_train_batch_size} x gradient accumulation "
            f"{config.gradient_accumulation_steps} x {config.world_size} processes / --num-generations {config.num_generations}); "
            f"give at least {need} prompts, or lower --batch-size"
        )


def _judge_plan(judge: Judging, charter: Constitution, cfg: JudgeRewardConfig, config) -> str:
    """One line on stderr: who judges, the rewards and their weights, and what a step costs."""
    from ..judge.reward_config import reward_names, tier_pools

    g = int(config.num_generations)
    b = int(config.per_device_train_batch_size) * int(config.gradient_accumulation_steps) * int(config.world_size) // max(1, g) or 1
    k = sum(min(cfg.principles or len(pool), len(pool)) for _, pool in tier_pools(charter))
    per_group = {RewardMode.group: g * (g - 1) * k, RewardMode.reference: 2 * g * k, RewardMode.pointwise: 2 * g * k}[cfg.mode] + 2 * g * len(charter.hard_constraints)
    where = f"at {', '.join(judge.engine.server.base_url)}" if judge.engine.server.base_url else "in this process"
    rewards = ", ".join(f"{n} x{w:g}" for n, w in zip(reward_names(charter), config.reward_weights))
    return (f"train-policy: the judge ({judge.engine.model or 'the embedded model'} on {judge.engine.engine}, {where}) scores every "
            f"completion by {charter.name}: {rewards}; {cfg.mode.value} mode, {k} questions per comparison: at most "
            f"{per_group * b} scored prompts per step ({b} prompt{'s' if b != 1 else ''} x {g} completions; repeats come from the cache)")


def _reference_check(field_name: str):
    def check(row: dict) -> None:
        check_conversation(row)
        if field_name not in row:
            raise FieldProblem(field_name, f"missing: --reward-mode reference compares each completion with the row's reference answer "
                                           f"(--reference-field {field_name})")
        check_string(row, field_name, "the reference answer")

    return check


def _reference_example(field_name: str):
    return lambda row: {"prompt": conversation(row), field_name: row[field_name]}


def _judge_trainer(algo: Algo, plan, data, scorer: JudgeSide, out: Path):
    """GRPO or RLOO with the judge's rewards as the trainer's reward functions (the judge's engine starts here, unless
    the gold measurement started it)."""
    from .judge_reward import JudgeRewards, samples_callback

    online_cls: Any
    if algo is Algo.grpo:
        from trl import GRPOTrainer as online_cls
    else:
        from trl import RLOOTrainer as online_cls
    cfg = scorer.judging.cfg
    rewards = JudgeRewards(scorer.reward(), int(plan.config.num_generations), plan.config.reward_weights, out,
                           cfg.reference_field if cfg.mode is RewardMode.reference else None, describe=f"the judge ({scorer.where()})")
    trainer = online_cls(model=plan.base, reward_funcs=rewards.functions(), args=plan.config, train_dataset=data, peft_config=plan.peft)
    trainer.add_callback(samples_callback(out))
    return trainer


def _reward_identity(reward_model: str | None) -> dict:
    """What scores the samples, for the record's fingerprint: the reward model folder's identity."""
    from pathlib import Path

    from ..resume import folder_identity

    return {"model": folder_identity(Path(reward_model))} if reward_model else {}


def _dpo_trainer(plan, data, soft: bool):
    from trl import DPOTrainer

    trainer_cls: Any = DPOTrainer
    if soft:
        from .dpo import SoftDPOTrainer

        trainer_cls = SoftDPOTrainer
    return trainer_cls(model=plan.base, args=plan.config, train_dataset=data, peft_config=plan.peft)


def _online_trainer(algo: Algo, plan, data, reward_model: str | None):
    """GRPO or RLOO with the reward model as the trainer's reward function."""
    online_cls: Any
    if algo is Algo.grpo:
        from trl import GRPOTrainer as online_cls
    else:
        from trl import RLOOTrainer as online_cls
    assert reward_model is not None  # checked before anything loads
    scorer, scorer_tok = load_reward_model(reward_model)
    return online_cls(model=plan.base, reward_funcs=scorer, args=plan.config, train_dataset=data,
                      reward_processing_classes=scorer_tok, peft_config=plan.peft)
