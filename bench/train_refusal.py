"""Train the refusal detector's classifier from human-labelled replies and write the weights cai ships.

    python bench/train_refusal.py [--data DIR] [--out cai_cli/refusal_classifier.npz]
    python bench/train_refusal.py --dev        # fit on train, score dev, write nothing (for tuning)
    python bench/train_refusal.py --cv         # grouped cross-validation and learning curve over train + dev

Reads the cited sources from DIR (bench/refusal_data.py: what each is and how its labels map),
fits scikit-learn's logistic regression (a dev dependency; `pip install scikit-learn`) on the train
and dev splits of every source that is not supplementary, and writes the hashed n-gram weights to
--out (default: the file the package loads). The held-out split is never read here.

--cv splits train + dev into folds by a hash of the prompt (every reply to one prompt in one fold),
retrains on the other folds, once on all of them and once on a half and a quarter (a learning curve:
what more data of the same kind would buy), and scores the detector as it ships (rules plus the
refitted classifier) on the left-out fold, per source and pooled.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refusal_data import DEFAULT_DATA, SUPPLEMENTARY, load  # noqa: E402

# Chosen by 5-fold cross-validation on train+dev (see bench/refusal_detector_log.md); the held-out split played no part.
C = 1.0


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of labelled replies (default: $CAI_REFUSAL_DATA or /work/shared/refusal-data)")
    ap.add_argument("--out", type=Path, default=ROOT / "cai_cli" / "refusal_classifier.npz")
    ap.add_argument("--c", type=float, default=C, help="inverse L2 strength")
    ap.add_argument("--dev", action="store_true", help="fit on train only and print dev scores per source; write nothing")
    ap.add_argument("--cv", type=int, nargs="?", const=5, metavar="FOLDS", help="cross-validate over train + dev (default 5 folds, grouped by prompt) with a learning curve; write nothing")
    args = ap.parse_args()

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
