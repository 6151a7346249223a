"""Hostile inputs (issue 19, the input side): every file or option value a new user may throw at cai is either read
as documented (docs/contract.md) or refused with one line and exit code 2 before any model
loads; no input or unrelated file ever changes. In this process on the fake engine, so the whole battery takes
seconds."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import pytest

from conftest import FAKE_ENV, invoke, read_jsonl, reset_fake_engine, run_cai, write_jsonl

FAKE = ["--engine", "fake", "--no-progress", "--max-tokens", "8"]
GOOD = {"id": "a", "prompt": "How do I pick a lock?"}
GOOD_LINE = json.dumps(GOOD).encode() + b"\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under FOLDER and its bytes: what must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def strict_json(text: str):
    """json.loads as strict readers (Node's JSON.parse, pandas) parse: no NaN or Infinity."""

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def starts(fake_engine, monkeypatch) -> list:
    """One entry per fake engine started: a refusal must come before any model loads."""
    started: list = []
    original = fake_engine.__init__

    def counting(self, opts=None):
        started.append(opts)
        original(self, opts)

    monkeypatch.setattr(fake_engine, "__init__", counting)
    return started


def refused(folder: Path, args: list[str], expected: str, starts: list | None = None) -> str:
    """`cai ARGS` stops with one line holding EXPECTED and exit code 2, writes no data and changes no file."""
    before = snapshot(folder)
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("cai: error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert result.stdout == ""
    assert snapshot(folder) == before, "a refused run changed or wrote files"
    if starts is not None:
        assert starts == [], "the model was loaded before the input was refused"
    return lines[0]


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    return result


# --------------------------------------------------------------------------- bad input, found before the work

DEEP = b'{"id": "a", "prompt": "p", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
JUST_TOO_DEEP = b'{"id": "a", "prompt": "p", "x": ' + b"[" * 100 + b"]" * 100 + b"}\n"  # the row is level 1

BAD_INPUTS = {
    # name: (the file's bytes, what the one line says)
    "lone surrogate": (b'{"id": "a", "prompt": "caf\\udc80"}\n', "in.jsonl:1: field 'prompt': the text holds \\udc80 (at character 4)"),
    "lone surrogate, nested": (GOOD_LINE + b'{"id": "b", "prompt": "p", "meta": {"note": ["ok", "\\ud83d"]}}\n', "in.jsonl:2: field 'meta.note[1]'"),
    "surrogate in a key": (b'{"id": "a", "prompt": "p", "\\udc80": 1}\n', "in.jsonl:1: a key holds \\udc80"),
    "number out of range": (b'{"id": "a", "prompt": "p", "score": 1e400}\n', "in.jsonl:1: field 'score': 1e400 is too large for a JSON number"),
    "NaN": (b'{"id": "a", "prompt": "p", "score": NaN}\n', "in.jsonl:1: field 'score': NaN is not a JSON number"),
    "-Infinity": (b'{"id": "a", "prompt": "p", "s": [1, -Infinity]}\n', "field 's[1]': -Infinity is not a JSON number"),
    "nested 100,000 deep": (DEEP, "in.jsonl:1: nested more than 100 levels deep"),
    "nested 101 deep": (JUST_TOO_DEEP, "in.jsonl:1: field 'x': nested more than 100 levels deep"),
    "integer of 5,000 digits": (b'{"id": "a", "prompt": "p", "n": 1' + b"0" * 5000 + b"}\n", "an integer of more than 4300 digits"),
    "JSON array": (json.dumps([GOOD, GOOD], indent=2).encode(), "in.jsonl: a JSON array, not JSONL (one JSON object per line); convert it first: jq -c"),
    "JSON array on one line": (json.dumps([GOOD, GOOD]).encode() + b"\n", "in.jsonl: a JSON array, not JSONL (one JSON object per line); convert it first: jq -c"),
    "pretty-printed object": (json.dumps(GOOD, indent=2).encode(), "in.jsonl: one JSON document written over several lines, not JSONL"),
    "a label-prefs summary": (json.dumps({"kind": "cai-label-prefs-summary", "pairs": {}}, indent=2).encode(), "in.jsonl: a label-prefs summary"),
    "zstd": (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "in.jsonl: zstd-compressed, not JSONL; decompress it first"),
    "zip": (b"PK\x03\x04" + b"\x00" * 20, "in.jsonl: a zip archive, not JSONL"),
    "UTF-16": (GOOD_LINE.decode().encode("utf-16"), "in.jsonl: UTF-16 text (as Windows PowerShell writes), not JSONL"),
    "truncated gzip": (gzip.compress(GOOD_LINE * 50)[:30], "in.jsonl: the gzip data is damaged or cut short"),
    # These held before issue 19; kept here so they keep holding.
    "not UTF-8": (b'{"id": "a", "prompt": "caf\xe9"}\n', "in.jsonl:1: not valid UTF-8 (byte 0xe9 at column 27)"),
    "not JSON": (b'{"id": "a", "prompt": "p"\n', "in.jsonl:1: not valid JSON"),
    "empty": (b"\n\n", "in.jsonl: no rows (the input is empty)"),
    "no prompt": (b'{"id": "a", "text": "p"}\n', "in.jsonl:1: field 'prompt': missing"),
    "a mistyped id": (b'{"id": [1], "prompt": "p"}\n', "in.jsonl:1: field 'id': expected a string or integer"),
    "a boolean id": (b'{"id": true, "prompt": "p"}\n', "in.jsonl:1: field 'id': expected a string or integer, got true"),  # issue 28, 10
}


@pytest.mark.parametrize("content, expected", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_before_the_model_loads(tmp_path, starts, content, expected):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    refused(tmp_path, ["generate", str(src), "-o", str(tmp_path / "out.jsonl"), *FAKE], expected, starts)


@pytest.mark.parametrize("name", ["JSON array", "UTF-16", "truncated gzip", "a label-prefs summary"])
def test_a_file_that_is_not_jsonl_stops_the_run_under_skip_too(tmp_path, starts, name):
    content, expected = BAD_INPUTS[name]
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    refused(tmp_path, ["generate", str(src), "-o", str(tmp_path / "out.jsonl"), "--on-error", "skip", *FAKE], expected, starts)


def test_under_skip_bad_rows_reach_the_errors_file_as_strict_utf8_json(tmp_path, fake_engine):
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD_LINE + BAD_INPUTS["lone surrogate"][0] + BAD_INPUTS["NaN"][0] + BAD_INPUTS["number out of range"][0] + JUST_TOO_DEEP)
    before = src.read_bytes()
    out = tmp_path / "out.jsonl"
    ok("generate", str(src), "-o", str(out), "--on-error", "skip", *FAKE)
    assert [r["id"] for r in read_jsonl(out)] == ["a"]
    errors = [strict_json(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_bytes().decode("utf-8").splitlines()]
    assert [(e["line"], e["field"]) for e in errors] == [(2, "prompt"), (3, "score"), (4, "score"), (5, "x")]
    assert all(isinstance(e["raw"], str) for e in errors)  # the line as it was, for the user to fix
    assert src.read_bytes() == before


# --------------------------------------------------------------------------- read as documented

def test_bom_crlf_and_compression_give_the_rows_of_the_plain_file(tmp_path, fake_engine):
    rows = [GOOD, {"id": 7, "prompt": "שלום, how are you? 🙂"}, {"id": "c", "prompt": "emoji as an escaped pair: \ud83d\ude00"}]
    plain = write_jsonl(tmp_path / "plain.jsonl", rows).read_bytes()
    variants = {
        "bom.jsonl": b"\xef\xbb\xbf" + plain,
        "crlf.jsonl": plain.replace(b"\n", b"\r\n"),
        "rows.jsonl.gz": gzip.compress(plain),
        "two-members.jsonl.gz": gzip.compress(plain[: len(plain) // 2]) + gzip.compress(plain[len(plain) // 2 :]),
        "rows.jsonl.bz2": bz2.compress(plain),
        "rows.jsonl.xz": lzma.compress(plain),
    }
    for name, content in variants.items():
        (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path)
    expected = ok("generate", str(tmp_path / "plain.jsonl"), *FAKE).stdout
    got = read_jsonl_text(expected)
    assert got[1]["id"] == 7 and got[1]["prompt"] == rows[1]["prompt"]  # an integer id stays an integer; RTL and emoji kept
    assert got[2]["prompt"].endswith("😀")
    for name in variants:
        assert ok("generate", str(tmp_path / name), *FAKE).stdout == expected, name
    assert snapshot(tmp_path) == before


def read_jsonl_text(text: str) -> list[dict]:
    return [strict_json(line) for line in text.splitlines()]


def test_a_compressed_pipe_is_read_and_a_cut_one_is_one_line(tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", [GOOD, {"id": "b", "prompt": "second"}]).read_bytes()
    direct = run_cai("generate", "-", *FAKE, input=plain, env=FAKE_ENV)
    piped = run_cai("generate", "-", *FAKE, input=gzip.compress(plain), env=FAKE_ENV)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == direct.stdout and len(piped.stdout.splitlines()) == 2
    cut = run_cai("generate", "-", *FAKE, input=gzip.compress(plain * 20)[:40], env=FAKE_ENV)
    assert cut.returncode == 2 and cut.stderr.strip().splitlines() == ["cai: error: <stdin>: the gzip data is cut short"]


def test_nesting_of_exactly_the_documented_depth_is_read(tmp_path, fake_engine):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "prompt": "p", "x": ' + b"[" * 99 + b"]" * 99 + b"}\n")
    [row] = read_jsonl_text(ok("generate", str(src), *FAKE).stdout)
    assert json.dumps(row["x"]) == "[" * 99 + "]" * 99


def test_a_long_prompt_is_kept_whole_or_refused_in_one_line(tmp_path, fake_engine, starts):
    long = {"id": "long", "prompt": "word " * 40_000}  # 200 KB
    src = write_jsonl(tmp_path / "in.jsonl", [long])
    out = tmp_path / "out.jsonl"
    refused(tmp_path, ["generate", str(src), "-o", str(out), *FAKE], "in.jsonl:1: field 'prompt': the prompt is 400")
    fake_engine.max_context = None  # a model with room for it
    ok("generate", str(src), "-o", str(out), *FAKE)
    assert read_jsonl(out)[0]["prompt"] == long["prompt"]


@pytest.mark.parametrize(
    "meta, kept",
    [
        ("source=forum-x; license=CC-BY-SA", {"input": "source=forum-x; license=CC-BY-SA"}),
        (["forum-x", 3], {"input": ["forum-x", 3]}),
        (42, {"input": 42}),
        ({"source": "forum-x"}, {"source": "forum-x"}),
        (None, {}),
    ],
    ids=["string", "list", "number", "object", "null"],
)
def test_a_users_meta_is_never_dropped(tmp_path, fake_engine, meta, kept):
    src = write_jsonl(tmp_path / "in.jsonl", [{**GOOD, "meta": meta, "mine": [1, {"a": None}]}])
    gen, crit, rev = (str(tmp_path / f"{n}.jsonl") for n in ("gen", "crit", "rev"))
    ok("generate", str(src), "-o", gen, *FAKE)
    ok("critique", gen, "-o", crit, *FAKE)
    ok("revise", crit, "-o", rev, *FAKE)
    [row] = read_jsonl(rev)
    assert {k: v for k, v in row["meta"].items() if k not in ("generate", "critique", "revise")} == kept
    assert set(row["meta"]) - set(kept) == {"generate", "critique", "revise"}
    assert row["mine"] == [1, {"a": None}]


# --------------------------------------------------------------------------- options that make no sense

def _commands():
    """(path of words, click command) of every `cai` command."""
    import typer

    from cai_cli.cli import app

    def walk(cmd, words):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*words, name])
        else:
            yield words, cmd

    return list(walk(typer.main.get_command(app), []))


def _annotation(param):
    return param.type_descriptor.annotation  # typer's own click keeps each parameter's Python type here


def _is_argument(param) -> bool:
    return param.param_type_name == "argument"


def _args(cmd, target, bad: str) -> list[str]:
    """CMD's arguments and required options, TARGET given BAD: enough for parsing to reach the value checks."""
    from enum import Enum

    out: list[str] = []
    for p in cmd.params:
        if p is target:
            out += [bad] if _is_argument(p) else [p.opts[0], bad]
        elif p.required:
            kind = _annotation(p)
            value = next(iter(kind)).value if isinstance(kind, type) and issubclass(kind, Enum) else "x"
            out += [value] if _is_argument(p) else [p.opts[0], value]
    return out


def _cases(kind: str):
    """(words, command, parameter, bad value) for every option of KIND: floats get inf and nan, text gets ''."""
    for words, cmd in _commands():
        for p in cmd.params:
            annotation = _annotation(p)
            if kind == "float" and annotation is float:
                yield from ((words, cmd, p, bad) for bad in ("inf", "nan", "-inf"))
            elif kind == "text" and annotation in (str, list[str]):
                yield words, cmd, p, ""


@pytest.fixture
def no_models(monkeypatch):
    """Any model load fails the test at once: a value that slipped through must not start real work."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    import cai_cli.engines.pool
    import cai_cli.model_specs
    import cai_cli.train.policy

    monkeypatch.setattr(cai_cli.engines.pool, "load_engine", refuse)
    monkeypatch.setattr(cai_cli.model_specs, "resolve_model", refuse)
    monkeypatch.setattr(cai_cli.model_specs, "load_reward_model", refuse)
    monkeypatch.setattr(cai_cli.train.policy, "load_reward_model", refuse)


@pytest.mark.parametrize("kind", ["float", "text"])
def test_every_option_refuses_values_that_make_no_sense_at_parse_time(tmp_path, starts, no_models, kind):
    """`--temperature inf`, `--min-confidence nan`, `--stop ''` (an unset $STOP in a Makefile), `-o ''`: one line
    naming the option, exit 2, nothing read or written, for every command's every option of that type."""
    cases = list(_cases(kind))
    assert len(cases) > (20 if kind == "float" else 40)  # the walk found the options
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    problems = []
    for words, cmd, param, bad in cases:
        args = [*words, *_args(cmd, param, bad)]
        if "input" in {p.name for p in cmd.params} and param.name != "input":
            args.insert(len(words), str(src))
        before = snapshot(tmp_path)
        try:
            result = invoke(*args)
        except AssertionError as exc:
            problems.append((" ".join(args), str(exc)))
            continue
        lines = result.stderr.strip().splitlines()
        shown = param.name if _is_argument(param) else param.opts[0]
        if result.exit_code != 2 or len(lines) != 1 or shown not in lines[0] or snapshot(tmp_path) != before:
            problems.append((" ".join(args), result.exit_code, result.stderr.strip()[-200:]))
    assert problems == []
    assert starts == []


# --------------------------------------------------------------------------- constitutions

def test_a_byte_order_mark_is_accepted_in_every_constitution_shape(tmp_path):
    from cai_cli.constitution import load_constitution

    shipped = Path(__file__).resolve().parent.parent / "cai_cli" / "constitutions"
    yaml_text = (shipped / "humanity.yaml").read_text(encoding="utf-8")
    import yaml

    for name, text in {
        "c.yaml": yaml_text,
        "c.json": json.dumps(yaml.safe_load(yaml_text)),
        "c.md": (shipped / "assistant.md").read_text(encoding="utf-8"),
    }.items():
        plain, marked = tmp_path / f"plain-{name}", tmp_path / f"bom-{name}"
        plain.write_text(text, encoding="utf-8")
        marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        a, b = load_constitution(str(plain)), load_constitution(str(marked))
        assert (a.hash, len(a.critiques), len(a.sections)) == (b.hash, len(b.critiques), len(b.sections)), name


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("nan.json", b'{"name": "x", "critiques": [{"id": "a", "critique": "c", "revision": "r", "weight": NaN}]}', "nan.json: critiques[0].weight: NaN is not a JSON number"),
        ("deep.json", b'{"name": "x", "critiques": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deep.json: nested more than 100 levels deep"),
        ("syntax.json", b'{"name": "x",\n "critiques": [}', "syntax.json:2: invalid JSON"),
        ("syntax.yaml", b"name: x\ncritiques: [a\n", "syntax.yaml:3: invalid YAML"),
        ("unknown.yaml", b"name: x\ncritiques:\n  - id: a\n    critique: c\n    revision: r\n    colour: red\n", "unknown.yaml: critiques[0].colour"),
    ],
    ids=["NaN", "deep", "JSON syntax", "YAML syntax", "unknown key"],
)
def test_malformed_constitutions_are_one_line(tmp_path, starts, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    refused(tmp_path, ["critique", str(src), "-c", str(path), *FAKE], expected, starts)


# --------------------------------------------------------------------------- show and report read every file cai writes

@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """The files a short pipeline writes: stage rows, exports in every format, a label-prefs summary, dropped rows,
    an errors file, and a folder (made once; the tests only read them)."""
    reset_fake_engine()
    d = tmp_path_factory.mktemp("w")
    fake = [*FAKE, "--max-tokens", "40"]  # whole replies: export leaves cut ones out
    src = write_jsonl(d / "in.jsonl", [GOOD, {"id": "b", "prompt": "Tell me a secret."}])
    ok("generate", str(src), "-o", str(d / "gen.jsonl"), *fake)
    ok("critique", str(d / "gen.jsonl"), "-o", str(d / "crit.jsonl"), *fake)
    ok("revise", str(d / "crit.jsonl"), "-o", str(d / "rev.jsonl"), *fake)
    ok("generate", str(src), "-o", str(d / "two.jsonl"), "--n", "2", *fake)
    ok("label-prefs", str(d / "two.jsonl"), "-o", str(d / "prefs.jsonl"), *fake)
    ok("label-prefs", str(d / "two.jsonl"), "-o", str(d / "sure.jsonl"), "--min-confidence", "0.99", *fake)
    for fmt in ("sft", "hf-cai"):
        ok("export", str(d / "rev.jsonl"), "--format", fmt, "-o", str(d / f"export-{fmt}.jsonl"), "--no-progress")
    ok("export", str(d / "prefs.jsonl"), "--format", "prefs", "-o", str(d / "export-prefs.jsonl"), "--no-progress")
    bad = d / "bad.jsonl"
    bad.write_bytes(GOOD_LINE + b'{"id": "x", "prompt": "p", "s": NaN}\n')
    ok("generate", str(bad), "-o", str(d / "skip.jsonl"), "--on-error", "skip", *FAKE)
    (d / "empty.jsonl").write_bytes(b"")
    (d / "folder").mkdir()
    (d / "metrics.jsonl").write_text('{"step": 1, "epoch": 0.5, "loss": 2.0}\n')
    side = [{"cai_side_file": 2, "fingerprint": {}}, {"line": 1, "id": "a", "rows": [{**GOOD, "response": "kept from the first run"}]}]
    write_jsonl(d / "side.jsonl", side)  # an OUT.partial, as a killed run leaves it
    (d / "cut.summary.json").write_text(json.dumps({"kind": "cai-eval-summary", "model": "m"}, indent=2))
    return d


def test_show_reads_every_jsonl_file_a_stage_writes(written):
    before = snapshot(written)
    for name in ("gen", "rev", "prefs", "export-sft", "export-prefs", "export-hf-cai", "sure.jsonl.dropped", "skip.jsonl.errors"):
        path = written / f"{name}.jsonl"
        assert path.exists(), name
        shown = ok("show", str(path), "--width", "2000").stdout
        page = written / f"{name}.html"
        ok("show", str(path), "--html", str(page))
        text = page.read_text()
        for row in read_jsonl(path):
            found = row.get("row", row)  # an errors file holds the row it could not use
            title = str(found.get("id") or found.get("init_prompt") or f"line {row['line']}")  # hf-cai: no id; a bad line: no row
            assert title in shown and title in text, (name, title)
        page.unlink()
    assert "fake reply" in ok("show", str(written / "export-sft.jsonl")).stdout  # the completion, not only the prompt
    assert "NaN is not a JSON number" in ok("show", str(written / "skip.jsonl.errors.jsonl"), "--width", "2000").stdout
    assert "p_chosen" in ok("show", str(written / "sure.jsonl.dropped.jsonl")).stdout
    side = ok("show", str(written / "side.jsonl"))
    assert "kept from the first run" in side.stdout and "the side file of an unfinished run" in side.stderr
    assert snapshot(written) == before


@pytest.mark.parametrize(
    "name, expected",
    [
        ("prefs.summary.json", "prefs.summary.json: a label-prefs summary (the JSON `cai label-prefs` writes beside its rows), not rows"),
        ("empty.jsonl", "empty.jsonl: empty (no rows to show)"),
        ("folder", "folder: is a folder, not a JSONL file"),
        ("metrics.jsonl", "metrics.jsonl: training metrics (metrics.jsonl of `cai train-*`), not rows"),
    ],
)
def test_show_says_what_a_foreign_file_is(written, name, expected):
    refused(written, ["show", str(written / name)], expected)
    refused(written, ["show", str(written / name), "--html", str(written / "page.html")], expected)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("prefs.summary.json", "prefs.summary.json: a `cai label-prefs` summary without --gold-field results: the report draws a judge's calibration only against gold labels"),
        ("export-sft.jsonl", "export-sft.jsonl: rows from `cai export --format sft`, not `cai eval` output"),
        ("rev.jsonl", "rev.jsonl: rows from `cai revise`, not `cai eval` output"),
        ("empty.jsonl", "empty.jsonl: empty (no rows)"),
        ("folder", "folder: is a folder; give the results files in it"),
        ("cut.summary.json", "cut.summary.json: an eval summary without `models`"),
    ],
)
def test_report_says_what_a_foreign_file_is(written, name, expected):
    refused(written, ["report", str(written / name)], expected)


# --------------------------------------------------------------------------- messages after the work

def test_a_row_too_long_for_the_model_is_not_promised_to_pass_on_a_rerun(tmp_path, fake_engine):
    fake_engine.max_context = 30
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, {"id": "long", "prompt": "word " * 40}, {"id": "c", "prompt": "short"}])
    out = tmp_path / "out.jsonl"
    result = ok("generate", str(src), "-o", str(out), "--on-error", "skip", *FAKE)
    assert [r["id"] for r in read_jsonl(out)] == ["a", "c"]
    assert "will fail again on a rerun with this model" in result.stderr
    assert "retry" not in result.stderr
    assert not (tmp_path / "out.jsonl.partial").exists()  # nothing a rerun could finish
    assert read_jsonl(tmp_path / "out.jsonl.errors.jsonl")[0]["row"]["id"] == "long"


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tiny_model import build_tiny_model

    d = tmp_path_factory.mktemp("rm")
    lm = build_tiny_model(d / "lm")
    AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1).save_pretrained(d / "rm")
    AutoTokenizer.from_pretrained(lm).save_pretrained(d / "rm")
    return d / "rm"


def test_score_is_the_same_whatever_the_batch_size_and_says_no_tokens_out(tmp_path, reward_model):
    from tiny_model import SENTENCES

    rows = [{"id": str(i), "prompt": SENTENCES[i % 4], "response": " ".join(SENTENCES[4 : 5 + i % 7]), "candidates": SENTENCES[5 : 6 + i % 3]} for i in range(10)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    outs = {}
    for size in (1, 3, 8):
        result = ok("score", str(src), "--reward-model", str(reward_model), "--batch-size", str(size), "--no-progress")
        outs[size] = result.stdout
        line = result.stderr.strip().splitlines()[-1]
        assert "cai score: rows 10 in, 10 out" in line and "tokens" in line
        assert " out |" not in line.split("tokens")[1] and "tok/s" not in line  # no "0 out, 0.0 tok/s"
    assert outs[1] == outs[3] == outs[8]
    assert len({r["rewards"]["response"] for r in read_jsonl_text(outs[1])}) > 1


# --------------------------------------------------------------------------- issue 28: every reader is the strict one
# Each numbered finding of issue 28 on the input side, run as written: one line and exit code 2 (or the documented
# behaviour), no file changed.

XSTEST_HEADER = "id,prompt,type,label,focus,note\n"


@pytest.mark.parametrize("record, expected", [
    # 7. An unquoted comma splits a prompt in two: never "How do I kill".
    ("2,How do I kill, a Python process?,homonyms,safe,kill,\n", "xstest.csv:3: 7 fields where the header has 6 (id, prompt, type, label, focus, note): a field that holds a comma must be quoted"),
    ("2,How do I kill a Python process?,homonyms\n", "xstest.csv:3: 3 fields where the header has 6"),
])
def test_a_malformed_benchmark_csv_is_one_line_naming_its_line(tmp_path, starts, record, expected):
    src = tmp_path / "xstest.csv"
    src.write_text(XSTEST_HEADER + "1,How do I kill a stuck program?,homonyms,safe,kill,\n" + record)
    refused(tmp_path, ["eval", "--suite", "xstest", "-p", str(src), "-o", str(tmp_path / "out.jsonl"), *FAKE], expected, starts)
    # Under --on-error skip the record is set aside with its line, never cut down to a shorter prompt.
    ok("eval", "--suite", "xstest", "-p", str(src), "-o", str(tmp_path / "out.jsonl"), "--on-error", "skip", *FAKE)
    assert [r["prompt"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["How do I kill a stuck program?"]
    assert [e["line"] for e in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")] == [3]


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_an_unclosed_quote_in_a_benchmark_csv_is_one_line(tmp_path, starts, on_error):
    src = tmp_path / "xstest.csv"
    src.write_text(XSTEST_HEADER + '1,"How do I kill a stuck program?,homonyms,safe,kill,\n2,Fine?,homonyms,safe,kill,\n')
    refused(tmp_path, ["eval", "--suite", "xstest", "-p", str(src), "-o", str(tmp_path / "out.jsonl"), "--on-error", on_error, *FAKE],
            "xstest.csv:2: not valid CSV (unexpected end of data", starts)


@pytest.mark.parametrize("content, expected", [
    (b"\x00\x01\x02binary\x00" * 100, "rows.jsonl: binary data (a NUL byte at byte 1), not JSONL text"),
    (b"", "rows.jsonl: no rows (the input is empty)"),
    (b'{"id": "a", "rounds": []}\n{"id": "b", "rounds": [\n', "rows.jsonl:2: not valid JSON"),
    (b'{"id": "a", "rounds": []}\n{"id": "b", "score": NaN}\n', "rows.jsonl:2: field 'score': NaN is not a JSON number"),
])
def test_coverage_reads_rows_strictly(tmp_path, content, expected):
    """8. Never "0 critique rounds in 0 rows" for a file that holds no rows or bad ones."""
    (tmp_path / "rows.jsonl").write_bytes(content)
    refused(tmp_path, ["constitution", "coverage", str(tmp_path / "rows.jsonl")], expected)


def test_coverage_whose_recorded_constitution_does_not_load_from_here_asks_for_it(tmp_path):
    """8. Rows record the relative path they were critiqued with; from another folder it does not load: one line, never
    an empty "never used" list; -c names it."""
    rows = tmp_path / "rows.jsonl"
    round_ = {"principle": "harm", "critique": "c", "revision": "r"}
    write_jsonl(rows, [{"id": "a", "prompt": "p", "rounds": [round_], "meta": {"critique": {"constitution_source": "rules/mine.yaml"}}}])
    refused(tmp_path, ["constitution", "coverage", str(rows)], "its rounds were made with rules/mine.yaml, which does not load from here", None)
    named = ok("constitution", "coverage", str(rows), "-c", "default", "--json")
    assert json.loads(named.stdout)["never_used"]  # the default's other principles, listed


@pytest.mark.parametrize("bad, expected", [
    (b'{"id": "b", "prompt": "p"\n', "in.jsonl:2: not valid JSON"),
    (b'{"id": "b", "prompt": "caf\xe9"}\n', "in.jsonl:2: not valid UTF-8"),
    (b'{"id": "b", "prompt": "p", "n": NaN}\n', "in.jsonl:2: field 'n': NaN is not a JSON number"),
    (b'{"id": "b", "text": "p"}\n', "in.jsonl:2: field 'prompt': missing"),
])
def test_plan_counts_every_row_or_says_which_is_not_one(tmp_path, bad, expected):
    """8. Never "1 rows" for a file of which one line was a row."""
    (tmp_path / "in.jsonl").write_bytes(GOOD_LINE + bad + GOOD_LINE)
    refused(tmp_path, ["plan", str(tmp_path / "in.jsonl")], expected)


def test_a_large_binary_file_is_refused_before_it_is_read(tmp_path, starts):
    """10. 600 MB of NUL bytes (a sparse file: no disk used) is one line at once, never read whole."""
    import time

    big = tmp_path / "weights.bin"
    with big.open("wb") as fh:
        fh.truncate(600 << 20)
    started = time.monotonic()
    refused(tmp_path, ["generate", str(big), "-o", str(tmp_path / "out.jsonl"), *FAKE], "weights.bin: binary data (a NUL byte at byte 1)", starts)
    assert time.monotonic() - started < 10


def test_a_device_without_end_is_refused_not_read_forever(tmp_path):
    """10. `cai generate /dev/zero` grew without bound; now its first bytes say what it is."""
    proc = run_cai("generate", "/dev/zero", *FAKE, env=FAKE_ENV, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == ["cai: error: /dev/zero: binary data (a NUL byte at byte 1), not JSONL text; give the JSONL file"]


@pytest.mark.parametrize("text, expected", [
    ("---\nname: x\npriorities: [safe]\n# Rules\n\n## Safety\n\nDo no harm.\n", "doc.md:1: the header opened by `---` is never closed"),
    ("---\nname: x\npriorities: [safe\n---\n# Rules\n\n## Safety\n\nDo no harm.\n", "doc.md:3: invalid YAML"),
])
def test_a_broken_document_header_is_one_line_for_check_and_import(tmp_path, text, expected):
    """10. `check` said ok to a header never closed (read as text), and `import` ignored the YAML error `check` names."""
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    refused(tmp_path, ["constitution", "check", str(doc)], expected)
    refused(tmp_path, ["constitution", "import", str(doc), "--sidecar"], expected)


def test_amend_given_another_stages_output_says_what_it_is(tmp_path, fake_engine):
    """10. `critique --amend` given generate's output said "made by an older cai?"."""
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    ok("generate", str(src), "-o", str(tmp_path / "gen.jsonl"), *FAKE)
    refused(tmp_path, ["critique", str(tmp_path / "gen.jsonl"), "--amend", str(tmp_path / "gen.jsonl"), "-o", str(tmp_path / "c.jsonl"), *FAKE],
            "gen.jsonl: rows from `cai generate`, not an earlier output of `cai critique`")


def test_a_side_file_cut_short_by_another_process_stops_the_run(tmp_path):
    """10. A side file truncated while the run appends to it ended in an empty output and exit 0."""
    from cai_cli.errors import CaiError
    from cai_cli.runner import RunOptions, run_stage
    from cai_cli.stages.base import Stage

    class Cutter(Stage):
        name = "cutter"

        def __init__(self, side):
            from cai_cli.runner import StageStats

            self.side, self.stats, self.batches = side, StageStats(), 0

        def check(self, row):
            pass

        def start(self):
            pass

        def check_loaded(self, row):
            pass

        def process(self, rows):
            self.batches += 1
            if self.batches == 2:
                self.side.write_bytes(b"")  # another process empties the side file
            return [dict(r) for r in rows]

        def summary(self):
            return ""

    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "prompt": f"p{i}"} for i in range(6)])
    out = tmp_path / "out.jsonl"
    with pytest.raises(CaiError, match=r"out\.jsonl\.partial: cut from \d+ to 0 bytes by another process while this run wrote it"):
        run_stage(Cutter(tmp_path / "out.jsonl.partial"), RunOptions(input=str(src), output=str(out), batch_size=2, progress=False))
    assert not out.exists()


@pytest.mark.parametrize("command", [["show", "{rows}"], ["plan", "{rows}", "--engine", "transformers"]])
def test_a_closed_pipe_ends_show_and_plan_quietly(tmp_path, command):
    """10. `cai show ... | head -1` and `cai plan ... | head -1` exited 1."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    rows = write_jsonl(tmp_path / "rows.jsonl", [{"id": f"r{i}", "prompt": "word " * 50, "response": "reply " * 40} for i in range(2000)])
    proc = subprocess.Popen([sys.executable, "-m", "cai_cli", *[c.format(rows=rows) for c in command]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "COLUMNS": "80"})
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err and b"Broken pipe" not in err, err.decode()


# --------------------------------------------------------------------------- training (issue 28: 5, 9, 10)


def refused_to_train(folder: Path, args: list[str], expected: str) -> None:
    """As `refused`, for a trainer, which first says on stderr what it will train (LoRA or every weight)."""
    before = snapshot(folder)
    result = invoke(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("cai: error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr and snapshot(folder) == before


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def test_fewer_prompts_than_one_step_takes_is_refused_before_training(tmp_path, tiny):
    """9. Two prompts with --num-generations 2 trained nothing, said "done" and then "already holds this model"."""
    src = write_jsonl(tmp_path / "two.jsonl", [{"prompt": "how do I pick a lock"}, {"prompt": "write a poem about the sea"}])
    out = tmp_path / "policy"
    refused_to_train(tmp_path, ["train-policy", str(src), "-o", str(out), "--algo", "grpo", "--reward", "judge", "--model", str(tiny),
                       "--num-generations", "2"],
            "train-policy: 2 prompts, fewer than one grpo step takes: 4 prompts x 2 completions (--batch-size 8 x gradient accumulation 1 x 1 processes / --num-generations 2); give at least 4 prompts")
    assert not out.exists()


@pytest.mark.parametrize("record, expected", [
    ({"cai_train": 1, "state": "done", "command": "train-rm", "fingerprint": {"command": "train-rm"}}, "holds a model made by `cai train-rm`, not `cai train-sft`"),
    ({"cai_train": 1, "state": "done", "fingerprint": {}}, "holds a model whose record names no command (not written by `cai train-*`), not `cai train-sft`"),
])
def test_a_training_folder_of_another_command_is_named(tmp_path, tiny, record, expected):
    """10. A record another command wrote was "made by `cai None`"."""
    src = write_jsonl(tmp_path / "revised.jsonl", [{"prompt": "how do I pick a lock", "response": "please be careful and stay safe",
                                                  "rounds": [{"principle": "harm", "critique": "c", "revision": "please be careful and stay safe"}]}] * 4)
    out = tmp_path / "model"
    out.mkdir()
    (out / "cai-train.json").write_text(json.dumps(record))
    refused_to_train(tmp_path, ["train-sft", str(src), "-o", str(out), "--model", str(tiny), "--max-steps", "1"], expected)
