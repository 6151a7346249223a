"""score: a reward model from `cai train-rm` scores each row's reply, candidates, or chosen/rejected pair.

Each text is scored alone, unpadded, so a score is the same whatever --batch-size (which sets only how many rows go
to the side file at a time) and whatever rows share its batch."""

from __future__ import annotations

from typing import Any

from ..errors import ModelError, RowFailure
from ..rows import FieldProblem, check_conversation, conversation, set_meta
from ..runner import StageStats
from ..training_examples import pref_example


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


class Score:
    name = "score"

    def __init__(self, reward_model: str, dtype: str = "auto"):
        from ..models import reward_model_error

        problem = reward_model_error(reward_model)
        if problem:
            raise ModelError(problem)
        self.path = reward_model
        self.dtype = dtype
        self.model: Any = None
        self.stats = StageStats(extra={"scored": 0})

    def settings(self) -> dict:
        from pathlib import Path

        from ..resume import folder_identity

        return {"reward_model": folder_identity(Path(self.path)), "dtype": self.dtype}

    def check(self, row: dict) -> None:
        _targets(row)

    def start(self) -> None:
        if self.model is not None:
            return
        import torch

        from ..engines.hf import pick_dtype
        from ..models import load_reward_model, quiet_libraries

        quiet_libraries()

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_reward_model(self.path)
        self.model.to(self.device, pick_dtype(torch, self.device, self.dtype)).eval()
        self.limit = getattr(self.model.config, "max_position_embeddings", None)

    def _render(self, messages: list[dict]) -> str:
        # The same rendering trl's RewardTrainer trained on: the chat template, no extra special tokens.
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def check_loaded(self, row: dict) -> None:
        if not self.limit:
            return
        for name, convs in _targets(row).items():
            for conv in convs:
                used = len(self.tokenizer(self._render(conv), add_special_tokens=False)["input_ids"])
                if used > self.limit:
                    raise RowFailure(f"{used} tokens, longer than the reward model's context of {self.limit}", field=name)

    def _scores(self, texts: list[str]) -> list[float]:
        """One forward pass per text, unpadded: a text's score depends on that text alone, never on --batch-size or on
        the texts beside it (padding and batched matrix products change the last digits; see docs/design.md)."""
        torch = self.torch
        scores: list[float] = []
        for text in texts:
            enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
            self.stats.tokens_in += int(enc["input_ids"].shape[1])
            with torch.inference_mode():
                logits = self.model(**enc.to(self.device)).logits
            scores.append(float(logits[0, 0].float().cpu()))
        return scores

    def process(self, rows: list[dict]) -> list[dict | RowFailure]:
        plan = [(i, name, self._render(conv)) for i, row in enumerate(rows) for name, convs in _targets(row).items() for conv in convs]
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
