"""train-policy: DPO from labelled pairs, or GRPO / RLOO against a reward model from `cai train-rm`."""

from __future__ import annotations

from enum import Enum
from typing import Any

from ..errors import CaiError, choice
from ..models import load_reward_model, quiet_libraries, reward_model_error
from ..rows import check_conversation
from ..training_examples import check_pref, pref_example, prompt_example
from .common import (
    TrainOptions,
    prepare_output,
    say,
    setup,
    trl_errors,
)
from .data import load_examples
from .record import data_identity
from .run import already_done, run_training, start


class Algo(str, Enum):
    """--algo: dpo learns from labelled pairs; grpo and rloo sample, score with a reward model, improve. (No ppo: trl
    has no PPO trainer.)"""

    dpo = "dpo"
    grpo = "grpo"
    rloo = "rloo"


# trl's GRPO default beta is 0: no KL term, nothing holding the policy near where it started while it climbs a
# learned (and exploitable) reward. RL-CAI keeps a KL penalty, so cai does too unless --beta says otherwise.
GRPO_BETA = 0.04


def train_policy(
    opts: TrainOptions,
    rows: str,
    algo: str,
    reward_model: str | None = None,
    beta: float | None = None,
    num_generations: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    soft: bool = True,
) -> dict:
    if algo == "ppo":
        raise CaiError("--algo ppo: trl 1.16 offers no PPO trainer (not even in trl.experimental); use grpo or rloo with --reward-model, or dpo")
    algo = choice(Algo, algo, "--algo").value
    online = algo != "dpo"
    if online and not soft:
        raise CaiError(f"--hard is for --algo dpo (labelled pairs); {algo} learns from --reward-model scores")
    if online:
        if reward_model is None:
            raise CaiError(f"--algo {algo} needs --reward-model DIR (a folder from `cai train-rm`)")
        problem = reward_model_error(reward_model)
        if problem:
            raise CaiError(problem)
        if opts.max_length is not None:
            raise CaiError(f"--max-length applies to dpo; for {algo} use --max-tokens (tokens per sampled completion)")
    else:
        if reward_model is not None:
            raise CaiError("--reward-model is for --algo grpo or rloo; dpo learns from the labelled pairs directly")
        if num_generations is not None or max_tokens is not None or temperature is not None:
            raise CaiError("--num-generations, --max-tokens and --temperature are for --algo grpo or rloo (dpo samples nothing)")
    prepare_output(opts.output)
    if online:
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
    if algo == "dpo":
        from trl import DPOConfig

        plan = setup("dpo", opts, DPOConfig, "CAUSAL_LM", "train-policy")
        if soft:
            from .dpo import unsupported

            problem = unsupported(plan.config)
            if problem:
                raise CaiError(f"--config asks for {problem}: soft labels train DPO's sigmoid loss only; add --hard for trl's own loss")
    else:
        config_cls: Any
        if algo == "grpo":
            from trl import GRPOConfig as config_cls

            defaults = {"beta": GRPO_BETA}
        else:
            from trl import RLOOConfig as config_cls

            defaults = {}
        plan = setup(algo, opts, config_cls, "CAUSAL_LM", "train-policy", defaults)
        if plan.config.temperature == 0:
            raise CaiError(f"--temperature 0: {algo} learns by comparing several samples of each prompt, and greedy decoding "
                           "makes them all the same, so nothing would be learned; give a temperature above 0 (trl's default is 1.0)")
    settings: dict[str, Any] = {"algo": algo}
    if algo == "dpo":
        settings["soft_labels"] = soft
    else:
        settings["reward"] = _reward_identity(reward_model)
    run = start("train-policy", opts, plan, settings, {"input": data_identity(rows, examples)})
    if run.nothing_to_do:
        return already_done(run)
    labels = ("; soft labels (conservative DPO, label smoothing 1 - p_chosen per pair)" if soft else "; hard labels (plain DPO)") if algo == "dpo" else ""
    say(f"train-policy: {algo} on {len(examples)} {'pairs' if algo == 'dpo' else 'prompts'}, beta {plan.config.beta}{labels}")
    record = {"input": rows, "algo": algo, "examples": len(examples), "beta": plan.config.beta, "reward_model": reward_model}
    if algo == "dpo":
        record["soft_labels"] = soft
    with run.undo_unless_started():
        with trl_errors():
            trainer = _dpo_trainer(plan, data, soft) if algo == "dpo" else _online_trainer(algo, plan, data, reward_model)
        result = run_training(trainer, run, plan.base, plan.lora, "causal", record, opts.progress)
    if not result.get("skipped"):
        say(f"train-policy: {result['steps']} steps, loss {result['train_loss']:.4f}, {result['seconds']:.1f}s; model in {run.out}")
    return result


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


def _online_trainer(algo: str, plan, data, reward_model: str | None):
    """GRPO or RLOO with the reward model as the trainer's reward function."""
    online_cls: Any
    if algo == "grpo":
        from trl import GRPOTrainer as online_cls
    else:
        from trl import RLOOTrainer as online_cls
    assert reward_model is not None  # checked before anything loads
    scorer, scorer_tok = load_reward_model(reward_model)
    return online_cls(model=plan.base, reward_funcs=scorer, args=plan.config, train_dataset=data,
                      reward_processing_classes=scorer_tok, peft_config=plan.peft)
