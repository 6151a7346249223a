"""One iteration of iterative DPO (iterative-dpo.mk) in one file: DIR/summary.json, and a line on stderr.

    python iteration_summary.py out/dpo-2 --iteration 2 --start out/dpo-1/model

Reads what the iteration's commands wrote: the judge's labels (prefs.summary.json from `cai label-prefs`), the DPO run
(model/cai-train.json and model/metrics.jsonl from `cai train-policy --algo dpo`). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--start", required=True, help="the model this iteration sampled from and trained on from")
    args = ap.parse_args()
    d = args.folder
    labels = json.loads((d / "prefs.summary.json").read_text())
    record = json.loads((d / "model" / "cai-train.json").read_text())
    steps = [json.loads(line) for line in (d / "model" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [s for s in steps if "rewards/accuracies" in s]
    judge = labels.get("judge", {})
    disagreed = (judge.get("orders_disagreed") or {}).get("value")
    summary = {
        "iteration": args.iteration,
        "sampled_from": args.start,
        "model": str(d / "model"),
        "pairs": labels.get("pairs"),
        "label_agreement": {
            # Both orders of a question favouring the same answer; each principle siding with the ensemble's label.
            "orders_agreed": None if disagreed is None else round(1.0 - disagreed, 4),
            "orders_disagreed": judge.get("orders_disagreed"),
            "principles_with_ensemble": {k: v.get("agreement") for k, v in (judge.get("principles") or {}).items()},
        },
        "judge_bias": {"position": judge.get("position_bias"), "length": judge.get("length_bias")},
        "dpo": {
            "steps": record.get("steps"),
            "train_loss": record.get("train_loss"),
            # How often the policy's implicit reward ranks the judge's chosen answer first: at the first step it is the
            # model it started from, before this iteration's training moved it.
            "policy_agreed_with_labels": {"first_step": steps[0]["rewards/accuracies"] if steps else None,
                                          "last_step": steps[-1]["rewards/accuracies"] if steps else None},
        },
    }
    tmp = d / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, d / "summary.json")
    agreed = summary["label_agreement"]["orders_agreed"]
    position = (judge.get("position_bias") or {}).get("mean_p_first")
    policy = summary["dpo"]["policy_agreed_with_labels"]
    print(f"iterative DPO {args.iteration}: {(labels.get('pairs') or {}).get('kept')} pairs, orders agreed {agreed}, "
          f"mean p(first shown) {position}, policy agreed with the labels {policy['first_step']} -> {policy['last_step']}; "
          f"{d / 'summary.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
