"""The transformers engine's option scoring (score_options): log P(option | prompt) from forward passes only, no
decoding; single-token options read at each prompt's last position, prompts packed by shared prefix (packing.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import option_continuation

# At most this many attention-mask entries per scoring batch (256 MB in float32).
MASK_ELEMENTS = 1 << 26


class OptionScoring:
    """score_options for TransformersEngine, which holds what it reads: torch, the model (lm), tokenizer, device, dtype,
    batch_size and whether prompts may be packed (_can_pack, _pack_window, _plain_head)."""

    # Longest packed row for option scoring: long enough to hold a comparison's prompts, short enough that
    # attention over the packed row (computed densely under a custom mask) stays cheap next to the MLPs.
    packed_row_tokens = 512
    torch: Any
    lm: Any
    tokenizer: Any
    device: str
    dtype: Any
    batch_size: int
    _can_pack: bool
    _pack_window: int | None
    _plain_head: bool

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """log P(option | prompt) for every prompt x option, from forward passes only.

        An option's tokens are the ones the model would write after the prompt: those of prompt + option
        after the prompt's own (SentencePiece tokenizers turn "A" alone into "▁A", not the "A" after "(").
        """
        torch = self.torch
        pairs = self._option_tokens(prompts, options)
        # One token per option after one context shared by a prompt's options: one forward pass reads them all.
        if all(len({len(context) for context, _ in row}) == 1 and all(len(ids) == 1 for _, ids in row) for row in pairs):
            return self._score_next_token([row[0][0] for row in pairs], [[ids[0] for _, ids in row] for row in pairs])
        flat = [pair for row in pairs for pair in row]
        tok = self.tokenizer
        scores: list[float] = []
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start : start + self.batch_size]
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

    def _option_tokens(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[tuple[list[int], list[int]]]]:
        """Per prompt, per option: (context tokens, option tokens) from tokenising prompt + option together.

        The context is the prompt's tokens up to where prompt + option first differs from them: all of
        them unless the option merges with the prompt's last token, in which case the merged token is scored
        as part of the option.
        """
        tok = self.tokenizer
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        joined = tok([p + o for p in prompts for o in options], add_special_tokens=False)["input_ids"]
        pairs = []
        for i, prompt_ids in enumerate(encoded):
            row = []
            for j in range(len(options)):
                row.append(option_continuation(prompt_ids, joined[i * len(options) + j], options[j]))
            pairs.append(row)
        return pairs

    def _score_next_token(self, encoded: list[list[int]], option_ids: list[list[int]]) -> list[list[float]]:
        """Single-token options ("A"/"B"): one forward pass, reading each prompt's last position only.

        Prompts are packed by shared prefix (see engines/packing.py): the two orders of a comparison,
        its K principles and the comparisons of one conversation share most of their tokens, and
        those go through the model once. option_ids: per prompt, each option's token.
        """
        from .packing import pack_shared_prefixes

        longest = max((len(e) for e in encoded), default=0)
        packs = self._can_pack and (self._pack_window is None or longest <= self._pack_window)
        packed = pack_shared_prefixes(encoded, self.packed_row_tokens if packs else 0)  # 0: every prompt alone
        packed.sort(key=lambda row: len(row.tokens))
        results: list[list[float]] = [[] for _ in encoded]
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

    def _score_packed(self, rows: list, option_ids: list[list[int]]):
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
            for path, first_new in zip(row.paths, row.first_new) if allowed is not None else ():
                cols = torch.tensor(path) + pad
                # A token at depth d sees its own path up to depth d, and nothing of other branches.
                allowed[b][cols[first_new:, None], cols[None, :]] = torch.ones(len(path), len(path), dtype=torch.bool).tril()[first_new:]  # type: ignore[index]  # only entered when allowed is set
            ends += [(b, i, col + pad) for i, col in row.ends()]
        if allowed is not None:
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
            logprobs = torch.log_softmax(picked, dim=-1)
            wanted = torch.tensor([option_ids[i] for _, i, _ in ends], device=logprobs.device)
            picked_lp = logprobs.gather(-1, wanted).tolist()
        return [(i, lp) for (_, i, _), lp in zip(ends, picked_lp)]
