"""label-prefs: judging by option log-probs against a judge that generates its answer (floor: 3x).

Same 64 pairs, same engine (transformers on the embedded model), same questions, both orders, one principle:
- scored:    what `cai label-prefs` does: the option letters' log-probs after "The answer is: (", read from
             one forward pass over the prompts packed by shared prefix; nothing is decoded;
- generated: the judge writes its answer (greedy) and "(A)"/"(B)" is parsed from it, two ways:
             free:   it writes until it stops (end of turn), at most --free-tokens tokens: how a generating
                     judge runs when nothing cuts it short; the floor is checked against this one;
             letter: it is cut off after --letter-tokens tokens, just enough for "(A)": the cheapest a
                     generating judge can be, when one knows the model answers with the letter first.
Model load is excluded on all sides; each side keeps its best of --repeats alternating runs.
A comparison is one pair judged in both orders.
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
    prompts = [json.loads(line) for line in (ROOT / "examples" / "red_team.jsonl").read_text().splitlines() if line.strip()]
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

    stage = LabelPrefs(EngineOptions(engine="transformers"), Sampling(), load_constitution(None), LabelConfig(principles=1))  # one principle, as the generating judge below
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
    from cai_cli.judge import SALT, judge_messages

    charter = load_constitution(None)
    out = []
    for k, p in enumerate(pairs):
        q = charter.comparisons[sample_principles(len(charter.comparisons), 1, 0, f"{p['id']}:0-1", SALT)[0]]
        conv = [{"role": "user", "content": p["prompt"]}]
        a, b = p["candidates"]
        out.append((k, 0, judge_messages(conv, q.question, a, b)))
        out.append((k, 1, judge_messages(conv, q.question, b, a)))
    return out


def generated(engine, pairs: list[dict], max_tokens: int) -> tuple[float, list[int | None], float, float]:
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
    written = sum(c.completion_tokens for c in completions) / len(qs)
    return seconds, winners, parsed / len(qs), written


def packed_tokens(engine, pairs: list[dict]) -> tuple[int, int]:
    """Prompt tokens of every question, and how many of them go through the model once shared prefixes are packed."""
    from cai_cli.engines.packing import pack_shared_prefixes
    from cai_cli.judge import ANSWER_PREFIX

    encoded = [engine.tokenizer(engine.render_chat(m) + ANSWER_PREFIX, add_special_tokens=False)["input_ids"] for _, _, m in questions(pairs)]
    rows = pack_shared_prefixes(encoded, engine.packed_row_tokens)
    return sum(map(len, encoded)), sum(len(r.tokens) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--free-tokens", type=int, default=128, help="Most tokens the free generating judge may write.")
    parser.add_argument("--letter-tokens", type=int, default=4, help="Tokens the cut-off generating judge may write (4 fits '(A)').")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="Alternate the sides this many times; keep each side's best.")
    args = parser.parse_args()

    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.model_specs import resolve_model

    engine = TransformersEngine(resolve_model(None), batch_size=args.batch_size)
    pairs = make_pairs(args.pairs)
    scored(engine, pairs[:2])  # warm kernels and caches for every side alike
    s_runs, l_runs, f_runs = [], [], []
    for _ in range(args.repeats):
        s_runs.append(scored(engine, pairs))
        l_runs.append(generated(engine, pairs, args.letter_tokens))
        f_runs.append(generated(engine, pairs, args.free_tokens))
    s_secs, s_win, s_summary = min(s_runs, key=lambda r: r[0])
    n = len(pairs)
    total, packed = packed_tokens(engine, pairs)
    print(f"pairs {n}, both orders, 1 principle, batch {args.batch_size}, device {engine.device}")
    print(f"judge on these pairs: {s_summary}")
    print(f"scored (cai label-prefs):            {s_secs:7.1f}s = {n / s_secs:6.2f} comparisons/s  "
          f"(prompt tokens {total}, {packed} through the model after prefix packing: {total / packed:.2f}x fewer)")
    ratios = {}
    for name, runs, cap in (("free", f_runs, args.free_tokens), ("letter", l_runs, args.letter_tokens)):
        secs, win, parse_rate, written = min(runs, key=lambda r: r[0])
        agree = sum(a == b for a, b in zip(s_win, win)) / n
        ties = sum(w is None for w in win) / n
        ratios[name] = secs / s_secs
        print(f"generated, {name:6} (<= {cap:3} tokens): {secs:7.1f}s = {n / secs:6.2f} comparisons/s  (wrote {written:.1f} tokens "
              f"per answer; parsed {parse_rate:.0%}; {ties:.0%} of pairs tied: the same letter in both orders; same winner as scored {agree:.0%})")
    free, letter = ratios["free"], ratios["letter"]
    print(f"ratio scored/generated: {free:.2f} against the free judge (floor 3.00){'' if free >= 3 else '  BELOW FLOOR'}; "
          f"{letter:.2f} against the judge cut off after its letter")


if __name__ == "__main__":
    main()
