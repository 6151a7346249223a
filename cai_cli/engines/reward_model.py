"""A reward model from `cai train-rm` (a one-score sequence classifier) on this machine's device. Each text is scored
alone, unpadded, so its score depends on that text only, never on which texts share a batch (padding and batched
matrix products change the last digits)."""

from __future__ import annotations

from typing import Any


class RewardModel:
    name = "reward-model"

    def __init__(self, path: str, dtype: str = "auto"):
        import torch

        from ..model_specs import load_reward_model, quiet_libraries
        from .hf import pick_dtype

        quiet_libraries()
        self.path = path
        self.torch: Any = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_reward_model(path)
        self.model.to(self.device, pick_dtype(torch, self.device, dtype)).eval()
        value = getattr(self.model.config, "max_position_embeddings", None)
        self.max_context: int | None = int(value) if value else None

    def render(self, messages: list[dict]) -> str:
        return reward_text(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, text: str) -> tuple[float, int]:
        """(the score, the tokens read): one forward pass over TEXT alone."""
        return reward_score(self.model, self.tokenizer, text, self.device)

    def close(self) -> None:
        self.model = None


def reward_text(tokenizer, messages: list[dict]) -> str:
    """The same rendering trl's RewardTrainer trained on: the chat template, no extra special tokens."""
    return tokenizer.apply_chat_template(messages, tokenize=False)


def reward_score(model, tokenizer, text: str, device: str) -> tuple[float, int]:
    """(MODEL's score of TEXT, the tokens read): one forward pass over TEXT alone, on DEVICE (the train-policy monitor
    scores with the trainer's own reward model, already loaded)."""
    import torch

    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logits = model(**enc.to(device)).logits
    return float(logits[0, 0].float().cpu()), int(enc["input_ids"].shape[1])
