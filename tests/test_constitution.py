"""Tests for cai_cli.constitution: loaders, validation, hashing, sampling, display."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cai_cli.constitution import (
    ComparisonPrinciple,
    Constitution,
    CritiquePrinciple,
    FewShotExample,
    builtin_names,
    constitution_table,
    load_constitution,
    sample_principle_index,
    sample_principles,
)
from cai_cli.errors import CaiError, ConstitutionError

from conftest import run_cai

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "cai_cli" / "constitutions"

DEFAULT_CRITIQUE_IDS = {
    "harm", "dangerous", "violence", "self-harm", "hate", "sexual", "privacy",
    "honesty", "manipulation", "advice", "preachy",
}


def fx(name: str) -> str:
    return str(FIX / name)


# --------------------------------------------------------------------------- shipped constitutions


def test_default_loads_and_meets_minimums():
    c = load_constitution(None)
    assert c.name == "default"
    assert c.source == "builtin:default"
    assert c.format == "native"
    ids = {p.id for p in c.critiques}
    assert DEFAULT_CRITIQUE_IDS <= ids
    assert len(c.critiques) >= 12
    assert len(ids - DEFAULT_CRITIQUE_IDS) >= 1  # at least one beyond the required list
    assert len(c.comparisons) >= 8
    assert {"less-harmful", "more-ethical", "less-deceptive", "wiser"} <= {p.id for p in c.comparisons}
    assert 3 <= len(c.few_shot) <= 4
    assert c.description


def test_default_content_is_well_formed():
    c = load_constitution("default")
    for p in c.critiques:
        assert isinstance(p, CritiquePrinciple)
        assert "last response" in p.critique, p.id
        assert p.revision.lower().startswith("rewrite"), p.id
        assert p.critique == p.critique.strip() and "\n" not in p.critique
    for q in c.comparisons:
        assert isinstance(q, ComparisonPrinciple)
        assert "assistant responses" in q.question, q.id
        assert not q.question.rstrip().endswith("Options:")
    for ex in c.few_shot:
        assert isinstance(ex, FewShotExample)
        assert all(getattr(ex, f) for f in ("prompt", "response", "critique_request", "critique", "revision_request", "revision"))
    # at least one example where the revision is a real change and one where nothing needed fixing
    assert any(ex.revision != ex.response for ex in c.few_shot)
    assert any(ex.revision == ex.response for ex in c.few_shot)


def test_default_none_and_name_are_the_same():
    assert load_constitution(None) == load_constitution("default")
    assert load_constitution("") == load_constitution("default")


def test_humanity():
    c = load_constitution("humanity")
    assert c.source == "builtin:humanity"
    assert [p.id for p in c.critiques] == ["humanity"]
    assert len(c.comparisons) == 1
    assert "humanity" in c.comparisons[0].question
    assert set(builtin_names()) >= {"default", "humanity"}


def test_hash_is_stable_and_content_based():
    a, b = load_constitution("default"), load_constitution("default")
    assert a.hash == b.hash
    assert len(a.hash) == 12 and int(a.hash, 16) >= 0
    # the same file loaded by path: different source, same content, same hash
    by_path = load_constitution(str(BUILTIN / "default.yaml"))
    assert by_path.source != a.source
    assert by_path.hash == a.hash
    # format is not content either
    assert dataclasses.replace(a, format="hf").hash == a.hash
    # any content change moves the hash
    changed = dataclasses.replace(a, critiques=a.critiques[:-1])
    assert changed.hash != a.hash
    tweaked = dataclasses.replace(a, comparisons=(dataclasses.replace(a.comparisons[0], question="Which is nicer?"),) + a.comparisons[1:])
    assert tweaked.hash != a.hash
    assert load_constitution("humanity").hash != a.hash


def test_hash_same_across_processes():
    code = "from cai_cli.constitution import load_constitution; print(load_constitution('default').hash)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert out == load_constitution("default").hash


def test_lookup_by_id():
    c = load_constitution("default")
    assert c.critique_by_id("privacy").id == "privacy"
    assert c.comparison_by_id("wiser").id == "wiser"
    with pytest.raises(ConstitutionError, match="no critique principle with id 'nope'"):
        c.critique_by_id("nope")
    with pytest.raises(ConstitutionError, match="no comparison principle with id 'harm'"):
        c.comparison_by_id("harm")


def test_unknown_bare_name():
    with pytest.raises(ConstitutionError) as e:
        load_constitution("no-such-constitution")
    msg = str(e.value)
    assert msg.startswith("no-such-constitution:")
    assert "default" in msg and "humanity" in msg


def test_import_is_light():
    heavy = ("yaml", "rich", "pydantic", "markdown_it", "bm25s")
    code = f"import sys, cai_cli.constitution, cai_cli.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.strip()
    assert out == "[]"  # each loads when a file is read, a table printed or a row routed


# --------------------------------------------------------------------------- formats


def test_native_yaml_fixture():
    c = load_constitution(fx("native_small.yaml"))
    assert c.format == "native"
    assert c.name == "small"
    assert c.source == fx("native_small.yaml")
    assert [p.id for p in c.critiques] == ["kind", "safe"]
    # block scalars are stripped of their trailing newline
    assert c.critique_by_id("safe").critique == "Could the last reply put anyone in danger? Say where."
    assert [p.id for p in c.comparisons] == ["kinder"]
    (ex,) = c.few_shot
    assert ex.history == (("user", "I have a few errands to run with my dog."), ("assistant", "Happy to help you plan them."))
    msgs = ex.messages()
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 4
    assert msgs[2]["content"] == ex.prompt and msgs[-1]["content"] == ex.revision


def test_native_json_fixture_comparisons_only():
    c = load_constitution(fx("native_small.json"))
    assert c.format == "native"
    assert c.name == "small-json"
    assert c.critiques == ()
    assert c.description == ""
    assert c.comparison_by_id("kinder").question.startswith("Which of these")


def test_hf_recipe_fixture():
    c = load_constitution(fx("hf_constitution.json"))
    assert c.format == "hf"
    assert c.name == "hf_constitution"
    assert [p.id for p in c.critiques] == ["hf-0", "hf-1", "hf-2"]
    assert c.critiques[1].critique.startswith("Is the reply above unkind")
    assert c.critiques[1].revision == "Rewrite the reply so it is kind and considerate."
    assert c.comparisons == ()
    one, two = c.few_shot
    assert one.prompt.startswith("How do I pick the lock")
    assert one.critique_request == c.critiques[0].critique
    assert one.revision.startswith("I won't help")
    assert one.history == ()
    # an 8-message conversation: the first exchange is kept as history
    assert two.history == (("user", "What is the tallest mountain?"), ("assistant", "Mount Everest, at roughly 8,850 metres above sea level."))
    assert two.prompt == "And how long does it take to climb?"
    assert two.response == "Exactly 14 days, every time."
    assert two.revision.startswith("Most guided expeditions")
    assert len(two.messages()) == 8


def test_hf_bare_list_fixture():
    c = load_constitution(fx("hf_constitution_list.json"))
    assert c.format == "hf"
    assert [p.id for p in c.critiques] == ["hf-0", "hf-1"]
    assert c.few_shot == ()


def test_anthropic_critiques_fixture():
    c = load_constitution(fx("anthropic_critiques.json"))
    assert c.format == "anthropic"
    assert [p.id for p in c.critiques] == ["harmful0", "harmful1", "multi-0", "multi-1"]
    p = c.critique_by_id("harmful0")
    # the paper's plain-text labels are removed
    assert p.critique == "Name each way the assistant's last reply could hurt someone."
    assert p.revision == "Rewrite the assistant's reply so that it could not hurt anyone."
    assert c.critique_by_id("multi-1").critique == "Is the last reply unkind?"
    assert c.critique_by_id("multi-0").revision == c.critique_by_id("multi-1").revision == "Rewrite the reply to be polite."
    assert c.comparisons == ()


def test_anthropic_comparisons_fixture():
    c = load_constitution(fx("anthropic_comparisons.json"))
    assert c.format == "anthropic"
    assert [p.id for p in c.comparisons] == ["anthropic-0", "anthropic-1", "anthropic-2"]
    assert c.comparisons[0].question == "Which of the assistant replies is safer?"
    assert all("Options" not in q.question for q in c.comparisons)
    assert c.critiques == ()


def test_anthropic_fewshot_file_is_refused_clearly():
    with pytest.raises(ConstitutionError, match="anthropic_fewshot.json: looks like an Anthropic few-shot"):
        load_constitution(fx("anthropic_fewshot.json"))


def test_same_content_same_hash_across_formats(tmp_path):
    native = {
        "name": "anthropic_critiques",
        "description": "Anthropic paper critique/revision instructions (4 pairs)",
        "critiques": [
            {"id": p.id, "critique": p.critique, "revision": p.revision}
            for p in load_constitution(fx("anthropic_critiques.json")).critiques
        ],
    }
    path = tmp_path / "same.json"
    path.write_text(json.dumps(native))
    assert load_constitution(str(path)).hash == load_constitution(fx("anthropic_critiques.json")).hash


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, expected",
    [
        ("bad_missing_revision.yaml", "bad_missing_revision.yaml: critiques[1].revision: missing"),
        ("bad_unknown_key.yaml", "bad_unknown_key.yaml: critiques[0].revison: unknown key"),
        ("bad_duplicate_id.yaml", "bad_duplicate_id.yaml: comparisons[1].id: duplicate id 'same'"),
        ("bad_syntax.yaml", "bad_syntax.yaml:7: invalid YAML"),
        ("bad_syntax.json", "bad_syntax.json:4: invalid JSON"),
    ],
)
def test_bad_fixture_files(name, expected):
    with pytest.raises(ConstitutionError) as e:
        load_constitution(fx(name))
    msg = str(e.value)
    assert msg.startswith(fx(name)), msg
    assert expected in msg
    assert "\n" not in msg
    assert isinstance(e.value, CaiError)


GOOD_CRITIQUE = {"id": "a", "critique": "Was it harmful?", "revision": "Rewrite it."}
GOOD_COMPARISON = {"id": "q", "question": "Which of these assistant responses is safer?"}
GOOD_FEW_SHOT = {
    "prompt": "p", "response": "r", "critique_request": "cr", "critique": "c",
    "revision_request": "rr", "revision": "rv",
}


_DROP = object()


def _native(**over):
    d = {"name": "t", "critiques": [GOOD_CRITIQUE], "comparisons": [GOOD_COMPARISON]}
    d.update(over)
    return {k: v for k, v in d.items() if v is not _DROP}



@pytest.mark.parametrize(
    "data, field, reason",
    [
        (_native(critiques=[GOOD_CRITIQUE, {**GOOD_CRITIQUE, "id": "b", "revision": ""}]), "critiques[1].revision", "expected a non-empty string"),
        (_native(critiques=[GOOD_CRITIQUE, {**GOOD_CRITIQUE, "id": "b", "revision": "   "}]), "critiques[1].revision", "expected a non-empty string"),
        (_native(critiques=[{**GOOD_CRITIQUE, "id": 3}]), "critiques[0].id", "expected a non-empty string, got a number"),
        (_native(critiques=[{**GOOD_CRITIQUE, "critique": ["x"]}]), "critiques[0].critique", "expected a non-empty string, got a list"),
        (_native(critiques=[GOOD_CRITIQUE, GOOD_CRITIQUE]), "critiques[1].id", "duplicate id 'a'"),
        (_native(critiques=["just a string"]), "critiques[0]", "expected a mapping"),
        (_native(critiques={"id": "a"}), "critiques", "expected a list"),
        (_native(critiques=None), "critiques", "expected a list"),
        (_native(comparisons=[{"id": "q"}]), "comparisons[0].question", "missing"),
        (_native(comparisons=[{**GOOD_COMPARISON, "options": 2}]), "comparisons[0].options", "unknown key"),
        (_native(name=_DROP), "name", "missing"),
        (_native(name=""), "name", "expected a non-empty string"),
        (_native(description=5), "description", "expected a non-empty string"),
        (_native(version=2), "version", "unknown key"),
        (_native(critiques=_DROP, comparisons=_DROP), "critiques", "missing"),
        (_native(critiques=[], comparisons=[]), "critiques", "empty"),
        (_native(few_shot=[{k: v for k, v in GOOD_FEW_SHOT.items() if k != "critique"}]), "few_shot[0].critique", "missing"),
        (_native(few_shot=[GOOD_FEW_SHOT, {**GOOD_FEW_SHOT, "revision": None}]), "few_shot[1].revision", "expected a non-empty string, got nothing"),
        (_native(few_shot=[{**GOOD_FEW_SHOT, "history": [{"role": "system", "content": "x"}]}]), "few_shot[0].history[0].role", "expected 'user' or 'assistant'"),
        (_native(few_shot={"prompt": "p"}), "few_shot", "expected a list"),
        ({"constitutions": [{"critic": "c"}]}, "constitutions[0].revision", "missing"),
        ({"constitutions": [{"critic": "", "revision": "r"}]}, "constitutions[0].critic", "expected a non-empty string"),
        ({"constitutions": []}, "constitutions", "empty"),
        (
            {"constitutions": [{"critic": "c", "revision": "r"}], "system_chat": [[{"role": "user", "content": "x"}] * 5]},
            "system_chat[0]", "got 5",
        ),
        (
            {"constitutions": [{"critic": "c", "revision": "r"}],
             "system_chat": [[{"role": "user", "content": "x"}, {"role": "user", "content": "y"}] * 3]},
            "system_chat[0][1].role", "expected 'assistant'",
        ),
        ({"harmful0": {"prompt": ["CritiqueRequest: x"]}}, "harmful0.edit_request", "missing"),
        ({"harmful0": {"prompt": [], "edit_request": "y"}}, "harmful0.prompt", "non-empty list"),
        (["fine question?", 7], "[1]", "expected a non-empty string"),
        (["fine question?", ""], "[1]", "expected a non-empty string, got an empty string"),
        ([{"critic": "c", "revision": "r"}, "stray"], "constitutions[1]", "expected a mapping"),
    ],
)
def test_bad_field_names_file_and_field(tmp_path, data, field, reason):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConstitutionError) as e:
        load_constitution(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: {field}: "), msg
    assert reason in msg
    assert "\n" not in msg


def test_same_checks_apply_to_yaml(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("name: t\ncritiques:\n  - id: a\n    critique: fine\n    revision:\n")
    with pytest.raises(ConstitutionError, match=r"c\.yml: critiques\[0\]\.revision: expected a non-empty string"):
        load_constitution(str(path))


@pytest.mark.parametrize(
    "content, reason",
    [("", "the file is empty"), ("# only a comment\n", "the file is empty"), ("42\n", "expected a mapping or a list"),
     ("- 1\n- 2\n", "unrecognised list")],
)
def test_bad_top_level(tmp_path, content, reason):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConstitutionError, match=reason) as e:
        load_constitution(str(path))
    assert str(e.value).startswith(str(path))


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConstitutionError, match="nope.yaml: no such file"):
        load_constitution(str(missing))
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(ConstitutionError, match="dir.yaml: is a directory"):
        load_constitution(str(d))


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConstitutionError, match="c.yaml: not UTF-8"):
        load_constitution(str(path))


def test_constitution_is_immutable():
    c = load_constitution("humanity")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "x"  # type: ignore[misc]
    assert isinstance(c.critiques, tuple) and isinstance(c.comparisons, tuple)


# --------------------------------------------------------------------------- sampling


def test_sampling_is_deterministic_and_pinned():
    a = [sample_principle_index(14, 0, f"row-{i}", r) for i in range(3) for r in range(3)]
    b = [sample_principle_index(14, 0, f"row-{i}", r) for i in range(3) for r in range(3)]
    assert a == b
    # pinned: changing the algorithm would silently change every recorded run
    assert a == [5, 6, 9, 3, 1, 4, 4, 9, 10]
    assert sample_principles(12, 3, 7, "abc", "compare") == [11, 6, 4]


def test_sampling_independent_of_process_hash_seed():
    code = (
        "from cai_cli.constitution import sample_principle_index as s;"
        "print([s(14, 3, f'r{i}', i % 4) for i in range(50)])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outs == {str([sample_principle_index(14, 3, f"r{i}", i % 4) for i in range(50)])}


def test_sampling_spreads_over_all_principles():
    n = load_constitution("default")
    k = len(n.critiques)
    for r in range(4):
        counts = Counter(sample_principle_index(k, 0, f"row-{i}", r) for i in range(200))
        assert set(counts) == set(range(k)), (r, counts)
        # roughly uniform: no principle gets more than 3x its fair share
        assert max(counts.values()) < 3 * 200 / k


def test_sampling_rounds_differ():
    k = 14
    rows = [f"row-{i}" for i in range(200)]
    # rounds 0..k-1 of one row draw distinct principles (a new principle each round)
    for rid in rows[:20]:
        assert sorted(sample_principle_index(k, 0, rid, r) for r in range(k)) == list(range(k))
    differ = sum(sample_principle_index(k, 0, rid, 0) != sample_principle_index(k, 0, rid, 1) for rid in rows)
    assert differ == len(rows)
    # past n rounds a fresh shuffle starts; still deterministic and in range
    later = [sample_principle_index(k, 0, "row-0", r) for r in range(k, 2 * k)]
    assert sorted(later) == list(range(k))
    # two principles: rounds alternate
    assert {(sample_principle_index(2, 0, rid, 0), sample_principle_index(2, 0, rid, 1)) for rid in rows} == {(0, 1), (1, 0)}


def test_sampling_depends_on_seed_salt_and_row():
    k = 14
    rows = [f"row-{i}" for i in range(200)]
    base = [sample_principle_index(k, 0, rid, 0) for rid in rows]
    other_seed = [sample_principle_index(k, 1, rid, 0) for rid in rows]
    other_salt = [sample_principle_index(k, 0, rid, 0, salt="compare") for rid in rows]
    assert sum(x != y for x, y in zip(base, other_seed)) > 150
    assert sum(x != y for x, y in zip(base, other_salt)) > 150
    assert len(set(base)) > 1


def test_sampling_edge_cases():
    assert {sample_principle_index(1, s, f"r{s}", r) for s in range(20) for r in range(5)} == {0}
    with pytest.raises(ConstitutionError, match="has none"):
        sample_principle_index(0, 0, "r", 0)
    with pytest.raises(ValueError):
        sample_principle_index(3, 0, "r", -1)


def test_sample_principles():
    n = 12
    for i in range(100):
        got = sample_principles(n, 3, 0, f"row-{i}", "compare")
        assert len(got) == 3 and len(set(got)) == 3
        assert all(0 <= x < n for x in got)
        assert got == sample_principles(n, 3, 0, f"row-{i}", "compare")
        assert got == [sample_principle_index(n, 0, f"row-{i}", r, "compare") for r in range(3)]
    assert sorted(sample_principles(n, n, 5, "x", "compare")) == list(range(n))
    assert sample_principles(n, 0, 5, "x", "compare") == []
    firsts = Counter(sample_principles(n, 2, 0, f"row-{i}", "compare")[0] for i in range(300))
    assert set(firsts) == set(range(n))
    with pytest.raises(ConstitutionError, match="only 12"):
        sample_principles(n, 13, 0, "x", "compare")


# --------------------------------------------------------------------------- display


def test_constitution_table_lists_every_principle():
    from rich.console import Console
    from rich.table import Table

    c = load_constitution("default")
    table = constitution_table(c)
    assert isinstance(table, Table)
    assert table.row_count == len(c.critiques) + len(c.comparisons) + len(c.few_shot)
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    for pid in [p.id for p in c.critiques] + [p.id for p in c.comparisons]:
        assert pid in text
    assert c.hash in text


def test_table_escapes_markup(tmp_path):
    from rich.console import Console

    path = tmp_path / "m.yaml"
    path.write_text('name: m\ncomparisons:\n  - id: q\n    question: "Which is [bold]safer[/bold]?"\n')
    console = Console(width=200, record=True, color_system=None)
    console.print(constitution_table(load_constitution(str(path))))
    assert "[bold]safer[/bold]" in console.export_text()


def test_constitution_constructible_directly():
    c = Constitution(
        name="n", description="", critiques=(CritiquePrinciple("a", "c", "r"),), comparisons=(),
        few_shot=(), source="mem", format="native",
    )
    assert len(c.hash) == 12


# --------------------------------------------------------------------------- schema (pydantic), when


def test_json_schema_validates_the_shipped_constitutions_and_rejects_bad_ones():
    import yaml

    from cai_cli.constitution.schema import json_schema

    schema = json_schema()
    assert schema["additionalProperties"] is False
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in BUILTIN.glob("*.yaml")}
    assert set(docs) == {"default", "humanity"}
    bad = {"name": "x", "critiques": [{"id": "a", "critique": "c", "revision": "r", "when": "sometimes"}]}
    typo = {"name": "x", "critiques": [{"id": "a", "critique": "c", "revison": "r"}]}
    try:
        import jsonschema
    except ImportError:  # pydantic round trip instead: what the schema describes is what the loader accepts
        from cai_cli.constitution.schema import ConstitutionFile

        for doc in docs.values():
            assert ConstitutionFile.model_validate(ConstitutionFile.model_validate(doc).model_dump()) == ConstitutionFile.model_validate(doc)
        return
    for doc in docs.values():
        jsonschema.validate(doc, schema)
    for doc in (bad, typo):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)


def test_cai_constitution_schema_prints_json_schema():
    out = run_cai("constitution", "schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["properties"]["critiques"]["items"]["$ref"].endswith("CritiqueSpec")
    assert schema["$defs"]["CritiqueSpec"]["properties"]["when"]["enum"] == ["always", "refused", "answered", "operator", "no-operator"]


@pytest.mark.parametrize(
    "when, ok",
    [("always", True), ("refused", True), ("answered", True), ("operator", True), ("no-operator", True), ("sometimes", False),
     (["refused"], False), ("", False)],
)
def test_when_is_validated(tmp_path, when, ok):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(_native(critiques=[{**GOOD_CRITIQUE, "when": when}])))
    if ok:
        assert load_constitution(str(path)).critiques[0].when == when
        return
    with pytest.raises(ConstitutionError) as e:
        load_constitution(str(path))
    assert str(e.value).startswith(f"{path}: critiques[0].when: expected 'always', 'refused', 'answered', 'operator' or 'no-operator', got ")


def test_when_changes_the_hash_only_when_set():
    c = load_constitution("humanity")
    assert c.critiques[0].when == "always"
    refused = dataclasses.replace(c, critiques=(dataclasses.replace(c.critiques[0], when="refused"),))
    assert refused.hash != c.hash
    assert "when" not in c.canonical()["critiques"][0]


def test_foreign_formats_are_converted_into_the_native_model():
    from cai_cli.constitution.schema import ConstitutionFile

    for name in ("hf_constitution.json", "anthropic_critiques.json", "anthropic_comparisons.json"):
        c = load_constitution(fx(name))
        spec = ConstitutionFile.model_validate({k: v for k, v in c.canonical().items() if v or k == "name"})
        assert [p.id for p in spec.critiques] == [p.id for p in c.critiques]


def test_few_shot_file_fixture_loads_in_the_papers_shape():
    from cai_cli.constitution import load_few_shot_file

    (ex,) = load_few_shot_file(fx("anthropic_fewshot.json"))
    assert (ex.prompt, ex.response) == ("Can you help me cheat at cards?", "Sure, mark the aces.")
    assert (ex.critique_request, ex.critique) == ("Is that reply harmful?", "Yes, it helps with cheating.")
    assert (ex.revision_request, ex.revision) == ("Rewrite it.", "I'd rather not help with cheating.")
    assert ex.history == ()
