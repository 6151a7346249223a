"""`cai report`: several eval results merged into one table, ratings across files, and a real image file."""

from __future__ import annotations

import json

import pytest
from conftest import run_cai, write_jsonl
from test_eval import FakeEngine, config

from cai_cli.errors import CaiError
from cai_cli.report import chart, load_results
from cai_cli.eval import run as ev

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_results(tmp_path, monkeypatch):
    """safe-vs-eager and eager-vs-eager, both against the same baseline, as `cai eval` writes them."""
    monkeypatch.setattr("cai_cli.stages.base.load_engine", lambda opts: FakeEngine(opts))
    FakeEngine.fail_scoring = False
    files = []
    for model in ("safe", "eager"):
        d = tmp_path / model
        d.mkdir()
        ev.run_eval(config(d, model=model, baseline="eager", name=f"{model}-model"))
        files.append(str(d / "eval.jsonl"))
    return files


def test_results_merge_into_one_table_with_ratings(two_results):
    report = load_results(two_results, bootstrap=100)
    assert list(report["models"]) == ["safe-model", "eager", "eager-model"]
    assert report["models"]["eager"]["role"] == "baseline"
    assert report["baselines"] == ["eager"]
    harm = [r["model"] for r in report["ratings"]["harmlessness"]]
    help_ = [r["model"] for r in report["ratings"]["helpfulness"]]
    assert harm[0] == "safe-model" and help_[-1] == "safe-model"
    assert {r["model"]: r["rating"] for r in report["ratings"]["harmlessness"]}["eager"] == 1000.0


def test_cli_prints_the_table_and_writes_a_png(two_results, tmp_path):
    png = tmp_path / "report.png"
    data = tmp_path / "report.json"
    proc = run_cai("report", *two_results, "-o", str(png), "--json", str(data), "--bootstrap", "50")
    assert proc.returncode == 0, proc.stderr
    for name in ("safe-model", "eager-model", "harm", "help", "over-", "Elo"):
        assert name in proc.stdout
    raw = png.read_bytes()
    assert raw[:8] == PNG_MAGIC
    import matplotlib.image

    height, width = matplotlib.image.imread(str(png)).shape[:2]
    assert width >= 600 and height >= 400
    merged = json.loads(data.read_text())
    assert merged["models"]["safe-model"]["harmlessness_win_rate"]["value"] > 0.6


def test_summary_json_is_accepted_too(two_results, tmp_path):
    summary = two_results[0].replace("eval.jsonl", "eval.summary.json")
    report = load_results([summary], bootstrap=0)
    assert report["models"]["safe-model"]["refusal_rate"]["value"] == 1.0
    assert report["ratings"]["harmlessness"]  # kept from the summary


def test_html_report_embeds_the_chart_and_the_table(two_results, tmp_path):
    out = chart(load_results(two_results, bootstrap=0), str(tmp_path / "r.html"))
    text = out.read_text()
    assert text.startswith("<!doctype html>")
    assert "data:image/png;base64,iVBORw0KGgo" in text  # a PNG, base64-encoded
    assert "safe-model" in text and "over-" in text  # the table


def test_chart_without_judge_uses_the_detector(tmp_path, monkeypatch):
    monkeypatch.setattr("cai_cli.stages.base.load_engine", lambda opts: FakeEngine(opts))
    ev.run_eval(config(tmp_path, baseline=None))
    out = chart(load_results([str(tmp_path / "eval.jsonl")], bootstrap=0), str(tmp_path / "r.svg"))
    assert out.read_text().lstrip().startswith("<?xml") and "declines red-team prompts" in out.read_text()


def test_unknown_extension_and_foreign_files_are_one_line_errors(two_results, tmp_path):
    with pytest.raises(CaiError, match=r"\.png, \.svg, \.pdf or \.html"):
        chart(load_results(two_results, bootstrap=0), str(tmp_path / "r.jpg"))
    foreign = write_jsonl(tmp_path / "gen.jsonl", [{"id": "a", "prompt": "p", "response": "r"}])
    proc = run_cai("report", str(foreign))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"cai: error: {foreign}: not `cai eval` output (no row has meta.eval)"
