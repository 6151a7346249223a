"""Train the refusal detector's classifiers from human-labelled replies and write the files cai ships.

    python bench/train_refusal.py --v4 [--data DIR]     # detector v4: the head over the embedded model (refusal_model.npz)
    python bench/train_refusal.py --v4 --dev            # v4: fit on train, choose the thresholds, score dev; write nothing
    python bench/train_refusal.py --v4 --sweep          # v4: every layer, cut-off, pooling and C on dev; write nothing
    python bench/train_refusal.py [--data DIR] [--out cai_cli/refusal_classifier.npz]   # detector v3 (--detector fast)
    python bench/train_refusal.py --dev        # v3: fit on train, score dev, write nothing (for tuning)
    python bench/train_refusal.py --cv         # v3: grouped cross-validation and learning curve over train + dev

Reads the cited sources from DIR (bench/refusal_data.py: what each is and how its labels map). The held-out split is
never read here.

v4 reads each reply's opening through the embedded model's first layers (cai_cli/refusal_model.py; the states are
cached on disk by reply and reading, in $CAI_REFUSAL_STATES or ~/.cache/cai/refusal-states, so a second run costs no
model time), fits a logistic regression (scikit-learn, a dev dependency) on the standardised states of the train
split, chooses on dev the threshold at which it overrules the rules, then refits on train + dev and writes the head,
its reading, threshold and model card figures to refusal_model.npz.

v3 fits a logistic regression over hashed word n-grams on the train and dev splits of every source that is not
supplementary, and writes the weights to --out. --cv splits train + dev into folds by a hash of the prompt (every reply
to one prompt in one fold), retrains on the other folds, once on all of them and once on a half and a quarter (a
learning curve), and scores the detector as it ships (rules plus the refitted classifier) on the left-out fold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refusal_data import DEFAULT_DATA, SUPPLEMENTARY, load  # noqa: E402

DEFAULT_OUT = ROOT / "cai_cli" / "refusal_classifier.npz"

# Chosen by 5-fold cross-validation on train+dev (see bench/refusal_results.md); the held-out split played no part.
C = 1.0
# v4's reading and regularisation, chosen on the dev split by --v4 --sweep (bench/refusal_results.md).
V4_LAYER, V4_CUTOFF, V4_POOLS, V4_C = 18, 64, ("mean",), 0.01
V4_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # where the classifier may overrule the rules: tried on dev


def matrix(rows: list[dict]):
    """Binary bucket-presence matrix (scipy CSR), with the rules' verdict among the features."""
    import numpy as np
    from scipy.sparse import csr_matrix

    from cai_cli.refusal import rule_verdict
    from cai_cli.refusal_classifier import FEATURES, buckets, features

    indptr, indices = [0], []
    for r in rows:
        v = rule_verdict(r["response"])
        indices += buckets(features(r["response"], v.label, v.rule), FEATURES["bits"])
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float64)
    return csr_matrix((data, np.array(indices, dtype=np.int64), np.array(indptr)), shape=(len(rows), 1 << FEATURES["bits"]))


def fit(rows: list[dict], c: float = C):
    """(weights, bias) of a logistic regression of `declined` on ROWS' features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    y = np.array([r["declined"] for r in rows], dtype=int)
    if len(set(y)) < 2:
        raise SystemExit("training needs both declined and answered replies")
    model = LogisticRegression(C=c, max_iter=2000, solver="liblinear", random_state=0)
    model.fit(matrix(rows), y)
    return model.coef_[0], float(model.intercept_[0])


def model(weights, bias: float, meta: dict | None = None):
    """A refusal_classifier.Model from fitted weights, exactly as it would load from the file."""
    from cai_cli.refusal_classifier import FEATURES, Model, shipped_weights

    return Model(shipped_weights(weights), bias, {**(meta or {}), "features": FEATURES})


def training_rows(rows: list[dict], splits: tuple[str, ...]) -> list[dict]:
    return [r for r in rows if r["split"] in splits and r["source"] not in SUPPLEMENTARY]


def fold(row: dict, folds: int) -> int:
    """The cross-validation fold of ROW: by a hash of its prompt, so that no prompt is on both sides."""
    return int(hashlib.sha256(row["prompt"].encode()).hexdigest(), 16) % folds


def cross_validate(rows: list[dict], folds: int, c: float, fractions: tuple[float, ...] = (0.25, 0.5, 1.0)) -> dict:
    """{fraction: {source or "pooled": (correct, n)}}: the shipped pipeline (rules plus a classifier refitted on
    FRACTION of the other folds' prompts) scored on each left-out fold of the train and dev splits of ROWS."""
    from cai_cli.refusal import detect

    rows = training_rows(rows, ("train", "dev"))
    prompts = sorted({r["prompt"] for r in rows})
    out: dict = {}
    for fraction in fractions:
        kept = set(random.Random(0).sample(prompts, max(1, round(fraction * len(prompts)))))  # the same subset in every fold
        tally: dict = {}
        for k in range(folds):
            train = [r for r in rows if fold(r, folds) != k and r["prompt"] in kept]
            test = [r for r in rows if fold(r, folds) == k]
            if not test or len({r["declined"] for r in train}) < 2:
                continue
            trained = model(*fit(train, c))
            for r in test:
                hit = detect(r["response"], trained).declined == r["declined"]
                for key in (r["source"], "pooled"):
                    right, n = tally.get(key, (0, 0))
                    tally[key] = (right + hit, n + 1)
        if tally:
            out[fraction] = {**dict(sorted(t for t in tally.items() if t[0] != "pooled")), "pooled": tally["pooled"]}
    return out


# --------------------------------------------------------------------------- v4


def v4_reading(layer: int = V4_LAYER, cutoff: int = V4_CUTOFF, pools: tuple[str, ...] = V4_POOLS):
    from cai_cli.refusal_model import Reading

    return Reading(layers=(layer,), cutoffs=(cutoff,), pools=pools)


def states_dir() -> Path:
    from cai_cli.model_specs import cache_dir

    return Path(os.environ.get("CAI_REFUSAL_STATES") or cache_dir() / "refusal-states")


def cache_reading():
    """What the cache keeps of each reply: a few readings at the depth and length v4 reads, so that trying them (and
    scoring the shipped one) reads each reply through the model once."""
    from cai_cli.refusal_model import Reading

    return Reading(layers=(14, 18), cutoffs=(16, 64), pools=("mean", "last"))


def states(rows: list[dict], reading, batch: int = 64):
    """[len(rows), layers, cutoffs, pools, hidden] pooled states of each row's reply for READING, read once and cached
    on disk by reply (cai_cli.refusal_model.Encoder; cache_reading() when it holds READING); progress on stderr."""
    import time

    import numpy as np

    kept = cache_reading()
    if not (set(reading.layers) <= set(kept.layers) and set(reading.cutoffs) <= set(kept.cutoffs) and set(reading.pools) <= set(kept.pools)):
        kept = reading
    folder = states_dir() / hashlib.sha256(json.dumps(kept.as_dict(), sort_keys=True).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(r["response"].encode()).hexdigest()[:24] for r in rows]
    missing = sorted({k: i for i, k in enumerate(keys) if not (folder / f"{k}.npy").exists()}.values())
    if missing:
        from cai_cli.refusal_model import Encoder

        encoder, start = Encoder(kept), time.monotonic()
        for b in range(0, len(missing), batch):
            idx = missing[b : b + batch]
            got = encoder.states([rows[i]["response"] for i in idx])
            for i, x in zip(idx, got):
                np.save(folder / f"{keys[i]}.npy", x.astype(np.float16))
            done = min(b + batch, len(missing))
            print(f"states: {done}/{len(missing)} replies read ({done / (time.monotonic() - start):.1f}/s)", file=sys.stderr, flush=True)
    x = np.stack([np.load(folder / f"{k}.npy").astype(np.float32) for k in keys])
    pick = np.ix_(range(len(rows)), [kept.layers.index(v) for v in reading.layers], [kept.cutoffs.index(v) for v in reading.cutoffs],
                  [kept.pools.index(v) for v in reading.pools], range(x.shape[-1]))
    return x[pick]


def fit_head(x, y, c: float = V4_C):
    """(mean, scale, weight, bias) of a logistic regression on the standardised features X ([n, features])."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-6
    model = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, np.asarray(y, dtype=int))
    return mean.astype(np.float32), scale.astype(np.float32), model.coef_[0].astype(np.float32), float(model.intercept_[0])


def head(rows: list[dict], x, reading, threshold: float = 0.5, c: float = V4_C, meta: dict | None = None):
    """A refusal_model.Head fitted on ROWS (their states X), as it would load from the file."""
    from cai_cli.refusal_model import Head

    mean, scale, weight, bias = fit_head(x.reshape(len(x), -1), [r["declined"] for r in rows], c)
    declined_at = {label: threshold for label in ("answer", "refusal", "partial", "deflection")}
    return Head(reading, mean, scale, weight, bias, threshold, {**(meta or {}), "declined_at": declined_at, "c": c})


def v4_verdicts(trained, rows: list[dict], x) -> list:
    """The detector v4 verdicts (rules and the head agreed: cai_cli.refusal.combine) on ROWS whose states are X."""
    from cai_cli.refusal import combine, rule_verdict

    ps = trained.p_declined(x)
    return [combine(r["response"], rule_verdict(r["response"]), p, trained.meta["declined_at"], lambda: "") for r, p in zip(rows, ps)]


def _accuracy(rows: list[dict], declined: list[bool]) -> str:
    by = {}
    for r, d in zip(rows, declined):
        for key in (r["source"], "pooled"):
            right, n = by.get(key, (0, 0))
            by[key] = (right + (d == r["declined"]), n + 1)
    return ", ".join(f"{k} {right / n:.3f} ({n})" for k, (right, n) in sorted(by.items(), key=lambda t: t[0] == "pooled"))


def choose_threshold(train: list[dict], xt, dev: list[dict], xd, reading, c: float = V4_C) -> tuple[float, dict]:
    """The overruling threshold with the best dev accuracy (ties: the one nearest 0.5), and every threshold's score."""
    scores = {}
    for t in V4_THRESHOLDS:
        verdicts = v4_verdicts(head(train, xt, reading, t, c), dev, xd)
        scores[t] = sum(v.declined == r["declined"] for v, r in zip(verdicts, dev)) / len(dev)
    best = max(V4_THRESHOLDS, key=lambda t: (scores[t], -abs(t - 0.5)))
    return best, scores


def sweep(rows: list[dict]) -> None:
    """Each layer, cut-off (alone and together), pooling and C the cache holds: fit on train, score the head alone on dev.
    (The first look, over every even layer and cut-offs 16-128 of the whole model, is in bench/refusal_results.md.)"""
    import numpy as np

    train, dev = training_rows(rows, ("train",)), training_rows(rows, ("dev",))
    reading = cache_reading()
    xt, xd = states(train, reading), states(dev, reading)
    yt = np.array([r["declined"] for r in train])
    cuts = [[c] for c in range(len(reading.cutoffs))] + [list(range(len(reading.cutoffs)))]
    for li, layer in enumerate(reading.layers):
        for ci in cuts:
            for pools in (("mean",), ("mean", "last")):
                pi = [reading.pools.index(p) for p in pools]
                pick = np.ix_(range(len(xt)), [li], ci, pi, range(xt.shape[-1]))
                pick_d = np.ix_(range(len(xd)), [li], ci, pi, range(xd.shape[-1]))
                for c in (0.003, 0.01, 0.03):
                    mean, scale, weight, bias = fit_head(xt[pick].reshape(len(xt), -1), yt, c)
                    z = ((xd[pick_d].reshape(len(xd), -1) - mean) / scale) @ weight + bias
                    cut = "+".join(str(reading.cutoffs[i]) for i in ci)
                    print(f"layer {layer} cut-off {cut} {'+'.join(pools)} C {c}: dev {_accuracy(dev, list(z >= 0))}", flush=True)


def train_v4(args) -> None:
    from cai_cli.refusal_model import HEAD_PATH, save_head

    rows = load(args.data)
    if args.sweep:
        return sweep(rows)
    reading = v4_reading()
    train, dev = training_rows(rows, ("train",)), training_rows(rows, ("dev",))
    xt, xd = states(train, reading), states(dev, reading)
    threshold, by_threshold = choose_threshold(train, xt, dev, xd, reading)
    dev_head = head(train, xt, reading, threshold)
    on_dev = _accuracy(dev, [v.declined for v in v4_verdicts(dev_head, dev, xd)])
    print(f"dev, fitted on train: threshold {threshold} (dev accuracy by threshold {by_threshold}); rules and head: {on_dev}; "
          f"head alone at 0.5: {_accuracy(dev, [p >= 0.5 for p in dev_head.p_declined(xd)])}")
    if args.dev:
        return
    both = train + dev
    import numpy as np

    sources = dict(sorted(Counter(r["source"] for r in both).items()))
    meta = {"version": "cai-refusal-4", "base_model": "SmolLM2-135M-Instruct (the embedded model)", "trained_on": sources,
            "splits": "train + dev of bench/refusal_data.py (held-out never read)", "threshold_chosen_on": "dev",
            "dev_by_threshold": by_threshold, "dev_accuracy_fitted_on_train": on_dev,
            "licences": {"rbr": "MIT (openai/safety-rbr-code-and-data)", "chatgpt": "MIT (maxwellreuter/chatgpt-refusals)"}}
    final = head(both, np.concatenate([xt, xd]), reading, threshold, meta=meta)
    out = args.out if args.out != DEFAULT_OUT else HEAD_PATH
    save_head(out, final)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB): trained on {len(both)} replies {sources}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of labelled replies (default: $CAI_REFUSAL_DATA or /work/shared/refusal-data)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the model goes (default: the file cai loads)")
    ap.add_argument("--v4", action="store_true", help="detector v4: the head over the embedded model (refusal_model.npz)")
    ap.add_argument("--sweep", action="store_true", help="with --v4: score every layer, cut-off, pooling and C on dev; write nothing")
    ap.add_argument("--c", type=float, default=C, help="inverse L2 strength")
    ap.add_argument("--dev", action="store_true", help="fit on train only and print dev scores per source; write nothing (v3 and --v4)")
    ap.add_argument("--cv", type=int, nargs="?", const=5, metavar="FOLDS", help="cross-validate over train + dev (default 5 folds, grouped by prompt) with a learning curve; write nothing")
    args = ap.parse_args()
    if args.v4:
        return train_v4(args)

    from cai_cli.refusal import detect
    from cai_cli.refusal_classifier import save

    rows = load(args.data)
    if args.cv:
        for fraction, tally in cross_validate(rows, args.cv, args.c).items():
            scored = ", ".join(f"{key} {right / n:.3f} ({n})" for key, (right, n) in tally.items())
            print(f"{args.cv}-fold cross-validation, classifier fitted on {fraction:.0%} of the other folds' prompts: {scored}")
        return
    if args.dev:
        trained = model(*fit(training_rows(rows, ("train",)), args.c))
        dev = [r for r in rows if r["split"] == "dev"]
        for source in sorted({r["source"] for r in dev}):
            pairs = [(r["declined"], detect(r["response"], trained).declined) for r in dev if r["source"] == source]
            print(f"dev {source}: {len(pairs)} replies, accuracy {sum(g == q for g, q in pairs) / len(pairs):.3f}, errors {dict(Counter(f'gold {g} -> {q}' for g, q in pairs if g != q))}")
        return
    train = training_rows(rows, ("train", "dev"))
    weights, bias = fit(train, args.c)
    sources = dict(sorted(Counter(r["source"] for r in train).items()))
    save(args.out, weights, bias, {"trained_on": sources, "c": args.c})
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): trained on {len(train)} replies {sources}", file=sys.stderr)


if __name__ == "__main__":
    main()
