"""The command line as a user meets it: help, one-line errors with exit code 2, no output on bad input."""

from __future__ import annotations

import pytest

from conftest import write_jsonl


def test_help_lists_every_stage(cai):
    proc = cai("--help")
    assert proc.returncode == 0
    for name in ("generate", "critique", "revise", "label-prefs", "train-sft", "train-rm", "train-policy", "eval", "report", "constitution"):
        assert name in proc.stdout


def test_importing_the_cli_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, cai_cli.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'{"prompt": "ok"}\n{"prompt": \n', "in.jsonl:2: not valid JSON"),
        (b'{"prompt": "ok"}\n{"messages": "hi"}\n', "in.jsonl:2: field 'messages': expected a non-empty list"),
        (b'{"prompt": "caf\xe9"}\n', "in.jsonl:1: not valid UTF-8"),
        (b'{"text": "no prompt"}\n', "in.jsonl:1: field 'prompt': missing"),
        (b"", "in.jsonl: no rows"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2_and_no_output(cai, tmp_path, content, expected):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    proc = cai("generate", str(src), "-o", str(out), "--engine", "transformers")
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_verbose_shows_the_traceback(cai, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": 1}\n')
    proc = cai("generate", str(src), "--verbose", "--engine", "transformers")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_missing_input_file(cai, tmp_path):
    proc = cai("generate", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2
    assert "nope.jsonl: no such file" in proc.stderr


def test_critique_needs_a_response(cai, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}])
    proc = cai("critique", str(src), "--engine", "transformers")
    assert proc.returncode == 2
    assert "in.jsonl:1: field 'response': missing; run `cai generate` first" in proc.stderr


def test_revise_needs_a_critique_and_a_matching_constitution(cai, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi", "response": "hello"}])
    proc = cai("revise", str(src), "--engine", "transformers")
    assert proc.returncode == 2 and "field 'rounds': no critique to answer" in proc.stderr

    row = {"prompt": "hi", "response": "hello", "rounds": [{"principle": "harm", "critique_request": "x", "critique": "y"}]}
    src = write_jsonl(tmp_path / "in2.jsonl", [row])
    proc = cai("revise", str(src), "--constitution", "humanity", "--engine", "transformers")
    assert proc.returncode == 2 and "rounds[0].principle" in proc.stderr and "humanity" in proc.stderr


def test_bad_constitution_is_one_line(cai, tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("name: x\ncritiques:\n  - id: a\n    critique: ''\n    revision: r\n")
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi", "response": "hello"}])
    proc = cai("critique", str(src), "--constitution", str(bad))
    assert proc.returncode == 2
    assert "c.yaml: critiques[0].critique" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_shard_is_a_usage_error(cai, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}])
    proc = cai("generate", str(src), "--shard", "3/2")
    assert proc.returncode == 2
    assert "0 <= I < N" in proc.stderr


def test_unknown_local_model_folder(cai, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}])
    proc = cai("generate", str(src), "--model", str(tmp_path / "no-model"), "--engine", "transformers")
    assert proc.returncode == 2
    assert "no such model folder" in proc.stderr


def test_offline_hub_id_is_a_clear_error(cai, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}])
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = cai("generate", str(src), "--model", "someone/not-a-real-model", "--engine", "transformers", env=env)
    assert proc.returncode == 2
    assert "could not be fetched from the hub" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_constitution_check_and_show(cai):
    proc = cai("constitution", "check", "constitutions/default.yaml")
    assert proc.returncode == 0 and "ok (native format" in proc.stdout
    proc = cai("constitution", "show", "humanity")
    assert proc.returncode == 0 and "humanity" in proc.stdout


def test_constitution_check_reads_hf_and_anthropic_files(cai):
    for name in ("hf_constitution.json", "anthropic_critiques.json"):
        proc = cai("constitution", "check", f"tests/fixtures/{name}")
        assert proc.returncode == 0, proc.stderr


def test_version_is_printed_and_recorded_in_every_row(tmp_path, fake_engine):
    from cai_cli import version

    from conftest import invoke, read_jsonl

    assert version()[0].isdigit()  # the installed package's, not "unknown"
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"cai {version()}"
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi"}])
    out = tmp_path / "out.jsonl"
    assert invoke("generate", str(src), "-o", str(out), "--engine", "fake", "--no-progress").exit_code == 0
    assert read_jsonl(out)[0]["meta"]["generate"]["cai_version"] == version()
