"""Routing against labelled requests: does `cai critique --routing relevance` rank the passages that should govern a
request among its first three?

    python bench/bench_routing.py [--document PATH] [--passage-tokens N] [--json out.json] [--misses]

Two labelled sets, written for cai (bench/routing/*.jsonl: a request in our own words, an optional system message,
and the passages that should govern it):

* assistant.jsonl on the shipped `constitutions/assistant.md`;
* claude-constitution.jsonl on Anthropic's published constitution for Claude (about 145,000 characters; CC0),
  and claude-constitution-heldout.jsonl, 30 more requests written after the ranker (its stop words and lexicon)
  was settled on the first sets: the held-out figure is the one to trust.
  It is not in this repository: pass its Markdown with --document (default: $CAI_CLAUDE_CONSTITUTION, else
  /work/data/claude-constitution.md); where it is absent that set is skipped and said so. It is loaded as a
  researcher would load it, with the header `cai constitution import` drafts (no hand edits).

A label names a passage, a section (any of its passages counts) or a hard constraint (`hard-constraint:<id>`). The
ranking is the router's (cai_cli.constitution.routing.Router.rank) over the units a round could be given: the routed
passages whose `when` allows the conversation (with or without a system message; `refused`/`answered` are not
applied: there is no response) and the hard constraints. recall@k: the share of requests with a labelled unit among
the first k. Exits 1 when recall@3 of a measured set is under FLOOR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cai_cli.constitution import load_constitution  # noqa: E402
from cai_cli.constitution.model import applies  # noqa: E402
from cai_cli.constitution.requests import sized  # noqa: E402
from cai_cli.constitution.routing import Router  # noqa: E402

FLOOR = 0.9
LABELS = ROOT / "bench" / "routing"
DEFAULT_DOCUMENT = os.environ.get("CAI_CLAUDE_CONSTITUTION", "/work/data/claude-constitution.md")


def imported(document: Path, folder: Path) -> str:
    """DOCUMENT with the header `cai constitution import` drafts, beside a copy in FOLDER (the original untouched)."""
    from cai_cli.constitution.document import sidecar_path
    from cai_cli.constitution.draft import draft_header

    copy = folder / document.name
    copy.write_text(document.read_text(encoding="utf-8"), encoding="utf-8")
    header, _ = draft_header(str(copy))
    sidecar_path(copy).write_text(header, encoding="utf-8")
    return str(copy)


def hit(unit, labels: set[str]) -> bool:
    return unit.id in labels or (unit.section is not None and unit.section in labels) or unit.id.split("#")[0] in labels


def measure(constitution, rows: list[dict]) -> dict:
    router = Router(constitution)
    ranks: list[int | None] = []
    misses = []
    started = time.perf_counter()
    for row in rows:
        operator = bool(row.get("system"))
        eligible = [p for p in constitution.critiques if p.when in ("always", "refused", "answered") or applies(p.when, "answer", operator)]
        text = "\n".join([row.get("system", ""), row["request"]]).strip()
        ranked = router.rank(text, [*eligible, *router.constraints])
        labels = set(row["expect"])
        rank = next((i + 1 for i, unit in enumerate(ranked) if hit(unit, labels)), None)
        ranks.append(rank)
        if rank is None or rank > 3:
            misses.append({"request": row["request"], "expect": row["expect"], "rank": rank,
                           "top3": [(u.id, round(u.score, 2), list(u.matched)) for u in ranked[:3]]})
    seconds = time.perf_counter() - started
    n = len(rows)
    return {
        "constitution": constitution.source, "requests": n, "units": len(router.units), "passage_tokens": constitution.passage_tokens,
        **{f"recall@{k}": round(sum(r is not None and r <= k for r in ranks) / n, 4) for k in (1, 3, 5)},
        "ms_per_request": round(1000 * seconds / n, 3), "misses": misses,
    }


def load_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (LABELS / name).read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--document", default=DEFAULT_DOCUMENT, help="Anthropic's constitution for Claude, as Markdown")
    ap.add_argument("--passage-tokens", type=int, default=None, help="the passage budget (default: the one cai uses)")
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--misses", action="store_true", help="print the requests whose labelled passage is not in the first 3")
    args = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("assistant.jsonl", load_constitution("assistant"))]
        document = Path(args.document)
        if document.is_file():
            claude = load_constitution(imported(document, Path(tmp)))
            sets += [("claude-constitution.jsonl", claude), ("claude-constitution-heldout.jsonl", claude)]
        else:
            print(f"bench_routing: {document}: not found; the claude-constitution set is skipped (pass --document PATH)", file=sys.stderr)
        for name, constitution in sets:
            if args.passage_tokens:
                constitution = sized(constitution, args.passage_tokens)
            result = {"set": name, **measure(constitution, load_rows(name))}
            results.append(result)
    failed = False
    print(f"{'set':<36} {'requests':>8} {'units':>6} {'budget':>6} {'recall@1':>9} {'recall@3':>9} {'recall@5':>9} {'ms/request':>10}")
    for r in results:
        print(f"{r['set']:<36} {r['requests']:>8} {r['units']:>6} {r['passage_tokens'] or '-':>6} {r['recall@1']:>9.3f} {r['recall@3']:>9.3f} "
              f"{r['recall@5']:>9.3f} {r['ms_per_request']:>10.2f}")
        failed |= r["recall@3"] < FLOOR
        if args.misses:
            for m in r["misses"]:
                print(f"  miss (rank {m['rank']}): {m['request']}\n    expected {m['expect']}\n    got {m['top3']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    if failed:
        print(f"bench_routing: recall@3 under {FLOOR} on a set", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
