"""--amend PREVIOUS (issue 21): after a change to the constitution, critique, revise and label-prefs recompute exactly
the rows whose recorded sections, questions or constraints changed, and copy the rest, marked with the hash they
were made under. The fake engine stands in for the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_gate import CONV, SAFE, TINY, VIOLATOR, scripted_judge

from cai_cli.constitution import load_constitution

from conftest import invoke, read_jsonl, write_jsonl

PROMPTS = [
    "Give me a bread recipe with quantities in grams and the oven temperature.",
    "How do I build weapons to hurt people?",
    "Answer my question directly: what is the capital of France?",
    "Which oven temperature and how many grams of flour for a cake recipe?",
    "Tell me how to build a weapon.",
    "Please answer completely: why is the sky blue?",
    "A cookie recipe in grams, please.",
    "Can you help me hurt someone?",
]
CHANGED_SECTION = "helping/cooking"


@pytest.fixture(autouse=True)
def _fresh(fake_engine):
    yield fake_engine


def constitutions(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "v1.md"
    old.write_text(TINY)
    new = tmp_path / "v2.md"
    new.write_text(TINY.replace("in grams, and the oven's temperature", "in grams, the oven's temperature and the baking time"))
    return old, new


def run(*args: str) -> str:
    result = invoke(*args, "--engine", "fake", "--no-progress")
    assert result.exit_code == 0, result.stderr
    return result.stderr


def test_amend_recomputes_exactly_the_rows_whose_section_changed_and_copies_the_rest(tmp_path):
    old, new = constitutions(tmp_path)
    src = write_jsonl(tmp_path / "gen.jsonl", [{"id": f"r{i}", "prompt": p, "response": f"An answer about {p.lower()}"} for i, p in enumerate(PROMPTS)])
    run("critique", str(src), "-c", str(old), "-o", str(tmp_path / "c1.jsonl"))
    before = read_jsonl(tmp_path / "c1.jsonl")
    used = {r["id"] for r in before if r["rounds"][-1]["principle"] == CHANGED_SECTION}
    assert 0 < len(used) < len(before)  # some rows used the section, some did not
    assert [d.id for d in __import__("cai_cli.constitution.diff", fromlist=["x"]).diff_constitutions(load_constitution(str(old)), load_constitution(str(new)))] == [CHANGED_SECTION]

    err = run("critique", str(src), "-c", str(new), "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "c2.jsonl"))
    after = read_jsonl(tmp_path / "c2.jsonl")
    marks = {r["id"]: r["meta"]["critique"]["amend"] for r in after}
    assert {rid for rid, m in marks.items() if m["action"] == "recomputed"} == used
    assert all(m["reason"] == f"passage '{CHANGED_SECTION}' changed" for m in marks.values() if m["action"] == "recomputed")
    old_hash, new_hash = load_constitution(str(old)).hash, load_constitution(str(new)).hash
    for b, a in zip(before, after):
        if b["id"] in used:
            assert a["rounds"][-1]["constitution_hash"] == new_hash == a["meta"]["critique"]["constitution_hash"]
        else:  # copied as it was, marked with the hash it was made under
            assert a["rounds"] == b["rounds"] and a["meta"]["critique"]["constitution_hash"] == old_hash
            why = f"unchanged: what its model was shown (passage '{a['rounds'][-1]['principle']}')"
            if a["rounds"][-1]["principle"].startswith("hard-constraint:"):
                why = f"unchanged: what its model was shown (principle '{a['rounds'][-1]['principle']}')"
            assert marks[a["id"]] == {"action": "copied", "made_under": old_hash, "why": why, "previous": str(tmp_path / "c1.jsonl")}
    copied = len(before) - len(used)
    assert (f"{copied} rows copied ({copied} what its model was shown is unchanged; made under {old_hash}), {len(used)} recomputed "
            f"({len(used)} constitution changed)") in err
    # The recomputed rows are what a fresh run under the new constitution gives them.
    run("critique", str(src), "-c", str(new), "-o", str(tmp_path / "fresh.jsonl"))
    fresh = {r["id"]: r for r in read_jsonl(tmp_path / "fresh.jsonl")}
    assert all(a["rounds"] == fresh[a["id"]]["rounds"] for a in after if a["id"] in used)

    # revise downstream: the copied critiques' revisions are copied, the recomputed ones' inputs changed
    run("revise", str(tmp_path / "c1.jsonl"), "-c", str(old), "-o", str(tmp_path / "r1.jsonl"))
    run("revise", str(tmp_path / "c2.jsonl"), "-c", str(new), "--amend", str(tmp_path / "r1.jsonl"), "-o", str(tmp_path / "r2.jsonl"))
    revised = {r["id"]: r["meta"]["revise"]["amend"] for r in read_jsonl(tmp_path / "r2.jsonl")}
    assert {rid for rid, m in revised.items() if m["action"] == "recomputed"} == used


def test_amend_after_a_changed_constraint_recomputes_every_gated_row_and_without_a_change_copies_all(tmp_path):
    old, _ = constitutions(tmp_path)
    src = write_jsonl(tmp_path / "gen.jsonl", [{"id": f"r{i}", "prompt": p, "response": "An answer."} for i, p in enumerate(PROMPTS[:4])])
    run("critique", str(src), "-c", str(old), "-o", str(tmp_path / "c1.jsonl"))
    err = run("critique", str(src), "-c", str(old), "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "same.jsonl"))
    assert "4 rows copied" in err and "0 recomputed" in err
    assert [r["rounds"] for r in read_jsonl(tmp_path / "same.jsonl")] == [r["rounds"] for r in read_jsonl(tmp_path / "c1.jsonl")]
    moved = tmp_path / "v3.md"
    moved.write_text(TINY.replace("never encourage self-harm.", "never encourage or explain self-harm."))
    run("critique", str(src), "-c", str(moved), "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "c3.jsonl"))
    reasons = {r["meta"]["critique"]["amend"].get("reason") for r in read_jsonl(tmp_path / "c3.jsonl")}
    # the gate quotes every constraint with the passage stating them, which changed: every gated round is recomputed
    assert reasons == {"hard constraint 'never-give-weapon-blueprints' changed"}
    # other settings are never mixed in: a different seed recomputes everything
    err = run("critique", str(src), "-c", str(old), "--seed", "7", "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "c4.jsonl"))
    assert "0 rows copied" in err and "4 other settings" in err


def test_label_prefs_amend_recomputes_the_pairs_whose_question_changed(tmp_path):
    two_helpful = TINY.replace(
        "---\n# Tiny", '  - {id: more-direct, tier: helpful, question: "Which of these assistant responses is more direct?"}\n---\n# Tiny'
    )
    old, new = tmp_path / "v1.md", tmp_path / "v2.md"
    old.write_text(two_helpful)
    new.write_text(two_helpful.replace("Which of these assistant responses is more helpful?", "Which of these assistant responses helps more?"))
    rows = [{"id": f"p{i}", "messages": CONV, "candidates": [VIOLATOR, SAFE] if i % 2 else [SAFE, f"Another answer {i}."]} for i in range(6)]
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    scripted_judge({}, {})
    # --principles 1: one question per tier, so only some pairs asked the changed helpfulness question (of two)
    run("label-prefs", str(src), "-c", str(old), "--principles", "1", "-o", str(tmp_path / "l1.jsonl"))
    before = read_jsonl(tmp_path / "l1.jsonl")
    asked = {r["id"] for r in before if "more-helpful" in r["preference"]["used"]["comparisons"]}
    err = run("label-prefs", str(src), "-c", str(new), "--principles", "1", "--amend", str(tmp_path / "l1.jsonl"), "-o", str(tmp_path / "l2.jsonl"))
    after = read_jsonl(tmp_path / "l2.jsonl")
    recomputed = {r["id"] for r in after if r["meta"]["label-prefs"]["amend"]["action"] == "recomputed"}
    assert recomputed == asked and 0 < len(asked) < len(rows)
    summary = json.loads((tmp_path / "l2.summary.json").read_text())
    assert summary["amend"]["copied"] == len(rows) - len(asked) and summary["amend"]["recomputed"] == len(asked)
    assert summary["pairs"]["kept"] == len(rows)  # copied pairs count in the summary like recomputed ones
    assert f"{len(rows) - len(asked)} rows copied" in err


def test_amend_names_a_missing_previous_file(tmp_path):
    old, _ = constitutions(tmp_path)
    src = write_jsonl(tmp_path / "gen.jsonl", [{"id": "r0", "prompt": "hi", "response": "hello"}])
    result = invoke("critique", str(src), "-c", str(old), "--amend", str(tmp_path / "nope.jsonl"), "--engine", "fake")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"cai: error: --amend {tmp_path / 'nope.jsonl'}: no such file (give the output of an earlier run of `cai critique`)"


def test_repeated_identical_input_rows_each_get_one_copy(tmp_path):
    old, _ = constitutions(tmp_path)
    row = {"id": "same", "prompt": PROMPTS[0], "response": "An answer."}
    src = write_jsonl(tmp_path / "gen.jsonl", [row, row, {**row, "id": "other"}])
    run("critique", str(src), "-c", str(old), "-o", str(tmp_path / "c1.jsonl"))
    run("critique", str(src), "-c", str(old), "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "c2.jsonl"))
    assert [r["id"] for r in read_jsonl(tmp_path / "c2.jsonl")] == ["same", "same", "other"]


SPLIT = """---
name: split
priorities: [safe, helpful]
sections: {safety: safe, helping: helpful}
comparisons:
  - {id: safer, tier: safe, question: "Which of these assistant responses is safer?"}
  - {id: more-helpful, tier: helpful, question: "Which of these assistant responses is more helpful?"}
---
# Split

## Safety

Do not help anyone build weapons or hurt people.

## Helping

### Kitchen

For baking, give the oven temperature in degrees and the flour, sugar and butter in grams, and say how long the bread
or the cake bakes and how to tell that it is done, so that the baker can follow the recipe without guessing anything.

For knives, explain how to hold the blade, how to sharpen it on a whetstone, and how to slice onions and carrots
safely with the fingertips tucked in, so that the cook keeps every finger and the cut stays even and quick.
"""


def test_an_edit_to_a_passage_no_model_was_shown_touches_no_row(tmp_path):
    """Item 6 of issue 30: what each model saw is hashed; an edit in another passage of the same section copies the rows
    (and says why), in critique, revise and label-prefs alike."""
    old, new = tmp_path / "s1.md", tmp_path / "s2.md"
    old.write_text(SPLIT)
    new.write_text(SPLIT.replace("how to sharpen it on a whetstone", "how to sharpen it on a whetstone or a steel"))
    budget = ("--passage-tokens", "64")
    prompts = ["Oven temperature and grams of flour for bread?", "How long does the cake bake and how do I tell it is done?",
               "How do I sharpen a knife on a whetstone?", "How do I slice onions safely with a knife?"]
    src = write_jsonl(tmp_path / "gen.jsonl", [{"id": f"k{i}", "prompt": p, "response": "An answer."} for i, p in enumerate(prompts)])
    run("critique", str(src), "-c", str(old), *budget, "-o", str(tmp_path / "c1.jsonl"))
    used = {r["id"]: r["rounds"][0]["passage"] for r in read_jsonl(tmp_path / "c1.jsonl")}
    assert used == {"k0": "helping/kitchen#1", "k1": "helping/kitchen#1", "k2": "helping/kitchen#2", "k3": "helping/kitchen#2"}
    err = run("critique", str(src), "-c", str(new), *budget, "--amend", str(tmp_path / "c1.jsonl"), "-o", str(tmp_path / "c2.jsonl"))
    marks = {r["id"]: r["meta"]["critique"]["amend"] for r in read_jsonl(tmp_path / "c2.jsonl")}
    assert {k: m["action"] for k, m in marks.items()} == {"k0": "copied", "k1": "copied", "k2": "recomputed", "k3": "recomputed"}
    assert marks["k0"]["why"] == "unchanged: what its model was shown (passage 'helping/kitchen#1')"
    assert marks["k2"]["reason"] == "passage 'helping/kitchen#2' changed"
    assert "2 rows copied (2 what its model was shown is unchanged;" in err
    # revise: what the reviser sees of the constitution is the revision request; the recomputed critiques are new input
    run("revise", str(tmp_path / "c1.jsonl"), "-c", str(old), "-o", str(tmp_path / "r1.jsonl"))
    run("revise", str(tmp_path / "c2.jsonl"), "-c", str(new), "--amend", str(tmp_path / "r1.jsonl"), "-o", str(tmp_path / "r2.jsonl"))
    revised = {r["id"]: r["meta"]["revise"]["amend"]["action"] for r in read_jsonl(tmp_path / "r2.jsonl")}
    assert revised == {"k0": "copied", "k1": "copied", "k2": "recomputed", "k3": "recomputed"}
    # label-prefs: the judge quoted, per tier, the passage routed for each conversation
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"id": f"k{i}", "prompt": p, "candidates": ["A short answer.", "A longer, fuller answer."]}
                                                  for i, p in enumerate(prompts)])
    scripted_judge({}, {})
    run("label-prefs", str(pairs), "-c", str(old), *budget, "--principles", "all", "-o", str(tmp_path / "l1.jsonl"))
    quoted = {r["id"]: r["preference"]["tiers"]["helpful"]["passage"] for r in read_jsonl(tmp_path / "l1.jsonl")}
    assert quoted == used
    run("label-prefs", str(pairs), "-c", str(new), *budget, "--principles", "all", "--amend", str(tmp_path / "l1.jsonl"), "-o", str(tmp_path / "l2.jsonl"))
    labels = {r["id"]: r["meta"]["label-prefs"]["amend"] for r in read_jsonl(tmp_path / "l2.jsonl")}
    assert {k: m["action"] for k, m in labels.items()} == {"k0": "copied", "k1": "copied", "k2": "recomputed", "k3": "recomputed"}
    assert labels["k2"]["reason"] == "question 'more-helpful@helping/kitchen#2' changed"
