"""The transformers back end: batched, left-padded generation and option scoring, on CPU or GPU."""

from __future__ import annotations

import inspect
from typing import Sequence

from ..errors import ModelError
from .base import Completion, Conversation, Sampling, render_with_tokenizer, seeds_or_default


def pick_dtype(torch, device: str, requested: str = "auto"):
    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Without native bfloat16 (most laptop CPUs) reduced precision is several times slower.
    return torch.float32


# At most this many attention-mask entries per scoring batch (256 MB in float32).
MASK_ELEMENTS = 1 << 26


class TransformersEngine:
    name = "transformers"

    # Longest packed row for option scoring: long enough to hold a comparison's prompts, short enough that
    # attention over the packed row (computed densely under a custom mask) stays cheap next to the MLPs.
    packed_row_tokens = 512

    def __init__(self, model: str, *, batch_size: int = 16, dtype: str = "auto", device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.model = model
        self.batch_size = max(1, batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = pick_dtype(torch, self.device, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model}: cannot load ({str(exc).splitlines()[0]})") from exc
        self.lm.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self._eos_ids = self._stop_token_ids()
        config = self.lm.config
        # Models that scale or cap their logits after the projection need the full forward to do it.
        self._plain_head = not any(getattr(config, a, None) for a in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        # Packing sets positions and a custom mask itself: models that take no position_ids (ALiBi) cannot be
        # told the positions, and a sliding window would not be applied to the custom mask.
        self._pack_window = getattr(config, "sliding_window", None) or None
        self._can_pack = "position_ids" in inspect.signature(self.lm.forward).parameters

    def _stop_token_ids(self) -> list[int]:
        ids = set()
        gen_eos = getattr(self.lm.generation_config, "eos_token_id", None)
        for value in (self.tokenizer.eos_token_id, gen_eos):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
        return sorted(ids)

    @property
    def max_context(self) -> int | None:
        value = getattr(self.lm.config, "max_position_embeddings", None)
        return int(value) if value else None

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        return render_with_tokenizer(self.tokenizer, conversation, add_generation_prompt)

    def count_tokens(self, conversation: Conversation) -> int:
        return len(self.tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        texts = [self.render_chat(c) for c in conversations]
        results: list[Completion | None] = [None] * len(texts)
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        per_batch = max(1, self.batch_size // max(1, sampling.n))
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            # TODO(per-row seeds): sampling here still depends on the batch; the first row's seed seeds it.
            batch = self._generate([texts[i] for i in idx], sampling, seed=seeds_or_default(seeds, sampling, len(texts))[idx[0]])
            for i, completion in zip(idx, batch):
                results[i] = completion
        return results  # type: ignore[return-value]

    def _generate(self, texts: list[str], sampling: Sampling, seed: int) -> list[Completion]:
        torch = self.torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        do_sample = sampling.temperature > 0
        kwargs = dict(
            max_new_tokens=sampling.max_tokens,
            do_sample=do_sample,
            num_return_sequences=sampling.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_ids or None,
        )
        if do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        new = out[:, prompt_len:]
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        completions = []
        for j, count in enumerate(prompt_counts):
            replies, reasons, produced = [], [], 0
            for k in range(sampling.n):
                ids = new[j * sampling.n + k].tolist()
                cut = next((p for p, t in enumerate(ids) if t in self._eos_ids or t == self.tokenizer.pad_token_id), len(ids))
                produced += cut
                text = self.tokenizer.decode(ids[:cut], skip_special_tokens=True)
                reply = _cut_at_stop(text, sampling.stop)
                ended = cut < len(ids) or reply != text
                reasons.append("stop" if ended or cut < sampling.max_tokens else "length")
                replies.append(reply)
            completions.append(Completion(replies, prompt_tokens=int(count), completion_tokens=produced, finish_reasons=reasons))
        return completions

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """log P(option | prompt) for every prompt x option, from forward passes only."""
        torch = self.torch
        tok = self.tokenizer
        option_ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
        if all(len(ids) == 1 for ids in option_ids):
            return self._score_next_token(prompts, [ids[0] for ids in option_ids])
        pairs = []
        for p in prompts:
            prompt_ids = tok(p, add_special_tokens=False)["input_ids"]
            for ids in option_ids:
                pairs.append((prompt_ids, ids))
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            width = max(len(p) + len(o) for p, o in chunk)
            input_ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (p, o) in enumerate(chunk):
                seq = p + o
                input_ids[row, width - len(seq) :] = torch.tensor(seq)
                mask[row, width - len(seq) :] = 1
            with torch.inference_mode():
                logits = self.lm(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:].to(self.device)
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row, (_, o) in enumerate(chunk):
                scores.append(float(token_lp[row, width - 1 - len(o) :].sum()))
        n = len(options)
        return [scores[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _score_next_token(self, prompts: Sequence[str], option_ids: list[int]) -> list[list[float]]:
        """Single-token options ("A"/"B"): one forward pass, reading each prompt's last position only.

        Prompts are packed by shared prefix (see engines/packing.py): the two orders of a comparison,
        its K principles and the comparisons of one conversation share most of their tokens, and
        those go through the model once.
        """
        from .packing import pack_shared_prefixes

        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        longest = max((len(e) for e in encoded), default=0)
        packs = self._can_pack and (self._pack_window is None or longest <= self._pack_window)
        packed = pack_shared_prefixes(encoded, self.packed_row_tokens if packs else 0)  # 0: every prompt alone
        packed.sort(key=lambda row: len(row.tokens))
        results: list[list[float]] = [[] for _ in prompts]
        batch: list = []
        for row in packed + [None]:
            if batch and (
                row is None
                or sum(len(r.members) for r in batch) + len(row.members) > self.batch_size
                # The custom mask is rows x width^2: long prompts batch fewer rows (rows come shortest first).
                or (len(batch) + 1) * len(row.tokens) ** 2 > MASK_ELEMENTS
            ):
                for i, logprobs in self._score_packed(batch, option_ids):
                    results[i] = logprobs
                batch = []
            if row is not None:
                batch.append(row)
        return results

    def _score_packed(self, rows: list, option_ids: list[int]):
        torch = self.torch
        width = max(len(r.tokens) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        shared = any(len(r.members) > 1 for r in rows)
        # Left-padded; pads see only themselves, so no attention row is empty (an empty one is NaN).
        allowed = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1) if shared else None
        padding = torch.zeros((len(rows), width), dtype=torch.long)
        ends = []
        for b, row in enumerate(rows):
            pad = width - len(row.tokens)
            input_ids[b, pad:] = torch.tensor(row.tokens)
            positions[b, pad:] = torch.tensor(row.positions)
            padding[b, pad:] = 1
            for path, first_new in zip(row.paths, row.first_new) if shared else ():
                cols = torch.tensor(path) + pad
                # A token at depth d sees its own path up to depth d, and nothing of other branches.
                allowed[b][cols[first_new:, None], cols[None, :]] = torch.ones(len(path), len(path), dtype=torch.bool).tril()[first_new:]
            ends += [(b, i, col + pad) for i, col in row.ends()]
        if shared:
            mask = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill_(~allowed, torch.finfo(self.dtype).min)[:, None]
        else:
            mask = padding  # plain prompts: the model's own causal mask (and its fastest attention kernel)
        rows_at, cols_at = [b for b, _, _ in ends], [col for _, _, col in ends]
        with torch.inference_mode():
            inputs = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
            if self._can_pack:
                inputs["position_ids"] = positions.to(self.device)
            if self._plain_head:
                # Only the prompts' last positions go through the vocabulary projection.
                hidden = self.lm.get_decoder()(**inputs).last_hidden_state[rows_at, cols_at]
                picked = self.lm.get_output_embeddings()(hidden).float()
            else:
                keep = sorted(set(cols_at))
                logits = self.lm(**inputs, logits_to_keep=torch.tensor(keep, device=self.device)).logits
                picked = logits[rows_at, [keep.index(c) for c in cols_at]].float()
            logprobs = torch.log_softmax(picked, dim=-1)[:, option_ids].tolist()
        return [(i, lp) for (_, i, _), lp in zip(ends, logprobs)]

    def complete(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        """Continue each text as it is, with no chat template: the judge's plain (paper) format with --cot."""
        texts = list(prompts)
        results: list[Completion | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        per_batch = max(1, self.batch_size // max(1, sampling.n))
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            batch = self._generate([texts[i] for i in idx], sampling, seed=seeds_or_default(seeds, sampling, len(texts))[idx[0]])
            for i, completion in zip(idx, batch):
                results[i] = completion
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.lm = None
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        pos = text.find(s)
        if pos >= 0:
            text = text[:pos]
    return text

