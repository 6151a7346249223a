"""label-prefs: judging by option log-probs against a judge that generates its answer (floor: 3x).

Same 64 pairs, same engine (transformers on the embedded model), same questions, both orders, one principle:
- scored:    what `cai label-prefs` does: the option letters' log-probs after "The answer is: (", no decoding;
- generated: the judge writes a few tokens (greedy), and "(A)"/"(B)" is parsed from them.
Model load is excluded on both sides; each side keeps its best of --repeats alternating runs.
A comparison is one pair judged in both orders. Also printed: the cost of one sequence per question
(score_options with a single option), i.e. what a one-pass score_options would cost, since the
transformers engine today runs one sequence per option.
Run: make bench   (or: python bench/bench_label_prefs.py --pairs 16)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Canned replies of realistic length, so every pair is a fair harmless-vs-harmful (or close) choice.
REPLIES = [
    "I can't help with hurting anyone, but if you're angry about something that happened, talking it through with someone you trust or a counsellor can really help. Would you like some ideas for handling the situation calmly?",
    "Sure. The easiest way is to do it when nobody is watching, make sure there are no cameras around, and keep it quiet afterwards so nobody can connect it back to you.",
    "That's not something I'll give instructions for, because it could put people in danger. If you're worried about your safety, local authorities or a support line can help you right away.",
    "Here is a general overview: first you gather the materials, then you follow the usual steps people describe online. Be careful, since doing this can get you into serious trouble.",
]


def make_pairs(n: int) -> list[dict]:
    prompts = [json.loads(l) for l in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if l.strip()]
    pairs = []
    for i in range(n):
        a, b = (i % 2) * 2, 1 + (i // 2) % 2 * 2  # alternate which side is the harmless one across pairs
        first, second = (REPLIES[a], REPLIES[b]) if i % 3 else (REPLIES[b], REPLIES[a])
        pairs.append({"id": f"pair-{i}", "prompt": prompts[i % len(prompts)]["prompt"], "candidates": [first, second]})
    return pairs


def scored(engine, pairs: list[dict]) -> tuple[float, list[int], str]:
    """The label-prefs stage itself (prompt building, scoring, combining), on a loaded engine."""
    from cai_cli.constitution import load_constitution
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.stages.label_prefs import LabelConfig, LabelPrefs

    stage = LabelPrefs(EngineOptions(engine="transformers"), Sampling(), load_constitution(None), LabelConfig())
    stage.engine = engine
    rows = [dict(p) for p in pairs]
    start = time.perf_counter()
    judged = stage.process(rows)
    seconds = time.perf_counter() - start
    winners = [int(r["_label_prefs"][0]["preference"]["chosen_source"][-2]) for r in judged]
    return seconds, winners, stage.summary()


def questions(pairs: list[dict]) -> list[tuple[int, int, list[dict]]]:
    """(pair, index shown first, messages) for every pair in both orders, with the same principle the stage draws."""
    from cai_cli.constitution import load_constitution, sample_principles
    from cai_cli.judge import judge_messages
    from cai_cli.stages.label_prefs import SALT

    charter = load_constitution(None)
    out = []
    for k, p in enumerate(pairs):
        q = charter.comparisons[sample_principles(len(charter.comparisons), 1, 0, f"{p['id']}:0-1", SALT)[0]]
        conv = [{"role": "user", "content": p["prompt"]}]
        a, b = p["candidates"]
        out.append((k, 0, judge_messages(conv, q.question, a, b)))
        out.append((k, 1, judge_messages(conv, q.question, b, a)))
    return out


def generated(engine, pairs: list[dict], max_tokens: int) -> tuple[float, list[int | None], float]:
    """Decode a few tokens per question and parse the letter; a pair's winner is the majority over both orders."""
    from cai_cli.engines import Sampling
    from cai_cli.judge import parse_answer

    qs = questions(pairs)
    start = time.perf_counter()
    completions = engine.chat([m for _, _, m in qs], Sampling(temperature=0.0, max_tokens=max_tokens))
    votes = [0.0] * len(pairs)
    parsed = 0
    for (k, first, _), comp in zip(qs, completions):
        letter = parse_answer(comp.texts[0])
        if letter is None:
            continue
        parsed += 1
        shown_first_wins = letter == "A"
        votes[k] += 1 if (shown_first_wins == (first == 0)) else -1  # +1: candidate 0 wins
    seconds = time.perf_counter() - start
    winners = [None if v == 0 else (0 if v > 0 else 1) for v in votes]
    return seconds, winners, parsed / len(qs)


def one_pass(engine, pairs: list[dict]) -> float:
    """One sequence per question: the cost of a score_options that reads both letters from one forward pass."""
    from cai_cli.judge import ANSWER_PREFIX

    prompts = [engine.render_chat(m) + ANSWER_PREFIX for _, _, m in questions(pairs)]
    start = time.perf_counter()
    engine.score_options(prompts, ["A"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=4, help="Tokens the generating judge may write (4 fits '(A) ...').")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="Alternate the two sides this many times; keep each side's best.")
    args = parser.parse_args()

    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.models import resolve_model

    engine = TransformersEngine(resolve_model(None), batch_size=args.batch_size)
    pairs = make_pairs(args.pairs)
    scored(engine, pairs[:2])  # warm kernels and caches for both sides alike
    s_runs, g_runs = [], []
    for _ in range(args.repeats):
        s_runs.append(scored(engine, pairs))
        g_runs.append(generated(engine, pairs, args.max_tokens))
    s_secs, s_win, s_summary = min(s_runs, key=lambda r: r[0])
    g_secs, g_win, parse_rate = min(g_runs, key=lambda r: r[0])
    o_secs = one_pass(engine, pairs)
    n = len(pairs)
    agree = sum(a == b for a, b in zip(s_win, g_win)) / n
    ties = sum(w is None for w in g_win) / n
    s_cps, g_cps, o_cps = n / s_secs, n / g_secs, n / o_secs
    print(f"pairs {n}, both orders, 1 principle, batch {args.batch_size}, device {engine.device}")
    print(f"judge on these pairs: {s_summary}")
    print(f"scored (cai label-prefs):         {s_secs:7.1f}s = {s_cps:6.2f} comparisons/s")
    print(f"generated ({args.max_tokens} tokens, parsed):   {g_secs:7.1f}s = {g_cps:6.2f} comparisons/s  (answers parsed {parse_rate:.0%}; {ties:.0%} of pairs tied: the same letter in both orders; same winner as scored {agree:.0%})")
    print(f"one sequence per question:        {o_secs:7.1f}s = {o_cps:6.2f} comparisons/s  (a one-pass score_options)")
    ratio = s_cps / g_cps
    print(f"ratio scored/generated: {ratio:.2f} (floor 3.00){'' if ratio >= 3 else '  BELOW FLOOR'}; one-pass/generated: {o_cps / g_cps:.2f}")


if __name__ == "__main__":
    main()
