"""The learned half of the refusal detector: logistic regression over hashed word n-grams, in plain numpy.

A reply becomes a set of string features: word 1-3-grams of its opening (where refusals are said),
word 1-2-grams of the whole reply, its first words, its shape (length, list, code) and what the rules
of `cai_cli.refusal` found (label and rule). Each feature is hashed (crc32) into one of 2**bits
buckets; P(declined) is the logistic of the bias plus the weights of the buckets present. The weights
ship in `refusal_classifier.npz` beside this file, trained by `python bench/train_refusal.py` from the
human-labelled replies cited in bench/refusal_results.md; training needs scikit-learn, running needs only numpy.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("refusal_classifier.npz")
# Feature settings; the model file records those it was trained with, and loading checks them.
FEATURES = {"bits": 18, "opening_words": 40, "max_words": 600, "version": 2}
# Smaller weights are not worth their bytes in the shipped file.
MIN_WEIGHT = 0.01

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Single function words say nothing alone (short replies are full of "I" and "to", refusals or not);
# in pairs and triples they do ("I can't", "not able to").
_STOPWORDS = frozenset(
    "i to the a an and it of is you your that this in for on with be are as or it's can my me we they their its at by from was were will would have has do so if but not no".split()
)
_QUOTED = re.compile(r'["\u201c][^"\u201c\u201d\n]*["\u201d]')
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")


def _words(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return _TOKEN.findall(text)


def _grams(words: list[str], n: int) -> list[str]:
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def features(text: str, rule_label: str, rule: str | None) -> set[str]:
    """The string features of one reply, given the rules' verdict on it."""
    text = _QUOTED.sub('""', text)  # a character's "I can't help you" in a story is not the assistant's
    words = _words(text)[: FEATURES["max_words"]]
    head = words[: FEATURES["opening_words"]]
    out = {f"rules={rule_label}", f"rule={rule}", f"words~{min(int(math.log2(len(words) + 1)), 10)}"}
    out.update(f"o1:{w}" for w in head if w not in _STOPWORDS)
    out.update(f"o{n}:{g}" for n in (2, 3) for g in _grams(head, n))
    out.update(f"w1:{w}" for w in words if w not in _STOPWORDS)
    out.update(f"w2:{g}" for g in _grams(words, 2))
    out.add("start:" + " ".join(words[:3]))
    if len(_LIST_ITEM.findall(text)) >= 2:
        out.add("shape:list")
    if "```" in text:
        out.add("shape:code")
    return out


def buckets(feats: set[str], bits: int) -> list[int]:
    mask = (1 << bits) - 1
    return sorted({zlib.crc32(f.encode()) & mask for f in feats})


@dataclass(frozen=True)
class Model:
    weights: object  # numpy float32 array, one weight per bucket
    bias: float
    meta: dict

    def p_declined(self, text: str, rule_label: str, rule: str | None) -> float:
        idx = buckets(features(text, rule_label, rule), self.meta["features"]["bits"])
        z = self.bias + float(self.weights[idx].sum())  # type: ignore[index]
        return 1.0 / (1.0 + math.exp(-z))

    def evidence(self, text: str, rule_label: str, rule: str | None, k: int = 3) -> list[str]:
        """The K word pairs or triples of the reply that pushed hardest towards declined: why the model said so."""
        mask = (1 << self.meta["features"]["bits"]) - 1
        scored: dict[str, float] = {}
        for f in features(text, rule_label, rule):
            if f[:3] in ("o2:", "o3:", "w2:"):
                w = float(self.weights[zlib.crc32(f.encode()) & mask])  # type: ignore[index]
                scored[f[3:]] = max(w, scored.get(f[3:], w))
        return [g for g, w in sorted(scored.items(), key=lambda x: -x[1])[:k] if w > 0]


def shipped_weights(weights):
    """The weights as a model file keeps them: float16, those under MIN_WEIGHT dropped."""
    import numpy as np

    return np.where(np.abs(weights) >= MIN_WEIGHT, weights, 0.0).astype(np.float16).astype(np.float32)


def save(path: Path, weights, bias: float, meta: dict) -> None:
    """Write a model: nonzero weights as (bucket, float16 weight) pairs, the rest as JSON."""
    import numpy as np

    from .output import write_npz

    nz = np.flatnonzero(shipped_weights(weights))
    meta = {**meta, "bias": float(bias), "features": FEATURES}
    write_npz(path, index=nz.astype(np.uint32), weight=weights[nz].astype(np.float16), meta=np.array(json.dumps(meta)))


def load(path: Path) -> Model:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("features") != FEATURES:
            raise ValueError(f"{path} was trained with features {meta.get('features')}, this code computes {FEATURES}: retrain it (bench/train_refusal.py)")
        weights = np.zeros(1 << FEATURES["bits"], dtype=np.float32)
        weights[z["index"]] = z["weight"].astype(np.float32)
    return Model(weights, meta["bias"], meta)


@lru_cache(maxsize=1)
def shipped() -> Model:
    """The model that ships with cai, loaded once per process."""
    return load(MODEL_PATH)
