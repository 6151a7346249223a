"""generate, critique and revise on a fake engine: what the model sees, what each round records, and the
command line (in process, the engine replaced by the fake). No model runs here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai_cli.constitution import load_constitution
from cai_cli.engines import EngineOptions, Sampling
from cai_cli.judge.request_harm import HARMFUL as HARMFUL_REQUEST
from cai_cli.judge.request_harm import HARMLESS as HARMLESS_REQUEST
from cai_cli.stages.critique import Critique
from cai_cli.stages.critique_prompts import CHANGE_QUESTION, CURRENT_HEADER, NO_CHANGE_QUESTION
from cai_cli.stages.revise import Revise

from conftest import FakeEngine, run_cai, yes_no_scorer

BOMB = "No, the response is harmful: it explains how to make a bomb."

# Critiques that find harm while saying "no", "no doubt", "nothing", "otherwise no problems", ... and
# sycophantic ones that find nothing. By default every one of them gets a revision.
ADVERSARIAL = [
    BOMB,
    "There is no doubt that the response is harmful: it explains how to make a bomb.",
    "The response shows no regard for the safety of the neighbour whose lock it teaches to pick.",
    "It gives step-by-step help to pick a neighbour's lock, which is a problem. Otherwise there are no problems.",
    "There are no issues with this response.",
    "No. It is dangerous: it lists the quantities of each chemical.",
    "Nothing about this response is safe; it helps the user stalk a person.",
    "The response is not harmless at all.",
    "No problem is too small to mention: it leaks the coworker's home address.",
    "There is no harmful content except the detailed poison recipe, which must go.",
    "No concerns about the tone, but it tells the user how to evade the police.",
    "The response does not contain a refusal, and it should: it helps build a weapon.",
    "No changes are needed to the tone; the content, however, explains how to hotwire a car.",
    "It is appropriate in tone but gives a lethal dose.",
    "I see no issues.",
    "The response is already appropriate and harmless.",
    "No, no, no. This is harmful.",
    "Nothing to change? Wrong: the response encourages self-harm.",
    "The response has no ethical problems whatsoever. Actually, it is deeply unethical: it writes a scam email.",
    "It does not need any disclaimers removed; it needs the malware code removed.",
    "No doubt about it: this answer is dangerous.",
    "The response doesn't require changes in wording, but it is illegal advice.",
    "Great answer, nothing harmful here, no revision needed!",
]
HARMFUL = "Sure! Mix the following chemicals in this order to make a bomb: ..."


@pytest.fixture(autouse=True)
def _fresh_fake(fake_engine):
    """Every test scripts the one fake engine (conftest) afresh."""
    yield


def fake(reply=None, p_change=None, yes_bias: float = 3.0, max_context: int | None = None, p_harmful=None) -> FakeEngine:
    """The fake engine, scripted: REPLY(conversation) for every generation (default: a safe answer that still helps),
    and on the skip check's " Yes"/" No" questions P(change) = P_CHANGE(prompt) (default 0.5; None: no probability),
    on the harmful-request questions P(harmful) = P_HARMFUL(prompt) (default: 0.9 where the request is about a bomb,
    0.1 otherwise), plus a constant lean of YES_BIAS towards "Yes" on every question. Words count as tokens."""
    say = reply or (lambda conv: "A safe answer that still helps.")
    p = p_change or (lambda prompt: 0.5)
    harm = p_harmful or (lambda prompt: 0.9 if "bomb" in prompt else 0.1)

    def p_yes(prompt: str) -> float | None:
        if HARMFUL_REQUEST in prompt or HARMLESS_REQUEST in prompt:
            q = harm(prompt)
            return None if q is None else (q if HARMFUL_REQUEST in prompt else 1.0 - q)
        assert CHANGE_QUESTION in prompt or NO_CHANGE_QUESTION in prompt
        q = p(prompt)
        return None if q is None else (q if CHANGE_QUESTION in prompt else 1.0 - q)

    FakeEngine.reply = staticmethod(lambda conv, seed: say(conv))
    FakeEngine.scorer = staticmethod(yes_no_scorer(p_yes, lean=yes_bias))
    FakeEngine.max_context = max_context
    return FakeEngine(EngineOptions(engine="fake"))


def critiqued_row(i: int, critique: str, principle: str = "harm") -> dict:
    c = load_constitution("default").critique_by_id(principle)
    return {
        "id": f"r{i}",
        "prompt": "How do I make a bomb?",
        "response": HARMFUL,
        "initial_response": HARMFUL,
        "rounds": [{"principle": principle, "critique_request": c.critique, "critique": critique}],
    }


def revise_stage(engine, **kw) -> Revise:
    stage = Revise(EngineOptions(), Sampling(max_tokens=64), load_constitution("default"), **kw)
    stage.engine = engine
    return stage


def run_cli(monkeypatch, engine, *args, input: str | None = None):
    """`cai ARGS` in this process, on the fake engine as ENGINE scripted it (`--engine fake`)."""
    return run_cai(*args, "--engine", "fake", "--no-progress", input=input)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- revise: never keeps a harmful answer


def test_every_adversarial_critique_gets_a_new_revision_by_default():
    assert len(ADVERSARIAL) >= 20
    stage = revise_stage(fake())
    rows = stage.process([critiqued_row(i, c) for i, c in enumerate(ADVERSARIAL)])
    for row, critique in zip(rows, ADVERSARIAL):
        last = row["rounds"][-1]
        assert last["revision"] == "A safe answer that still helps.", critique
        assert last["changed"] is True, critique
        assert row["response"] == last["revision"] != HARMFUL
        assert "skip_check" not in last and "discarded_revision" not in last
    assert stage.engine.log["scored"] == []  # no yes/no question unless --skip-unchanged
    assert stage.stats.extra["revised"] == len(ADVERSARIAL)


def test_a_revision_identical_to_the_response_is_written_and_marked_unchanged():
    stage = revise_stage(fake(reply=lambda conv: HARMFUL))
    (row,) = stage.process([critiqued_row(0, "There are no issues with this response.")])
    assert row["rounds"][-1]["revision"] == HARMFUL and row["rounds"][-1]["changed"] is False
    assert "revised 0, unchanged 1" in stage.summary()


def test_skip_unchanged_follows_the_models_scores_not_the_wording():
    # P(change) alternates regardless of what the critique says: the decision must follow it.
    scripted = {c: (0.9 if i % 2 else 0.1) for i, c in enumerate(ADVERSARIAL)}

    def p_change(prompt):
        return next(p for c, p in scripted.items() if f"\n\n{c}\n\n" in prompt)

    stage = revise_stage(fake(p_change=p_change, yes_bias=3.0), skip_unchanged=True)
    rows = stage.process([critiqued_row(i, c) for i, c in enumerate(ADVERSARIAL)])
    for row, critique in zip(rows, ADVERSARIAL):
        last = row["rounds"][-1]
        p = scripted[critique]
        # both phrasings asked; the constant lean towards "Yes" (+3 nats, enough to flip either question alone) cancels
        assert last["skip_check"]["p_change"] == pytest.approx(p, abs=1e-6), critique
        assert last["skip_check"]["skipped"] is (p < 0.5)
        if p < 0.5:
            assert last["revision"] == HARMFUL and last["changed"] is False
        else:
            assert last["revision"] == "A safe answer that still helps." and last["changed"] is True
    skipped = sum(p < 0.5 for p in scripted.values())
    assert stage.stats.extra["skipped"] == skipped
    assert f"skipped {skipped} (--skip-unchanged)" in stage.summary()
    assert len(stage.engine.log["scored"]) == 2 * len(ADVERSARIAL)
    assert len(stage.engine.log["chats"]) == len(ADVERSARIAL) - skipped  # skipped rows cost no generation


def test_skip_threshold_and_an_unreadable_score():
    stage = revise_stage(fake(p_change=lambda prompt: 0.3), skip_unchanged=True, skip_threshold=0.2)
    (row,) = stage.process([critiqued_row(0, "I see no issues.")])
    assert row["rounds"][-1]["skip_check"] == {"p_change": pytest.approx(0.3), "threshold": 0.2, "skipped": False}
    stage = revise_stage(fake(p_change=lambda prompt: None), skip_unchanged=True)
    (row,) = stage.process([critiqued_row(0, "I see no issues.")])
    assert row["rounds"][-1]["skip_check"]["p_change"] is None
    assert row["rounds"][-1]["changed"] is True  # no probability: never a reason to keep the old answer


def test_an_empty_revision_is_kept_and_marked():
    stage = revise_stage(fake(reply=lambda conv: "Revised response:"))
    (row,) = stage.process([critiqued_row(0, BOMB)])
    last = row["rounds"][-1]
    assert last["revision"] == "Revised response:"  # cleaning never empties a text
    stage = revise_stage(fake(reply=lambda conv: "   "))
    (row,) = stage.process([critiqued_row(0, BOMB)])
    last = row["rounds"][-1]
    assert last["revision"] == "" and last["empty_revision"] is True and last["changed"] is True
    assert row["response"] == ""
    assert "1 empty revisions kept as written" in stage.summary()


def test_clean_output_keeps_the_raw_text_visible():
    stage = revise_stage(fake(reply=lambda conv: "Sure, here is a revised response: Please don't build bombs."))
    (row,) = stage.process([critiqued_row(0, BOMB)])
    assert row["rounds"][-1]["revision"] == "Please don't build bombs."
    assert row["rounds"][-1]["revision_raw"].startswith("Sure, here is a revised response:")


def test_cai_revise_default_flags_revises_the_bomb_row(monkeypatch, tmp_path):
    src = write_rows(tmp_path / "c1.jsonl", [critiqued_row(0, BOMB)])
    out = tmp_path / "r1.jsonl"
    result = run_cli(monkeypatch, fake(), "revise", str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    (row,) = read_rows(out)
    assert row["rounds"][-1]["changed"] is True
    assert row["response"] == row["rounds"][-1]["revision"] == "A safe answer that still helps."
    assert "revised 1, unchanged 0" in result.stderr


# --------------------------------------------------------------------------- finish reasons, --max-tokens


def test_generate_max_tokens_4_records_length_and_the_summary_counts_it(monkeypatch, tmp_path):
    src = write_rows(tmp_path / "p.jsonl", [{"id": f"p{i}", "prompt": f"Tell me about topic {i}."} for i in range(3)])
    out = tmp_path / "g.jsonl"
    engine = fake(reply=lambda conv: "one two three four five six seven")
    result = run_cli(monkeypatch, engine, "generate", str(src), "-o", str(out), "--max-tokens", "4")
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [r["meta"]["generate"]["finish_reason"] for r in rows] == ["length"] * 3
    assert [r["response"] for r in rows] == ["one two three four"] * 3
    assert "3 truncated at --max-tokens" in result.stderr


def test_the_truncated_count_after_a_resume_equals_an_uninterrupted_runs(monkeypatch, tmp_path):
    rows = [{"id": f"p{i}", "prompt": f"Tell me about topic {i}."} for i in range(6)]
    src = write_rows(tmp_path / "p.jsonl", rows)
    crash = {"at": "topic 4"}

    def reply(conv):
        if crash["at"] and crash["at"] in conv[-1]["content"]:
            raise KeyboardInterrupt  # the run is killed in its third batch
        short = any(f"topic {i}." in conv[-1]["content"] for i in (2, 3))
        return "Short." if short else "one two three four five six seven"  # rows 0, 1, 4, 5 are cut at 4 tokens

    args = ("generate", str(src), "-o", str(tmp_path / "g.jsonl"), "--max-tokens", "4", "--batch-size", "2")
    assert run_cli(monkeypatch, fake(reply=reply), *args).exit_code != 0
    crash["at"] = None
    resumed = run_cli(monkeypatch, fake(reply=reply), *args)
    assert resumed.exit_code == 0, resumed.output
    assert "4 resumed" in resumed.stderr
    whole = run_cli(monkeypatch, fake(reply=reply), *args[:3], str(tmp_path / "whole.jsonl"), *args[4:])
    # Counted from the finished rows: the four cut texts, two of them written by the run before the crash.
    assert "4 truncated at --max-tokens" in resumed.stderr and "4 truncated at --max-tokens" in whole.stderr


def test_sampling_defaults_suit_the_model(monkeypatch, tmp_path):
    from cai_cli.model_specs import EMBEDDED_SAMPLING

    src = write_rows(tmp_path / "p.jsonl", [{"id": "p0", "prompt": "Hi"}])
    # The embedded 135M model: a short limit and a penalty on repeats, so its texts end on their own.
    out = tmp_path / "g.jsonl"
    assert run_cli(monkeypatch, fake(), "generate", str(src), "-o", str(out)).exit_code == 0
    embedded = read_rows(out)[0]["meta"]["generate"]["sampling"]
    assert embedded["max_tokens"] == EMBEDDED_SAMPLING["max_tokens"] < 1024
    assert embedded["frequency_penalty"] == EMBEDDED_SAMPLING["frequency_penalty"] > 0
    # Any other model: room for real answers (the recipe allowed 1,500 tokens for revisions), no penalty.
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    out = tmp_path / "g-other.jsonl"
    assert run_cli(monkeypatch, fake(), "generate", str(src), "-o", str(out), "--model", str(other)).exit_code == 0
    assert read_rows(out)[0]["meta"]["generate"]["sampling"] == {**Sampling().as_meta(), "max_tokens": 1024}
    # An option given on the command line wins over the model's default.
    out = tmp_path / "g-given.jsonl"
    assert run_cli(monkeypatch, fake(), "generate", str(src), "-o", str(out), "--max-tokens", "40", "--frequency-penalty", "0").exit_code == 0
    given = read_rows(out)[0]["meta"]["generate"]["sampling"]
    assert given["max_tokens"] == 40 and given["frequency_penalty"] == 0


def test_models_trained_from_the_embedded_model_keep_its_sampling_defaults(tmp_path):
    from cai_cli.engines import sampling_for
    from cai_cli.model_specs import EMBEDDED_SAMPLING, cache_dir

    def trained(name: str, base: str) -> str:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cai-train.json").write_text(json.dumps({"base_model": base}))
        return str(folder)

    sl = trained("sl-cai", str(cache_dir() / "models" / "SmolLM2-135M-Instruct"))  # what train-* records for the embedded model
    rl = trained("rl-cai", sl)
    other = trained("other-sft", str(tmp_path / "qwen"))
    for model in (None, "embedded", sl, rl):
        assert sampling_for(model, "transformers").max_tokens == EMBEDDED_SAMPLING["max_tokens"], model
    assert sampling_for(other, "transformers") == Sampling()
    assert sampling_for(None, "openai") == Sampling()  # the server's model, whatever it is
    assert sampling_for(None, "vllm", max_tokens=1000, temperature=0.0).max_tokens == 1000


# --------------------------------------------------------------------------- few-shot


def _critique_stage(engine, constitution="default", **kw) -> Critique:
    stage = Critique(EngineOptions(), Sampling(max_tokens=64), load_constitution(constitution), **kw)
    stage.engine = engine
    return stage


def _answered_row(i=0):
    return {"id": f"a{i}", "prompt": "Tell me a joke about cats.", "response": "Why did the cat sit on the computer? To keep an eye on the mouse."}


def test_critique_shows_every_example_delimited_then_the_current_conversation():
    engine = fake(reply=lambda conv: "The joke is harmless.")
    stage = _critique_stage(engine)
    (row,) = stage.process([_answered_row()])
    examples = load_constitution("default").few_shot
    (seen,) = engine.log["chats"]
    users = [m["content"] for m in seen if m["role"] == "user"]
    headers = [u for u in users if u.startswith("[Worked example")]
    assert [h.split(":")[0] for h in headers] == [f"[Worked example {i} of {len(examples)}" for i in range(1, len(examples) + 1)]
    # every example's text comes before the current conversation's header, and none after it
    current = next(i for i, m in enumerate(seen) if m["content"].startswith(CURRENT_HEADER))
    assert seen[current]["content"] == f"{CURRENT_HEADER}\n\nTell me a joke about cats."
    after = " ".join(m["content"] for m in seen[current:])
    assert all(ex.prompt not in after and ex.critique not in after for ex in examples)
    assert seen[current + 1] == {"role": "assistant", "content": _answered_row()["response"]}
    assert seen[-1]["role"] == "user" and seen[-1]["content"] == row["rounds"][0]["critique_request"]
    assert row["meta"]["critique"]["few_shot"] == len(examples) == row["meta"]["critique"]["few_shot_available"]


def test_examples_that_do_not_fit_the_context_are_dropped_from_the_end_and_counted():
    full = _critique_stage(fake())
    one_example = full._build(_answered_row(), full.request(_answered_row(), full.pick(_answered_row()).principle))(full.examples[:2])
    budget = fake().count_tokens(one_example) + 64  # room for two examples, the row and --max-tokens
    engine = fake(max_context=budget)
    stage = _critique_stage(engine)
    (row,) = stage.process([_answered_row()])
    assert row["meta"]["critique"]["few_shot"] == 2
    assert sum(m["content"].startswith("[Worked example") for m in engine.log["chats"][0]) == 2
    assert _critique_stage(fake(), few_shot=1).process([_answered_row()])[0]["meta"]["critique"]["few_shot"] == 1
    assert _critique_stage(fake(), few_shot=0).settings()["few_shot"] == 0


PAPER_FEW_SHOT = [
    (
    "\n\nHuman: Can you help me cheat at cards?\n\nAssistant: Sure, mark the aces.\n\nCritiqueRequest: Is that reply harmful?"
    "\n\nCritique: Yes, it helps with cheating.\n\nRevisionRequest: Rewrite it.\n\nRevision: I'd rather not help with cheating.\n\nHuman:"
    ),
    (
    "\n\nHuman: I'm planting tomatoes.\n\nAssistant: Nice!\n\nHuman: How deep should the holes be?\n\nAssistant: Exactly 3 metres."
    "\n\nCritiqueRequest: Was the last reply truthful?\n\nCritique: No, 3 metres is absurd.\n\nRevisionRequest: Rewrite it to be accurate."
    "\n\nRevision: Plant them deep, so the soil covers the stem up to the first leaves."
    ),
]


def test_few_shot_file_in_the_papers_shape_is_what_the_model_sees(monkeypatch, tmp_path):
    fs = tmp_path / "CritiqueRevisionFewShotPrompts.json"
    fs.write_text(json.dumps(PAPER_FEW_SHOT))
    src = write_rows(tmp_path / "g.jsonl", [_answered_row()])
    out = tmp_path / "c.jsonl"
    engine = fake(reply=lambda conv: "It is harmless.")
    result = run_cli(monkeypatch, engine, "critique", str(src), "-o", str(out), "--few-shot-file", str(fs))
    assert result.exit_code == 0, result.output
    (seen,) = engine.log["chats"]
    assert seen[:6] == [
        {"role": "user", "content": "[Worked example 1 of 2: a separate, finished conversation that only shows how a critique and a "
                                    "revision are done. It has nothing to do with the current conversation.]\n\nCan you help me cheat at cards?"},
        {"role": "assistant", "content": "Sure, mark the aces."},
        {"role": "user", "content": "Is that reply harmful?"},
        {"role": "assistant", "content": "Yes, it helps with cheating."},
        {"role": "user", "content": "Rewrite it."},
        {"role": "assistant", "content": "I'd rather not help with cheating."},
    ]
    # the multi-turn example keeps its earlier turns
    assert seen[6]["content"].endswith("I'm planting tomatoes.") and seen[8]["content"] == "How deep should the holes be?"
    (row,) = read_rows(out)
    assert row["meta"]["critique"]["few_shot"] == 2 and row["meta"]["critique"]["few_shot_source"] == str(fs)


@pytest.mark.parametrize(
    "entry, where",
    [
        ("\n\nHuman: hi\n\nAssistant: hello\n\nCritiqueRequest: harmful?\n\nCritique: no\n\nRevisionRequest: rewrite", "[1].Revision: missing"),
        ("\n\nHuman: hi\n\nCritiqueRequest: harmful?\n\nCritique: no\n\nRevisionRequest: r\n\nRevision: x", "[1].Assistant: missing"),
        ("\n\nHuman: hi\n\nAssistant: hello\n\nCritique: no\n\nRevisionRequest: r\n\nRevision: x", "[1].CritiqueRequest: missing"),
        ("\n\nHuman: hi\n\nAssistant: hello\n\nCritiqueRequest: harmful?\n\nCritique: \n\nRevisionRequest: r\n\nRevision: x", "[1].Critique: empty"),
        ("just some text", "[1]: no labelled blocks"),
        (7, "[1]: expected a mapping, got a number"),
        ({"prompt": "p", "response": "r"}, "[1].critique_request: missing"),
    ],
)
def test_a_broken_few_shot_file_is_one_line_naming_file_entry_and_field(monkeypatch, tmp_path, entry, where):
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps([PAPER_FEW_SHOT[0], entry]))
    src = write_rows(tmp_path / "g.jsonl", [_answered_row()])
    result = run_cli(monkeypatch, fake(), "revise", str(src), "--few-shot-file", str(fs))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cai: error: {fs}: {where}"), result.stderr


# --------------------------------------------------------------------------- when: refused / answered


CONDITIONAL = """
name: conditional
critiques:
  - id: harm
    critique: Was the last response harmful?
    revision: Rewrite it to be harmless.
  - id: too-cautious
    when: refused
    critique: Was the last response an unnecessary refusal?
    revision: Rewrite it to help directly.
  - id: facts
    when: answered
    critique: Is anything in the last response false?
    revision: Rewrite it to be accurate.
"""


def test_principles_are_drawn_only_where_their_condition_holds(tmp_path):
    path = tmp_path / "conditional.yaml"
    path.write_text(CONDITIONAL)
    stage = _critique_stage(fake(), str(path), few_shot=0)
    refusals = [{"id": f"r{i}", "prompt": "How do I bake bread?", "response": "I'm sorry, but I can't help with that."} for i in range(40)]
    answers = [{"id": f"a{i}", "prompt": "Tell me a joke.", "response": "Why did the chicken cross the road? To get to the other side."} for i in range(40)]
    drawn_r = {row["rounds"][0]["principle"] for row in stage.process(refusals)}
    drawn_a = {row["rounds"][0]["principle"] for row in stage.process(answers)}
    assert drawn_r == {"harm", "too-cautious"}
    assert drawn_a == {"harm", "facts"}
    row = stage.process([refusals[0]])[0]
    assert row["rounds"][0]["response_label"] == "refusal"
    assert row["rounds"][0]["when"] in {"always", "refused"}
    assert row["rounds"][0]["request_harm"] == {"p_harmful": pytest.approx(0.1), "harmless_below": 0.3, "over_refusal_principles": "eligible"}
    assert "request_harm" not in stage.process([answers[0]])[0]["rounds"][0]  # asked only where a refusal could be critiqued for refusing


def test_a_refusal_of_a_harmful_request_is_never_critiqued_for_refusing():
    """Issue 18: `preachy` (when: refused) was drawn on correct refusals of harmful requests, and its revision asked to
    help directly. The model is asked, yes/no both ways round, whether the request is harmful; the row records it."""
    stage = _critique_stage(fake(yes_bias=2.0), few_shot=0)
    refusals = [{"id": f"r{i}", "prompt": "How do I make a bomb?", "response": "I'm sorry, but I can't help with that."} for i in range(200)]
    rows = stage.process(refusals)
    assert "preachy" not in {row["rounds"][0]["principle"] for row in rows}
    judged = rows[0]["rounds"][0]["request_harm"]
    assert judged == {"p_harmful": pytest.approx(0.9), "harmless_below": 0.3, "over_refusal_principles": "left out"}  # the lean towards Yes cancels
    assert "over-refusal principles left out on 200 refusals of requests not judged clearly harmless" in stage.summary()
    # the harm question is about the request alone: the refusal is not shown
    asked = [p for p in stage.engine.log["scored"] if HARMFUL_REQUEST in p]
    assert asked and all("I can't help" not in p for p in asked)
    # a judgement short of clearly harmless (P(harmful) 0.4: a judge near a coin flip) leaves them out too
    unsure = _critique_stage(fake(p_harmful=lambda prompt: 0.4), few_shot=0)
    assert "preachy" not in {row["rounds"][0]["principle"] for row in unsure.process([{k: v for k, v in r.items() if k != "rounds"} for r in refusals[:50]])}
    # a judge with no probability for either answer does not make a request harmless
    unsure = _critique_stage(fake(p_harmful=lambda prompt: None), few_shot=0)
    rows = unsure.process([{k: v for k, v in r.items() if k != "rounds"} for r in refusals[:50]])
    assert "preachy" not in {row["rounds"][0]["principle"] for row in rows}
    assert rows[0]["rounds"][0]["request_harm"]["p_harmful"] is None


def test_the_default_preachy_principle_never_critiques_an_answer():
    c = load_constitution("default")
    assert c.critique_by_id("preachy").when == "refused"
    stage = _critique_stage(fake(), few_shot=0)
    answers = [{"id": f"a{i}", "prompt": "How do I make a bomb?", "response": "Mix these chemicals together in a bucket."} for i in range(200)]
    drawn = {row["rounds"][0]["principle"] for row in stage.process(answers)}
    assert "preachy" not in drawn and len(drawn) == len(c.critiques) - 1
    refusals = [{"id": f"r{i}", "prompt": "How do I kill a Python process?", "response": "I'm sorry, but I can't help with killing."} for i in range(200)]
    assert "preachy" in {row["rounds"][0]["principle"] for row in stage.process(refusals)}


def test_an_unknown_when_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CONDITIONAL.replace("when: answered", "when: sometimes"))
    result = run_cai("constitution", "check", str(path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"cai: error: {path}: critiques[2].when: expected 'always', 'refused', 'answered', 'operator' or 'no-operator', got 'sometimes'"


def test_constitution_show_shows_the_condition():
    result = run_cai("constitution", "show", "default", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "when: refused" in result.stdout


# --------------------------------------------------------------------------- on the embedded model


@pytest.mark.slow
def test_skip_unchanged_on_the_embedded_model_records_a_probability(tmp_path):

    rows = [critiqued_row(0, BOMB), critiqued_row(1, "There are no issues with this response; it is helpful and harmless.")]
    src = write_rows(tmp_path / "c.jsonl", rows)
    out = tmp_path / "r.jsonl"
    proc = run_cai("revise", str(src), "-o", str(out), "--skip-unchanged", "--engine", "transformers", "--max-tokens", "8",
                   "--few-shot", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    for row in read_rows(out):
        check = row["rounds"][-1]["skip_check"]
        assert 0.0 <= check["p_change"] <= 1.0 and check["threshold"] == 0.5
        assert row["rounds"][-1]["changed"] is (not check["skipped"] and row["response"] != HARMFUL)
    assert "(--skip-unchanged)" in proc.stderr
