"""Routing against labelled requests: does `cai critique --routing relevance --ranker R` rank the passages that should
govern a request among its first three?

    python bench/bench_routing.py [--ranker bm25 hybrid dense] [--document PATH] [--passage-tokens N]
                                  [--json out.json] [--misses] [--sets NAME ...]

Labelled sets, written for cai (bench/routing/*.jsonl: a request in our own words, an optional system message, and
the passages that should govern it):

* assistant.jsonl on the shipped `constitutions/assistant.md`, and assistant-heldout.jsonl (32 requests written and
  labelled after every ranker was settled, before any ranker was run on them);
* on Anthropic's published constitution for Claude (about 145,000 characters; CC0): claude-constitution.jsonl (the
  set BM25's stop words and lexicon, and the hybrid weight, were tuned on), claude-constitution-heldout.jsonl (30
  requests written after BM25 was tuned, since looked at while tuning nothing), claude-constitution-heldout-2.jsonl
  (73 requests written and labelled before any ranker was run on them; its misses have since been read), and
  claude-constitution-heldout-3.jsonl (60 requests written and labelled before any ranker was run on them, each
  listing every passage that governs it: the figure to trust).
  The document is not in this repository: pass its Markdown with --document (default: $CAI_CLAUDE_CONSTITUTION, else
  /work/data/claude-constitution.md); where it is absent those sets are skipped and said so. It is loaded as a
  researcher would load it, with the header `cai constitution import` drafts (no hand edits).

A label names a passage, a section (any of its passages counts) or a hard constraint (`hard-constraint:<id>`). The
ranking is the router's (cai_cli.constitution.routing.Router.rank) over the units a round could be given: the routed
passages whose `when` allows the conversation (with or without a system message; `refused`/`answered` are not
applied: there is no response) and the hard constraints. recall@k: the share of requests with a labelled unit among
the first k, with its 95% Wilson interval. Speed: milliseconds per request (ranking alone, the units' index built
before the clock starts), and the one-off cost of embedding a constitution's pieces (dense, hybrid; timed apart, as
a first run pays it before the embeddings are kept in cai's cache folder). Exits 1 when recall@3 of a held-out set is under FLOOR for the default ranker;
exits 2, before ranking anything, when a label names no unit the router could rank (`unknown_labels`).
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
from cai_cli.constitution.routing import Ranker, Router, Routing, constraint_principles  # noqa: E402
from cai_cli.stats import proportion  # noqa: E402

FLOOR = 0.9
LABELS = ROOT / "bench" / "routing"
DEFAULT_DOCUMENT = os.environ.get("CAI_CLAUDE_CONSTITUTION", "/work/data/claude-constitution.md")
ASSISTANT_SETS = ("assistant.jsonl", "assistant-heldout.jsonl")
CLAUDE_SETS = (
    "claude-constitution.jsonl", "claude-constitution-heldout.jsonl", "claude-constitution-heldout-2.jsonl",
    "claude-constitution-heldout-3.jsonl",
)
HELD_OUT = ("assistant-heldout.jsonl", "claude-constitution-heldout-3.jsonl")


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


def unknown_labels(constitution, rows: list[dict]) -> list[str]:
    """The labels in ROWS (as 'line N: label') that no unit routing could rank would match (see `hit`): a misspelt or
    stale id would otherwise count as a miss, silently. Builds no index and ranks nothing."""
    units = [*constitution.critiques, *(constraint_principles(constitution) if constitution.is_document else [])]
    known = {u.id for u in units} | {u.section for u in units if u.section} | {u.id.split("#")[0] for u in units}
    return [f"line {i}: {label}" for i, row in enumerate(rows, 1) for label in row["expect"] if label not in known]


def router_for(constitution, ranker: Ranker, cache: dict) -> tuple[Router, float | None]:
    """A router per (constitution, ranker), its indexes built; for dense and hybrid, the seconds embedding the units'
    pieces takes (timed apart from the router, which may find them in cai's cache folder: the one-off cost)."""
    key = (id(constitution), ranker)
    if key not in cache:
        router = Router(constitution, Routing.relevance, ranker)
        router.index()
        seconds = None
        if ranker is not Ranker.bm25:
            from cai_cli.constitution import dense

            index = router.embedded()
            started = time.perf_counter()
            dense.embedder().embed(index.pieces)
            seconds = time.perf_counter() - started
        cache[key] = (router, seconds)
    return cache[key]


def measure(constitution, rows: list[dict], ranker: Ranker, cache: dict) -> dict:
    router, embed_seconds = router_for(constitution, ranker, cache)
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
    recall = {k: proportion(sum(r is not None and r <= k for r in ranks), n) for k in (1, 3, 5)}
    return {
        "constitution": constitution.source, "ranker": ranker.value, "requests": n, "units": len(router.units),
        "passage_tokens": constitution.passage_tokens,
        **{f"recall@{k}": round(v["value"], 4) for k, v in recall.items()},
        **{f"recall@{k}_ci": [round(x, 3) for x in v["ci"]] for k, v in recall.items()},
        "ms_per_request": round(1000 * seconds / n, 3),
        "pieces": len(router.embedded().pieces) if ranker is not Ranker.bm25 else None,
        "embed_seconds": round(embed_seconds, 2) if embed_seconds is not None else None,
        "misses": misses,
    }


def load_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (LABELS / name).read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranker", nargs="+", choices=[r.value for r in Ranker], default=[r.value for r in Ranker])
    ap.add_argument("--document", default=DEFAULT_DOCUMENT, help="Anthropic's constitution for Claude, as Markdown")
    ap.add_argument("--passage-tokens", type=int, default=None, help="the passage budget (default: the one cai uses)")
    ap.add_argument("--sets", nargs="+", default=None, help="only these labelled sets (file names in bench/routing/)")
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--misses", action="store_true", help="print the requests whose labelled passage is not in the first 3")
    args = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [(name, "assistant") for name in ASSISTANT_SETS]
        document = Path(args.document)
        claude = None
        if document.is_file():
            claude = load_constitution(imported(document, Path(tmp)))
            sets += [(name, "claude") for name in CLAUDE_SETS]
        else:
            print(f"bench_routing: {document}: not found; the claude-constitution sets are skipped (pass --document PATH)", file=sys.stderr)
        constitutions = {"assistant": load_constitution("assistant"), "claude": claude}
        sets = [(name, which) for name, which in sets if not args.sets or name in args.sets]
        for name, which in sets:  # at the budget the labels were written for: --passage-tokens renumbers passages
            if unknown := unknown_labels(constitutions[which], load_rows(name)):
                print(f"bench_routing: {name}: labels that name no routed passage, section or hard constraint: {', '.join(unknown)}", file=sys.stderr)
                return 2
        if args.passage_tokens:
            constitutions = {k: sized(c, args.passage_tokens) if c is not None else None for k, c in constitutions.items()}
        cache: dict = {}
        for name, which in sets:
            for ranker in map(Ranker, args.ranker):
                results.append({"set": name, **measure(constitutions[which], load_rows(name), ranker, cache)})
    failed = False
    print(f"{'set':<37} {'ranker':<7} {'n':>3} {'recall@1':>18} {'recall@3':>18} {'recall@5':>18} {'ms/req':>7} {'embed':>12}")
    for r in results:
        cells = " ".join(f"{r[f'recall@{k}']:>5.3f} [{r[f'recall@{k}_ci'][0]:.2f},{r[f'recall@{k}_ci'][1]:.2f}]" for k in (1, 3, 5))
        embed = f"{r['embed_seconds']:.1f}s/{r['pieces']}" if r["embed_seconds"] is not None else "-"
        print(f"{r['set']:<37} {r['ranker']:<7} {r['requests']:>3} {cells} {r['ms_per_request']:>7.2f} {embed:>12}")
        failed |= r["set"] in HELD_OUT and r["ranker"] == Ranker.bm25.value and r["recall@3"] < FLOOR
        if args.misses:
            for m in r["misses"]:
                print(f"  miss (rank {m['rank']}): {m['request']}\n    expected {m['expect']}\n    got {m['top3']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    if failed:
        print(f"bench_routing: recall@3 under {FLOOR} on a held-out set with the default ranker", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
