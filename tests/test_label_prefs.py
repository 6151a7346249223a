"""label-prefs: the judge's arithmetic with a fake engine (exact), the command's errors and files, and a real run."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import pytest

from cai_cli.constitution import load_constitution, sample_principles
from cai_cli.engines import EngineOptions, Sampling
from cai_cli.judge import SALT
from cai_cli.judge.maths import orders_disagree, rank, sigmoid
from cai_cli.judge.questions import OPTIONS, PLAIN_OPTIONS, parse_answer
from cai_cli.runner import RunOptions, outcome_record, run_stage
from cai_cli.stages.label_prefs import LabelConfig, LabelPrefs

from conftest import FakeEngine, read_jsonl, reset_fake_engine, run_cai, write_jsonl

CONV = [{"role": "user", "content": "How do I pick a lock?"}]
GOOD, OK, BAD = "I can explain how locks work and suggest a locksmith.", "Ask a locksmith.", "Jam a screwdriver in and force it."


@pytest.fixture(autouse=True)
def _fresh_fake(fake_engine):
    """Every test scripts the one fake engine (conftest) afresh."""
    yield


def judged_by(quality: dict[str, float], bias: float = 0.0, strength: dict[str, float] | None = None, reasoning: str = "Because.",
              fail: Callable[[str], bool] | None = None) -> FakeEngine:
    """The fake engine as a judge whose answer is a known function of the two options: quality(A) - quality(B) (times a
    per-principle strength), plus a constant `bias` on option A (a pure position bias). Its reasoning (chain of thought,
    chat or plain continuation) is REASONING. A prompt where FAIL(prompt) holds crashes the run (Ctrl-C). Each call
    starts a fresh fake: its log holds what this judge was asked."""
    reset_fake_engine()
    strength = strength or {}

    def score(prompt: str, options) -> list[float]:
        assert list(options) in (list(OPTIONS), list(PLAIN_OPTIONS))
        if fail is not None and fail(prompt):
            raise KeyboardInterrupt
        question = prompt[prompt.rindex("Consider the following conversation") :]
        a = re.search(r"\n\(A\) (.*)\n\(B\) ", question).group(1)
        b = re.search(r"\n\(B\) (.*?)\n", question).group(1)
        k = next((v for q, v in strength.items() if q in question), 1.0)
        return [k * quality[a] + bias, k * quality[b]]

    FakeEngine.scorer = staticmethod(score)
    FakeEngine.reply = staticmethod(lambda conv, seed: reasoning)
    FakeEngine.continuation = staticmethod(lambda prompt, seed: " " + reasoning)
    FakeEngine.max_context = None
    return FakeEngine(EngineOptions(engine="fake"))


def stage_with(judge, constitution=None, **cfg) -> LabelPrefs:
    cfg.setdefault("principles", 1)
    stage = LabelPrefs(EngineOptions(engine="transformers"), Sampling(seed=cfg.pop("seed", 0)), constitution or load_constitution(None), LabelConfig(**cfg))
    stage.engine = judge
    return stage


def label(stage, *rows) -> list[dict]:
    rows = [dict(r) for r in rows]
    for i, r in enumerate(rows):
        r.setdefault("id", f"r{i}")
        stage.check(r)
    kept = []
    for r, judged in zip(rows, stage.process(rows)):
        kept += finished(stage, r, judged)[0]
    return kept


def finished(stage, row, outcome) -> tuple[list[dict], list[dict]]:
    """What the runner does with one input row's outcome: its record, counted into the stage's summary."""
    rec = outcome_record(1, row["id"], "", outcome)
    stage.recount(rec["rows"], rec.get("dropped", []), rec.get("tally", []))
    return rec["rows"], rec.get("dropped", [])


def row(*candidates, **extra):
    return {"messages": CONV, "candidates": list(candidates), **extra}


Q = {GOOD: 2.0, OK: 0.5, BAD: -1.0}

# --------------------------------------------------------------------------- the arithmetic, exactly


def test_swapping_the_candidates_mirrors_the_probability():
    forward = label(stage_with(judged_by(Q, bias=1.3)), row(GOOD, BAD))[0]
    backward = label(stage_with(judged_by(Q, bias=1.3)), row(BAD, GOOD))[0]
    assert forward["chosen"][-1]["content"] == backward["chosen"][-1]["content"] == GOOD
    assert forward["preference"]["p_chosen"] == pytest.approx(backward["preference"]["p_chosen"], abs=1e-12)
    assert forward["preference"]["chosen_source"] == "candidates[0]" and backward["preference"]["chosen_source"] == "candidates[1]"


def test_both_orders_cancel_a_pure_position_bias_exactly():
    unbiased = label(stage_with(judged_by(Q, bias=0.0)), row(GOOD, OK))[0]["preference"]
    biased = label(stage_with(judged_by(Q, bias=2.5)), row(GOOD, OK))[0]["preference"]
    # quality gap 1.5 in log-odds -> P(GOOD) = sigmoid(1.5), whatever the bias.
    assert unbiased["p_chosen"] == pytest.approx(sigmoid(1.5), abs=1e-6)
    assert biased["p_chosen"] == pytest.approx(unbiased["p_chosen"], abs=1e-12)
    assert biased["orders_agreed"] is False  # 2.5 on (A) outweighs the 1.5 gap: each order picked (A)
    assert [v["first"] for v in biased["votes"]] == ["chosen", "rejected"]
    assert biased["votes"][0]["p_first"] == pytest.approx(sigmoid(1.5 + 2.5), abs=1e-6)
    assert biased["votes"][1]["p_first"] == pytest.approx(sigmoid(-1.5 + 2.5), abs=1e-6)
    # One order only keeps the bias: --no-swap is cheaper but biased.
    one_order = label(stage_with(judged_by(Q, bias=2.5), swap=False), row(GOOD, OK))[0]["preference"]
    assert one_order["p_chosen"] == pytest.approx(sigmoid(4.0), abs=1e-6)
    assert len(one_order["votes"]) == 1 and one_order["orders_agreed"] is None


def test_cot_reasoning_is_kept_scored_after_and_clamped():
    judge = judged_by(Q, bias=0.7, reasoning="Response (A) keeps people safe.")
    out = label(stage_with(judge, cot=True, clamp=(0.4, 0.6)), row(GOOD, BAD))[0]
    pref = out["preference"]
    assert len(judge.log["chats"]) == 2 and "Think step by step" in judge.log["chats"][0][-1]["content"]
    assert all(v["reasoning"] == "Response (A) keeps people safe." for v in pref["votes"])
    assert all(p.endswith("<assistant> Response (A) keeps people safe.\n\nSo the answer is: (") for p in judge.log["scored"])
    # Votes keep what the judge said (gap 3 + bias 0.7 and -3 + 0.7); the clamp applies once the orders are combined.
    assert [v["p_first"] for v in pref["votes"]] == [pytest.approx(sigmoid(3.7), abs=1e-6), pytest.approx(sigmoid(-2.3), abs=1e-6)]
    assert pref["p_chosen"] == pytest.approx(0.6, abs=1e-9)
    unclamped = label(stage_with(judged_by(Q, bias=0.7), cot=True), row(GOOD, BAD))[0]["preference"]
    assert unclamped["p_chosen"] == pytest.approx(sigmoid(3.0), abs=1e-6)


def test_clamping_after_combining_orders_keeps_a_position_biased_judges_signal():
    # Bias 2.5 on (A) outweighs the 1.5 gap: both orders favour (A), each above 0.6. Clamping each vote
    # first would give 0.6 and 0.6 for "first shown", a 0.5 label; combined first, GOOD still wins.
    pref = label(stage_with(judged_by(Q, bias=2.5), cot=True, clamp=(0.4, 0.6)), row(GOOD, OK))[0]["preference"]
    assert all(v["p_first"] > 0.6 for v in pref["votes"]) and pref["orders_agreed"] is False
    assert pref["p_chosen"] == pytest.approx(0.6, abs=1e-9)
    assert label(stage_with(judged_by(Q, bias=2.5), cot=True, clamp=(0.4, 0.6)), row(OK, GOOD))[0]["chosen"][-1]["content"] == GOOD


def test_k_principles_are_drawn_per_comparison_and_averaged():
    charter = load_constitution(None)
    strength = {p.question: 0.25 * (i + 1) for i, p in enumerate(charter.comparisons)}
    judge = judged_by(Q, bias=0.9, strength=strength)
    pref = label(stage_with(judge, principles=3, seed=7), row(GOOD, BAD, id="x"))[0]["preference"]
    drawn = [charter.comparisons[k] for k in sample_principles(len(charter.comparisons), 3, 7, "x:0-1", SALT)]
    assert [v["principle"] for v in pref["votes"]] == [p.id for p in drawn for _ in range(2)]
    expected = sum(sigmoid(3.0 * strength[p.question]) for p in drawn) / 3
    assert pref["p_chosen"] == pytest.approx(expected, abs=1e-6)
    # Another seed draws other principles; 'all' asks every one.
    other = label(stage_with(judged_by(Q, strength=strength), principles=3, seed=8), row(GOOD, BAD, id="x"))[0]["preference"]
    assert {v["principle"] for v in other["votes"]} != {p.id for p in drawn}
    every = label(stage_with(judged_by(Q, strength=strength), principles=len(charter.comparisons)), row(GOOD, BAD))[0]["preference"]
    assert sorted({v["principle"] for v in every["votes"]}) == sorted(p.id for p in charter.comparisons)


def test_best_worst_keeps_the_best_and_worst_of_several_candidates():
    out = label(stage_with(judged_by(Q, bias=-0.8)), row(OK, BAD, GOOD))
    assert len(out) == 1
    pref = out[0]["preference"]
    assert out[0]["chosen"][-1]["content"] == GOOD and out[0]["rejected"][-1]["content"] == BAD
    assert pref["ranking"] == [2, 0, 1] and pref["chosen_source"] == "candidates[2]"
    assert pref["p_chosen"] == pytest.approx(sigmoid(3.0), abs=1e-6)  # the direct GOOD-vs-BAD comparison
    assert pref["win_rates"][2] > pref["win_rates"][0] > pref["win_rates"][1]


def test_rank_orders_by_mean_win_probability_and_breaks_ties_by_index():
    order, rates = rank(3, {(0, 1): 0.9, (0, 2): 0.2, (1, 2): 0.4})
    assert order == [2, 0, 1] and rates == pytest.approx([0.55, 0.25, 0.7])
    assert rank(3, {(0, 1): 0.5, (0, 2): 0.5, (1, 2): 0.5})[0] == [0, 1, 2]


def test_pairs_all_gives_one_row_per_pair_each_with_one_chosen_and_rejected():
    out = label(stage_with(judged_by(Q)), row(OK, BAD, GOOD, id="q"))
    assert len(out) == 1
    out = label(stage_with(judged_by(Q), pairs="all"), row(OK, BAD, GOOD, id="q"))
    assert [r["id"] for r in out] == ["q:0-1", "q:0-2", "q:1-2"]
    winners = [r["chosen"][-1]["content"] for r in out]
    assert winners == [OK, GOOD, GOOD]
    for r in out:
        assert r["chosen"][:-1] == r["rejected"][:-1] == CONV and r["chosen"][-1]["role"] == "assistant"
        assert 0.5 <= r["preference"]["p_chosen"] <= 1.0


def test_identical_responses_are_dropped_not_judged():
    judge = judged_by(Q)
    stage = stage_with(judge)
    same = {**row(GOOD, GOOD), "id": "same"}
    kept, dropped = finished(stage, same, stage.process([same])[0])
    assert kept == [] and len(dropped) == 1 and dropped[0]["dropped"].startswith("identical")
    assert judge.log["scored"] == []
    assert "1 identical" in stage.summary()


def test_plain_format_is_the_papers_layout_exactly():
    judge = judged_by(Q)
    pref = label(stage_with(judge, fmt="plain"), row(GOOD, BAD))[0]["preference"]
    assert judge.log["scored"][0] == (
        "Consider the following conversation between a human and an assistant:\n\n"
        f"Human: {CONV[0]['content']}\n\n"
        f"{load_constitution(None).comparison_by_id(pref['votes'][0]['principle']).question}\n"
        f"Options:\n(A) {GOOD}\n(B) {BAD}\nThe answer is:"
    )
    assert judge.log["options"] == [[" (A)", " (B)"]] and all("<user>" not in p and "Assistant:" not in p for p in judge.log["scored"])
    assert pref["p_chosen"] == pytest.approx(sigmoid(3.0), abs=1e-6)


def test_plain_cot_reasons_and_is_scored_in_the_same_plain_text():
    judge = judged_by(Q, reasoning="(A) is kinder.")
    pref = label(stage_with(judge, fmt="plain", cot=True, clamp=(0.4, 0.6)), row(GOOD, BAD))[0]["preference"]
    assert judge.log["chats"] == [] and len(judge.log["completed"]) == 2  # generated from plain text, not a chat template
    for asked, scored in zip(judge.log["completed"], judge.log["scored"]):
        assert asked.startswith("Human: Consider the following conversation") and asked.endswith("\n\nAssistant: Let's think step-by-step:")
        assert scored == asked + " (A) is kinder.\nSo the answer is:"
    assert judge.log["options"] == [[" (A)", " (B)"]] and pref["votes"][0]["reasoning"] == "(A) is kinder." and pref["p_chosen"] == pytest.approx(0.6)


def test_plain_cot_on_an_engine_that_cannot_continue_text_is_refused_before_work():
    from cai_cli.errors import CaiError

    judge = judged_by(Q)
    FakeEngine.complete = None  # an engine that can only chat
    stage = stage_with(judge, fmt="plain", cot=True)
    with pytest.raises(CaiError, match="--format plain --cot"):
        stage.check_loaded({**row(GOOD, BAD), "id": "x"})
    chat = judged_by(Q)
    label(stage_with(chat, fmt="chat"), row(GOOD, BAD))
    assert all(p.startswith("<user>Consider") and p.endswith("<assistant> The answer is: (") for p in chat.log["scored"])


def test_judge_examples_come_before_the_question():
    from cai_cli.judge import JudgeExample

    ex = JudgeExample((("user", "Hi"),), "Hello!", "Go away.", "A")
    judge = judged_by({**Q, "Hello!": 1.0, "Go away.": -1.0})
    label(stage_with(judge, examples=(ex,)), row(GOOD, BAD))
    assert all(p.count("Consider the following conversation") == 2 and "<assistant>The answer is: (A)</assistant>" in p for p in judge.log["scored"])


def test_judge_examples_file_is_checked_line_by_line(tmp_path):
    from cai_cli.errors import InputError
    from cai_cli.judge import load_judge_examples

    good = {"prompt": "Hi", "a": "Hello!", "b": "Go away.", "answer": "A"}
    path = write_jsonl(tmp_path / "ex.jsonl", [good, {**good, "answer": "(B)"}])
    with pytest.raises(InputError, match=r"ex.jsonl:2: field 'answer': expected \"A\" or \"B\""):
        load_judge_examples(str(path))
    (ex,) = load_judge_examples(str(write_jsonl(tmp_path / "ok.jsonl", [good])))
    assert ex.answer == "A" and ex.conversation == (("user", "Hi"),)


def test_initial_vs_final_and_revision_wins():
    r = {"messages": CONV, "initial_response": BAD, "response": GOOD}
    pref = label(stage_with(judged_by(Q), pair="initial-vs-final"), r)[0]["preference"]
    assert pref["chosen_source"] == "response" and pref["p_chosen"] == pytest.approx(sigmoid(3.0), abs=1e-6)
    wins = label(stage_with(judged_by({}), mode="revision-wins"), {"messages": CONV, "initial_response": GOOD, "response": BAD})[0]
    assert wins["chosen"][-1]["content"] == BAD and wins["preference"]["p_chosen"] == 1.0 and wins["preference"]["method"] == "revision-wins"


def test_gold_accuracy_counts_pairwise_judgments_involving_the_gold_response():
    stage = stage_with(judged_by(Q), gold="best")
    label(stage, row(GOOD, BAD, best=0), row(BAD, GOOD, best="A"), row(OK, BAD, GOOD, best=GOOD), row(GOOD, BAD))
    # Row 1 is right, row 2 wrong (gold names BAD), row 3 has 2 pairs with GOOD (both right), row 4 has no gold.
    # With its Wilson 95% interval (scipy): 3 of 4.
    assert "gold accuracy 0.750 (95% CI 0.301-0.954) on 4 pairs" in stage.summary()
    assert stage.summary_dict()["gold"]["accuracy"] == {"value": 0.75, "ci": [0.3006, 0.9544], "n": 4, "k": 3, "ties": 0, "mean_p_gold": 0.6925}
    assert "1 rows without best" in stage.summary()


def test_summary_reports_order_disagreement_and_position_bias():
    stage = stage_with(judged_by(Q, bias=2.5))
    label(stage, row(GOOD, OK), row(GOOD, BAD))
    s = stage.summary()
    # Row 1: gap 1.5 < bias 2.5, the orders disagree; row 2: gap 3 > 2.5, they agree.
    assert "orders disagreed 1/2 (50%)" in s
    mean_first = (sigmoid(4.0) + sigmoid(1.0) + sigmoid(5.5) + sigmoid(-0.5)) / 4
    assert f"mean p(first shown) {mean_first:.3f}" in s
    assert orders_disagree(1.0, 0.5) and not orders_disagree(1.0, -0.5) and not orders_disagree(0.0, 0.0)


def test_min_confidence_drops_near_ties_into_a_counted_file(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(GOOD, OK, id="close"), row(GOOD, BAD, id="clear")])
    out = tmp_path / "prefs.jsonl"
    stage = stage_with(judged_by({GOOD: 0.1, OK: 0.0, BAD: -3.0}), min_confidence=0.6)
    run_stage(stage, RunOptions(input=str(src), output=str(out), progress=False))
    assert [r["id"] for r in read_jsonl(out)] == ["clear"]
    dropped = read_jsonl(tmp_path / "prefs.jsonl.dropped.jsonl")
    assert [r["id"] for r in dropped] == ["close"] and "below --min-confidence 0.6" in dropped[0]["dropped"]
    assert "1 below --min-confidence 0.6" in stage.summary()
    assert not (tmp_path / "prefs.jsonl.judged.jsonl").exists() and "_label_prefs" not in read_jsonl(out)[0]


def test_a_rerun_resumes_from_the_side_file_and_skipped_rows_go_to_errors(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(GOOD, BAD, id="done"), row(GOOD, OK, id="todo"), {"id": "bad", "prompt": "hi"}])
    out = tmp_path / "prefs.jsonl"

    with pytest.raises(KeyboardInterrupt):
        run_stage(stage_with(judged_by(Q, fail=lambda prompt: OK in prompt)), RunOptions(input=str(src), output=str(out), on_error="skip", batch_size=1, progress=False))
    assert not out.exists() and (tmp_path / "prefs.jsonl.partial").exists()
    judge = judged_by(Q)
    result = run_stage(stage_with(judge), RunOptions(input=str(src), output=str(out), on_error="skip", progress=False))
    got = read_jsonl(out)
    assert [r["id"] for r in got] == ["done", "todo"] and result.resumed == 1
    assert len(judge.log["scored"]) == 2 and all(OK in p for p in judge.log["scored"])  # only "todo" was asked
    (err,) = read_jsonl(tmp_path / "prefs.jsonl.errors.jsonl")
    assert err["line"] == 3 and err["field"] == "candidates"
    assert not (tmp_path / "prefs.jsonl.partial").exists()


def test_stdout_gets_expanded_rows(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [row(OK, BAD, GOOD, id="q")])
    run_stage(stage_with(judged_by(Q), pairs="all"), RunOptions(input=str(src), progress=False))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in lines] == ["q:0-1", "q:0-2", "q:1-2"] and all("_label_prefs" not in r for r in lines)


def test_a_judge_that_gives_neither_option_any_probability_fails_the_row():
    blind = judged_by(Q)
    FakeEngine.scorer = staticmethod(lambda prompt, options: [-math.inf, -math.inf])
    failure = stage_with(blind).process([{**row(GOOD, BAD), "id": "x"}])[0]
    assert "no probability" in failure.reason


def test_parse_answer_reads_generated_letters():
    assert [parse_answer(t) for t in ["(A) The", "The answer is (B).", "Option A is better", "B.", "Both are fine"]] == ["A", "B", "A", "B", None]


# --------------------------------------------------------------------------- the command: errors and cheap modes

FAST = ["--engine", "transformers"]


@pytest.mark.parametrize(
    "rows, args, expected",
    [
        ([{"prompt": "hi"}], [], "in.jsonl:1: field 'candidates': missing"),
        ([{"prompt": "hi", "candidates": ["only one"]}], [], "in.jsonl:1: field 'candidates': has 1 candidate; need at least 2"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}, {"prompt": "hi", "candidates": ["a", 3]}], [], "in.jsonl:2: field 'candidates[1]': expected a string, got int"),
        ([{"prompt": "hi", "candidates": "a b"}], [], "in.jsonl:1: field 'candidates': expected a list of strings, got str"),
        ([{"prompt": "hi", "response": "b"}], ["--pair", "initial-vs-final"], "in.jsonl:1: field 'initial_response': missing"),
        ([{"prompt": "hi", "candidates": ["a", "b"], "best": 5}], ["--gold-field", "best"], "in.jsonl:1: field 'best': candidate index 5 is out of range"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}], ["--clamp", "0.3,0.6"], "--clamp: expected LO,HI"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}], ["--clamp", "wide"], "--clamp: expected LO,HI"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}], ["--principles", "99"], "--principles 99: the constitution has only 12"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}], ["--min-confidence", "0.3"], "--min-confidence: expected a probability between 0.5 and 1"),
        ([{"prompt": "hi", "candidates": ["a", "b"]}], ["--mode", "revision-wins", "--pair", "candidates"], "needs --pair initial-vs-final"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, rows, args, expected):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = run_cai("label-prefs", str(src), "-o", str(out), *FAST, *args)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("out.jsonl.*"))


def test_constitution_without_comparisons_is_refused(tmp_path):
    charter = tmp_path / "crit.yaml"
    charter.write_text("name: crit\ncritiques:\n  - id: harm\n    critique: Is it harmful?\n    revision: Make it harmless.\n")
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi", "candidates": ["a", "b"]}])
    proc = run_cai("label-prefs", str(src), "-c", str(charter), *FAST)
    assert proc.returncode == 2
    assert f"{charter}: has no comparison questions" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # The cheap rule needs no judge, so no comparisons either.
    rev = write_jsonl(tmp_path / "rev.jsonl", [{"prompt": "hi", "initial_response": "a", "response": "b"}])
    assert run_cai("label-prefs", str(rev), "-c", str(charter), "--mode", "revision-wins").returncode == 0


def test_revision_wins_with_gold_accuracy_through_the_cli(tmp_path):
    rows = [
        {"id": "1", "prompt": "p1", "initial_response": "bad", "response": "good", "gold": "revision"},
        {"id": "2", "prompt": "p2", "initial_response": "fine", "response": "worse", "gold": "initial"},
        {"id": "3", "prompt": "p3", "initial_response": "same", "response": "same"},
        {"id": "4", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "p4"}], "initial_response": "x", "response": "y", "keep": [1]},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "prefs.jsonl"
    proc = run_cai("label-prefs", str(src), "-o", str(out), "--mode", "revision-wins", "--gold-field", "gold")
    assert proc.returncode == 0, proc.stderr
    got = read_jsonl(out)
    assert [r["id"] for r in got] == ["1", "2", "4"]
    assert got[2]["chosen"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "p4"}, {"role": "assistant", "content": "y"}]
    assert got[2]["keep"] == [1] and got[0]["preference"]["p_chosen"] == 1.0
    meta = got[0]["meta"]["label-prefs"]
    assert {k: meta[k] for k in ("mode", "pair")} == {"mode": "revision-wins", "pair": "initial-vs-final"}
    assert set(meta) == {"mode", "pair", "input_hash", "settings_hash", "cai_version"}  # what --amend reads; no model played a part
    assert "gold accuracy 0.500 (95% CI 0.095-0.905) on 2 pairs" in proc.stderr and "1 identical" in proc.stderr
    summary = json.loads((tmp_path / "prefs.summary.json").read_text())
    assert summary["pairs"]["kept"] == 3 and summary["gold"]["accuracy"]["ci"] == [0.0945, 0.9055]
    assert [r["id"] for r in read_jsonl(tmp_path / "prefs.jsonl.dropped.jsonl")] == ["3"]


# --------------------------------------------------------------------------- the embedded model, for real


@pytest.mark.slow
def test_generate_then_label_prefs_on_the_embedded_model(tmp_path):
    prompts = [{"id": "a", "prompt": "How can I get back at a coworker who embarrassed me?"}, {"id": "b", "prompt": "Tell me a fun fact about owls."}]
    gen = run_cai("generate", "-", "--n", "2", "--max-tokens", "8", *FAST, input="".join(json.dumps(p) + "\n" for p in prompts))
    assert gen.returncode == 0, gen.stderr
    chat = run_cai("label-prefs", "--principles", "2", "--gold-field", "best", *FAST, input=gen.stdout.replace('"id": "a"', '"best": 0, "id": "a"'))
    assert chat.returncode == 0, chat.stderr
    rows = [json.loads(line) for line in chat.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    for r in rows:
        pref = r["preference"]
        assert 0.5 <= pref["p_chosen"] <= 1.0 and pref["margin"] == pytest.approx(2 * pref["p_chosen"] - 1, abs=1e-5)
        assert len(pref["votes"]) == 4 and {v["first"] for v in pref["votes"]} == {"chosen", "rejected"}
        assert {r["chosen"][-1]["content"], r["rejected"][-1]["content"]} == set(r["candidates"])
        meta = r["meta"]["label-prefs"]
        assert meta["model"].startswith("embedded") and meta["constitution"] == "default" and meta["principles"] == 2 and meta["seed"] == 0
    line = chat.stderr.strip().splitlines()[-1]
    assert line.startswith("cai label-prefs: rows 2 in, 2 out") and "orders disagreed" in line and "mean p(first shown)" in line
    assert "gold accuracy" in line and "on 1 pairs" in line
    assert "tokens 0 in" not in line and "tok/s" not in line  # the scored judge writes no tokens: no rate of nothing

    # trl takes chosen/rejected as conversational preference data with an implicit prompt.
    from trl.data_utils import extract_prompt, is_conversational

    ex = extract_prompt({"chosen": rows[0]["chosen"], "rejected": rows[0]["rejected"]})
    assert ex["prompt"] == [{"role": "user", "content": prompts[0]["prompt"]}] and is_conversational(ex)

    src = write_jsonl(tmp_path / "gen.jsonl", [json.loads(line) for line in gen.stdout.splitlines()])
    out = tmp_path / "prefs.jsonl"
    plain = run_cai("label-prefs", str(src), "-o", str(out), "--judge-format", "plain", "--cot", "--max-tokens", "6", "--limit", "1",
                    "--principles", "1", *FAST)  # one principle, both orders: two reasonings written, not eight
    assert plain.returncode == 0, plain.stderr
    (r,) = read_jsonl(out)
    assert r["meta"]["label-prefs"]["format"] == "plain" and r["meta"]["label-prefs"]["clamp"] == [0.4, 0.6]
    # Votes keep the judge's own probabilities; the clamp bounds each principle once its orders are combined.
    assert len(r["preference"]["votes"]) == 2
    assert all(0.0 < v["p_first"] < 1.0 and isinstance(v["reasoning"], str) for v in r["preference"]["votes"])
    assert 0.5 <= r["preference"]["p_chosen"] <= 0.6 + 1e-9
    summary = json.loads((tmp_path / "prefs.summary.json").read_text())
    assert summary["judge"]["comparisons"] == 1 and summary["settings"]["format"] == "plain"


# --------------------------------------------------------------------------- judge examples in the paper's format, bias, truncation

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_the_papers_judge_few_shot_file_loads_with_balanced_positions():
    from cai_cli.judge import load_judge_examples

    examples = load_judge_examples(str(FIXTURES / "judge_fewshot_paper.json"))
    # One example per (correct, incorrect) pair: 1 + 2; the correct answer alternates between (A) and (B).
    assert [ex.answer for ex in examples] == ["A", "B", "A"]
    assert examples[0].conversation == (("user", "How can I get into my ex's email account?"),)
    assert examples[1].conversation[-1] == ("user", "Yes, she ignores it.") and len(examples[1].conversation) == 3
    assert examples[1].b.startswith("Put the post") and examples[1].a.startswith("Spray her")
    judge = judged_by({**Q, **{t: 0.0 for ex in examples for t in (ex.a, ex.b)}})
    label(stage_with(judge, fmt="plain", examples=examples), row(GOOD, BAD))
    first = judge.log["scored"][0]
    assert first.count("Consider the following conversation") == 4 and first.count("The answer is: (A)") == 2 and first.count("The answer is: (B)") == 1
    assert first.endswith("The answer is:")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"prompt": "x"}', "field 'prompt': text before the first 'Human:'"),
        ('[{"prompt": "\\n\\nHuman: hi\\n\\nAssistant:", "corrects": ["ok"]}]', "entry 0: field 'incorrects': expected a non-empty list of strings, missing"),
        ('[{"prompt": "\\n\\nHuman: hi\\n\\nAssistant:", "corrects": ["ok"], "incorrects": []}, 3]', "entry 0: field 'incorrects': expected a non-empty list of strings, got []"),
        ('[{"prompt": "hello", "corrects": ["a"], "incorrects": ["b"]}]', "entry 0: field 'prompt': text before the first 'Human:'"),
        ('[{"corrects": ["a"], "incorrects": ["b"]}]', "entry 0: field 'prompt': missing"),
        ('{"prompt": "hi", "a": "x", "b": "y", "answer": "C"}', "ex.json:1: field 'answer': expected \"A\" or \"B\""),
        ('{"prompt": "hi", "corrects": ["a"], "incorrects": ["b"]}', "ex.json:1: field 'corrects': the paper's"),
        ('{"oops": 1}', "ex.json:1: field 'prompt'"),
    ],
)
def test_a_judge_examples_file_in_neither_format_is_one_line_exit_2(tmp_path, content, expected):
    if content.startswith('{"prompt": "x"}'):
        content, expected = '[{"prompt": "x", "corrects": ["a"], "incorrects": ["b"]}]', "entry 0: field 'prompt': text before the first 'Human:'"
    ex = tmp_path / "ex.json"
    ex.write_text(content)
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi", "candidates": ["a", "b"]}])
    proc = run_cai("label-prefs", str(src), "--judge-examples", str(ex), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr and "ex.json" in proc.stderr, proc.stderr


def test_length_bias_and_each_principles_agreement_are_reported():
    charter = load_constitution(None)
    first, second = charter.comparisons[0], charter.comparisons[1]
    # The second principle has the opposite opinion of the first (strength -0.5) and is outvoted.
    stage = stage_with(judged_by(Q, strength={first.question: 1.0, second.question: -0.5}), constitution=_two(charter), principles=2)
    label(stage, row(GOOD, BAD), row(OK, BAD), row(GOOD, OK))
    judge = stage.summary_dict()["judge"]
    assert judge["principles"][first.id] == {"asked": 3, "agreed": 3, "agreement": 1.0}
    assert judge["principles"][second.id] == {"asked": 3, "agreed": 0, "agreement": 0.0}
    # GOOD (longest) beat BAD and OK; OK (shortest) beat BAD (longer): the longer won 2 of 3.
    assert judge["length_bias"]["k"] == 2 and judge["length_bias"]["n"] == 3 and judge["length_bias"]["chance"] == 0.5
    assert judge["position_bias"]["mean_p_first"] == pytest.approx(0.5, abs=1e-3)
    line = stage.summary()
    assert "longer chosen 2/3 (67%, chance 50%)" in line and f"agreement with ensemble, lowest: {second.id} 0%" in line


def _two(charter):
    from dataclasses import replace

    return replace(charter, comparisons=charter.comparisons[:2])


def test_pairs_with_a_truncated_side_are_marked_and_counted(tmp_path):
    meta = {"generate": {"finish_reason": ["stop", "length"]}}
    stage = stage_with(judged_by(Q))
    out = label(stage, row(GOOD, BAD, meta=meta), row(GOOD, OK))
    assert out[0]["preference"]["truncated"] == ["rejected"] and out[1]["preference"]["truncated"] == []
    assert "1 kept pairs with a side cut at --max-tokens" in stage.summary()
    revised = {"messages": CONV, "initial_response": BAD, "response": GOOD, "meta": {"generate": {"finish_reason": "length"}},
               "rounds": [{"critique": "c", "critique_finish_reason": "stop", "revision": GOOD, "revision_finish_reason": "stop"}]}
    pref = label(stage_with(judged_by(Q), pair="initial-vs-final"), revised)[0]["preference"]
    assert pref["chosen_source"] == "response" and pref["truncated"] == ["rejected"]
    # The revision's own round says whether it was cut (meta.revise no longer does).
    revised["rounds"] = [dict(revised["rounds"][0], revision_finish_reason="length")]
    pref = label(stage_with(judged_by(Q), pair="initial-vs-final"), revised)[0]["preference"]
    assert sorted(pref["truncated"]) == ["chosen", "rejected"]


def test_summary_json_beside_the_output(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(GOOD, BAD, id="a"), row(OK, GOOD, id="b")])
    stage = stage_with(judged_by(Q, bias=1.0))
    result = run_stage(stage, RunOptions(input=str(src), output=str(tmp_path / "prefs.jsonl"), progress=False))
    assert result.summary == tmp_path / "prefs.summary.json"
    data = json.loads(result.summary.read_text())
    assert data["pairs"]["kept"] == 2 and data["judge"]["comparisons"] == 2
    assert data["judge"]["position_bias"]["mean_p_first"] > 0.6 and data["judge"]["orders_disagreed"]["n"] == 2
    written = set(tmp_path.iterdir())
    assert run_stage(stage_with(judged_by(Q)), RunOptions(input=str(src), progress=False)).summary is None  # to stdout: the line only
    assert set(tmp_path.iterdir()) == written
