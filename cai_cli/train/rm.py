"""train-rm: a reward model on chosen/rejected pairs with trl's RewardTrainer, trained on the soft labels.

The soft label p = preference.p_chosen is the judge's probability that `chosen` is better. RewardTrainer's loss,
-log σ(r_c − r_r), treats every pair as certain; SoftRewardTrainer uses the Bradley–Terry cross-entropy against p,

    loss = −[ p · log σ(r_c − r_r) + (1 − p) · log σ(r_r − r_c) ],

whose minimum sits at σ(r_c − r_r) = p: a 0.55 pair asks for a small reward gap, a 0.95 pair for a large one, and a
0.5 pair for none. With p = 1 it is exactly trl's loss.
"""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn.functional as F
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from ..errors import CaiError
from ..model_specs import quiet_libraries
from ..trl_examples import check_pref, pref_example
from .common import (
    TrainOptions,
    prepare_output,
    say,
    setup,
    trl_errors,
)
from .dataset import EVAL_FRACTION, load_examples, split_by_prompt
from .record import data_identity
from .run import already_done, run_training, start


class SoftPreferenceCollator(DataCollatorForPreference):
    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["p_chosen"] = torch.tensor([float(e.get("p_chosen", 1.0)) for e in examples], dtype=torch.float)
        return batch


class SoftRewardTrainer(RewardTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # trl's collator drops every column but the token ids (and `margin`); this one carries p_chosen too.
        self.data_collator = SoftPreferenceCollator(
            pad_token_id=self.data_collator.pad_token_id, pad_to_multiple_of=self.data_collator.pad_to_multiple_of
        )

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "p_chosen"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        p = inputs.pop("p_chosen")
        # The parent does the forward pass and logs accuracy/margins; only the loss is replaced.
        _, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        gap = (chosen - rejected).float()
        p = p.to(gap.device)
        loss = -(p * F.logsigmoid(gap) + (1 - p) * F.logsigmoid(-gap)).mean()
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * torch.mean((chosen + rejected) ** 2)
        return (loss, outputs) if return_outputs else loss


def train_rm(opts: TrainOptions, prefs: str, eval_fraction: float = EVAL_FRACTION, soft: bool = True) -> dict:
    if not 0.0 <= eval_fraction < 1.0:
        raise CaiError(f"--eval-fraction: expected 0 <= F < 1, got {eval_fraction}")
    out = prepare_output(opts.output)
    examples = load_examples(prefs, check_pref, pref_example)
    if not soft:
        for e in examples:
            e["p_chosen"] = 1.0
    quiet_libraries()
    from datasets import Dataset
    from trl import RewardConfig

    plan = setup("rm", opts, RewardConfig, "SEQ_CLS", "train-rm")
    run = start("train-rm", opts, plan, {"eval_fraction": eval_fraction, "soft_labels": soft}, {"input": data_identity(prefs, examples)})
    if run.nothing_to_do:
        return already_done(run)
    train_idx, held_idx = split_by_prompt(examples, eval_fraction, plan.config.seed)
    train = Dataset.from_list([examples[i] for i in train_idx])
    held = Dataset.from_list([examples[i] for i in held_idx]) if held_idx else None
    prompts = len({json.dumps(e["prompt"], sort_keys=True) for e in examples})
    held_prompts = len({json.dumps(examples[i]["prompt"], sort_keys=True) for i in held_idx})
    say(f"train-rm: {len(train)} pairs to train, {len(held_idx)} held out ({held_prompts} of {prompts} prompts, every pair of a "
        f"prompt on one side); {'soft' if soft else 'hard'} labels")
    if eval_fraction > 0 and not held_idx:
        say("train-rm: all pairs answer one prompt, so none can be held out without testing on trained prompts; no held-out accuracy")
    record = {"input": prefs, "pairs": len(examples), "held_out": len(held_idx), "held_out_prompts": held_prompts, "soft_labels": soft}
    with run.undo_unless_started():
        with trl_errors():
            trainer = SoftRewardTrainer(
                model=plan.base, args=plan.config, train_dataset=train, eval_dataset=held, peft_config=plan.peft
            )
        # What trl kept after dropping pairs longer than max_length (typed loosely by trl: a Dataset here).
        kept_train: Any = trainer.train_dataset
        kept_held: Any = trainer.eval_dataset
        dropped = len(train) - len(kept_train)
        if dropped == len(train):
            raise CaiError(f"train-rm: every one of the {len(train)} pairs is longer than max_length {plan.config.max_length}, "
                           "so nothing is left to train on; raise --max-length")
        if dropped:
            say(f"train-rm: {dropped} pairs longer than max_length {plan.config.max_length} were left out (raise --max-length to keep them)")

        def held_out_accuracy() -> dict:
            if held is None or not len(kept_held):
                return {}
            metrics = trainer.evaluate()
            acc, loss = metrics.get("eval_accuracy"), metrics.get("eval_loss")
            say(f"train-rm: held-out accuracy {acc:.3f} on {len(kept_held)} pairs (reward of chosen > rejected), loss {loss:.4f}")
            return {"eval_accuracy": acc, "eval_loss": loss}

        result = run_training(trainer, run, plan.base, plan.lora, "reward", record, opts.progress, evaluate=held_out_accuracy)
    if not result.get("skipped"):
        say(f"train-rm: {result['steps']} steps, loss {result['train_loss']:.4f}, {result['seconds']:.1f}s; reward model in {out}")
    return result
