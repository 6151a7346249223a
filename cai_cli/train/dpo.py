"""DPO on the soft labels: conservative DPO with a label smoothing of its own for every pair.

`preference.p_chosen` = p is the judge's probability that `chosen` is better. Conservative DPO (cDPO, Mitchell 2023)
reads a pair as flipped with probability ε; with ε = 1 − p per pair the loss is the cross-entropy of the implicit
reward gap against the judge's probability, the same soft Bradley–Terry loss train-rm uses:

    Δ = (log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))
    loss = −[ p · log σ(βΔ) + (1 − p) · log σ(−βΔ) ]

Its minimum sits at σ(βΔ) = p: a 0.95 pair asks for a large gap, a 0.5 pair for none (its gradient is zero where the
policy equals the reference), and p = 1 is exactly DPO's sigmoid loss.

trl 1.16's DPOTrainer has one global `label_smoothing`, and only its "robust" and "aot" losses read it (the
"sigmoid" loss no longer does), so SoftDPOTrainer replaces `_compute_loss` for the sigmoid loss: the same forward
passes as trl (its fused log-prob head, its reference handling under LoRA or precomputed log-probs), then the loss
above, logging trl's reward metrics. Options of trl's loss it does not implement (other loss types, f-divergences,
`ld_alpha`, WPO weighting, a global `label_smoothing`) are refused: `--hard` runs trl's own loss with them.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

_NOT_MODEL_INPUTS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", "p_chosen"}


def unsupported(config) -> str | None:
    """Why CONFIG asks for a DPO loss SoftDPOTrainer does not compute, or None."""
    loss_types = config.loss_type if isinstance(config.loss_type, list) else [config.loss_type]
    if loss_types != ["sigmoid"]:
        return f"loss_type {loss_types}"
    if config.f_divergence_type != "reverse_kl":
        return f"f_divergence_type {config.f_divergence_type}"
    if config.ld_alpha is not None:
        return "ld_alpha"
    if config.use_weighting:
        return "use_weighting"
    if config.label_smoothing:
        return "a global label_smoothing (each pair's comes from its p_chosen)"
    return None


@dataclasses.dataclass
class SoftPreferenceCollator(DataCollatorForPreference):
    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["p_chosen"] = torch.tensor([float(e.get("p_chosen", 1.0)) for e in examples], dtype=torch.float)
        return batch


def soft_dpo_loss(delta: torch.Tensor, p_chosen: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair cDPO loss with label smoothing 1 − p_chosen (see the module docstring)."""
    z = beta * delta.float()
    p = p_chosen.to(z.device, z.dtype)
    return -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))


class SoftDPOTrainer(DPOTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # trl's collator keeps only the token ids (and precomputed reference log-probs); this one carries p_chosen.
        old = self.data_collator
        self.data_collator = SoftPreferenceCollator(**{f.name: getattr(old, f.name) for f in dataclasses.fields(old)})

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "p_chosen" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "p_chosen"]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != "p_chosen"})

    def _logps(self, outputs, completion_mask) -> torch.Tensor:
        # The fused head gives each token's log-prob (0 where the label is -100); PEFT prompt tuning prepends
        # virtual tokens, so keep the positions of the real ones, as trl does.
        return outputs.log_probs[:, -(completion_mask.size(1) - 1):].sum(dim=1)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        p_chosen = inputs["p_chosen"]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NOT_MODEL_INPUTS}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        chosen_logps, rejected_logps = self._logps(outputs, completion_mask).chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            # Under LoRA with no reference model trl's helper switches the adapter off: the base is the reference.
            reference = self.ref_model if self.ref_model is not None else self.model
            ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(reference, inputs)
        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        loss = soft_dpo_loss(chosen_logratios - rejected_logratios, p_chosen, self.beta).mean()
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss

        # trl's reward metrics, under trl's names (the progress line and metrics.jsonl read them).
        gather = self.accelerator.gather_for_metrics
        chosen_rewards = self.beta * chosen_logratios.detach()
        rejected_rewards = self.beta * rejected_logratios.detach()
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        metrics["p_chosen"].append(gather(p_chosen.float()).mean().item())
        if return_outputs:  # evaluation with logits, as trl does it: the fused head builds none, so one more pass
            with torch.no_grad():
                outputs = model(**model_kwargs)
        return (loss, outputs) if return_outputs else loss
