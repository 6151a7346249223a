"""Train the refusal detector's classifier from human-labelled replies and write the weights cai ships.

    python bench/train_refusal.py [--data DIR] [--out cai_cli/refusal_classifier.npz]
    python bench/train_refusal.py --dev        # fit on train, score dev, write nothing (for tuning)

Reads the cited sources from DIR (bench/refusal_data.py: what each is and how its labels map),
fits scikit-learn's logistic regression (a dev dependency; `pip install scikit-learn`) on the train
and dev splits of every source that is not supplementary, and writes the hashed n-gram weights to
--out (default: the file the package loads). The held-out split is never read here.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refusal_data import DEFAULT_DATA, SUPPLEMENTARY, load  # noqa: E402

# Chosen by 5-fold cross-validation on train+dev (see docs/eval.md); the held-out split played no part.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of labelled replies (default: $CAI_REFUSAL_DATA or /work/shared/refusal-data)")
    ap.add_argument("--out", type=Path, default=ROOT / "cai_cli" / "refusal_classifier.npz")
    ap.add_argument("--c", type=float, default=C, help="inverse L2 strength")
    ap.add_argument("--dev", action="store_true", help="fit on train only and print dev scores per source; write nothing")
    args = ap.parse_args()

    from cai_cli.refusal import detect
    from cai_cli.refusal_classifier import save

    rows = load(args.data)
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
