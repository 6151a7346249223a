"""Detector v4's classifier: what the embedded model makes of a reply's opening, read by a small logistic head.

A reply is framed as the assistant's turn of the embedded model's chat template (`<|im_start|>assistant\\n`, then
the reply; the request is not shown: on the dev split it did not help), cut to its first tokens (refusals are said
first), and run through the first layers of the embedded model (SmolLM2-135M-Instruct, `cai_cli.model_specs`): no
other weights. The hidden states of the reply's tokens, pooled (their mean, or the last one's), are the features.
A causal model's state at a position depends only on the tokens before it, so one pass at the longest cut-off gives
every shorter one exactly: `bench/train_refusal.py` caches one pass and tries them all.

The head is a logistic regression on the standardised features, trained by `bench/train_refusal.py --v4` on
human-labelled replies (docs/eval.md); it ships in `refusal_model.npz` beside this file (a few KB: the reading, the
standardisation, the weights, and the model card's figures), and loads over the installed embedded model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HEAD_PATH = Path(__file__).with_name("refusal_model.npz")
# The assistant's turn of SmolLM2's chat template: the reply is read as a reply, not as free text.
PREFIX = "<|im_start|>assistant\n"
POOLS = ("mean", "last")


@dataclass(frozen=True)
class Reading:
    """Which states make the features: LAYERS (0 is the embeddings), CUTOFFS in tokens of the reply, POOLS of each."""

    layers: tuple[int, ...]
    cutoffs: tuple[int, ...]
    pools: tuple[str, ...] = POOLS

    @property
    def depth(self) -> int:
        """How many transformer layers must run: the deepest one read."""
        return max(self.layers)

    @property
    def max_tokens(self) -> int:
        return max(self.cutoffs)

    def as_dict(self) -> dict:
        return {"layers": list(self.layers), "cutoffs": list(self.cutoffs), "pools": list(self.pools)}


class Encoder:
    """The embedded model's first `reading.depth` layers, loaded once, turning replies into pooled states."""

    def __init__(self, reading: Reading, model_dir: str | None = None):
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from .model_specs import embedded_model_dir, quiet_libraries

        quiet_libraries()
        folder = model_dir or str(embedded_model_dir())
        self.reading = reading
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        if reading.depth > config.num_hidden_layers:
            raise ValueError(f"layer {reading.depth} asked for, the model at {folder} has {config.num_hidden_layers}")
        depth = config.num_hidden_layers
        config.num_hidden_layers = reading.depth  # the deeper layers are never read: never run
        model = AutoModel.from_config(config, dtype=torch.float32)
        state = _weights(folder, reading.depth, depth)
        model.load_state_dict(state, strict=False)
        # The model's last hidden state comes out normalised; the others do not. Reading layer L of a model cut to L
        # layers must give what layer L of the whole model gives, so no state is normalised.
        model.norm = torch.nn.Identity()
        self.model = model.eval()
        self.prefix = self.tokenizer(PREFIX, add_special_tokens=False)["input_ids"]

    def token_ids(self, reply: str) -> list[int]:
        """The reply's first tokens, as many as the longest cut-off reads."""
        return self.tokenizer(reply or "", add_special_tokens=False)["input_ids"][: self.reading.max_tokens]

    def states(self, replies: Sequence[str], batch_size: int = 16):
        """float32 array [len(replies), layers, cutoffs, pools, hidden]: the pooled states of each reply's opening.

        Batches are formed from replies of similar length (less padding); the output keeps the replies' order."""
        import numpy as np
        import torch

        r = self.reading
        ids = [self.token_ids(t) for t in replies]
        out = np.zeros((len(replies), len(r.layers), len(r.cutoffs), len(r.pools), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(replies)), key=lambda i: len(ids[i]))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        start = len(self.prefix)
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            width = start + max(len(ids[i]) for i in batch)
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, i in enumerate(batch):
                seq = self.prefix + ids[i]
                x[j, : len(seq)] = torch.tensor(seq)
                mask[j, : len(seq)] = 1
            with torch.inference_mode():
                hidden = self.model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states
            for j, i in enumerate(batch):
                for li, layer in enumerate(r.layers):
                    for ci, cut in enumerate(r.cutoffs):
                        n = min(len(ids[i]), cut)
                        # An empty reply: the state after the prefix. Right padding leaves the real positions unchanged.
                        v = hidden[layer][j, start - 1 : start, :] if n == 0 else hidden[layer][j, start : start + n, :]
                        for pi, pool in enumerate(r.pools):
                            out[i, li, ci, pi] = (v.mean(0) if pool == "mean" else v[-1]).numpy()
        return out


def _weights(folder: str, keep: int, total: int) -> dict:
    """The embedded model's weights for its first KEEP layers (of TOTAL), as the base model's state dict names them."""
    from safetensors.torch import load_file

    state: dict = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(str(path)))
    out = {}
    for key, value in state.items():
        name = key.removeprefix("model.")
        if name.startswith("layers."):
            if int(name.split(".")[1]) >= keep:
                continue
        elif not name.startswith(("embed_tokens.", "norm.", "rotary_emb.")):
            continue  # lm_head: the features never reach it
        out[name] = value
    return out


@dataclass(frozen=True)
class Head:
    """The logistic head over the standardised features of READING at one cut-off: P(declined) = σ(w·(x−μ)/s + b)."""

    reading: Reading
    mean: object  # numpy float32 [features]
    scale: object
    weight: object
    bias: float
    threshold: float  # declined at P >= threshold
    meta: dict

    def features(self, states):
        """[n, features] from Encoder.states' [n, layers, 1 cut-off, pools, hidden]."""
        return states.reshape(states.shape[0], -1)

    def p_declined(self, states) -> list[float]:
        import numpy as np

        z = ((self.features(states) - self.mean) / self.scale) @ self.weight + self.bias
        return [float(p) for p in 1.0 / (1.0 + np.exp(-z))]


def save_head(path: Path, head: Head) -> None:
    import numpy as np

    from .output import write_npz

    meta = {**head.meta, "reading": head.reading.as_dict(), "bias": head.bias, "threshold": head.threshold}
    write_npz(path, mean=np.asarray(head.mean, np.float32), scale=np.asarray(head.scale, np.float32),
              weight=np.asarray(head.weight, np.float32), meta=np.array(json.dumps(meta)))


def load_head(path: Path) -> Head:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        r = meta["reading"]
        reading = Reading(tuple(r["layers"]), tuple(r["cutoffs"]), tuple(r["pools"]))
        return Head(reading, z["mean"], z["scale"], z["weight"], float(meta["bias"]), float(meta["threshold"]), meta)


class Classifier:
    """The shipped head over the embedded model: P(declined) for a batch of replies."""

    def __init__(self, head: Head | None = None):
        self.head = head or load_head(HEAD_PATH)
        self.encoder = Encoder(self.head.reading)

    def p_declined(self, replies: Sequence[str], batch_size: int = 16) -> list[float]:
        if not replies:
            return []
        return self.head.p_declined(self.encoder.states(replies, batch_size=batch_size))


@lru_cache(maxsize=1)
def shipped() -> Classifier:
    """The classifier cai ships, loaded once per process (the embedded model's first layers and the head)."""
    return Classifier()
