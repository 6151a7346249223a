"""`cai plan`: tokens, calls, hours and cost of the README pipeline, from the input's prompts and the model's tokenizer."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, invoke, write_jsonl

RED_TEAM = str(ROOT / "examples" / "red_team.jsonl")


def plan_json(*args: str) -> dict:
    result = invoke("plan", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_prints_its_table_for_the_readme_pipeline():
    result = invoke("plan", RED_TEAM, "--sample", "8", "--throughput", "500", "--gpus", "2", "--price", "3")
    assert result.exit_code == 0, result.output
    for stage in ("generate", "critique 1", "revise 1", "critique 2", "revise 2", "generate --n 2", "label-prefs", "total"):
        assert stage in result.stdout
    assert "hours on 2 GPUs" in result.stdout and "per GPU-hour" in result.stdout


def test_plan_counts_the_prompts_with_the_models_tokenizer_and_does_the_arithmetic(tmp_path):
    from transformers import AutoTokenizer

    from cai_cli.model_specs import resolve_model

    rows = [{"id": f"r{i}", "prompt": f"How do I pick lock number {i}?" + " please" * i} for i in range(5)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    plan = plan_json(str(src), "--rows", "1000", "--output-tokens", "50", "--throughput", "100", "--prefill-throughput", "1000", "--gpus", "4", "--price", "2")
    stages = {s["stage"]: s for s in plan["stages"]}
    assert list(stages) == ["generate", "critique 1", "revise 1", "critique 2", "revise 2", "generate --n 2", "label-prefs"]

    tok = AutoTokenizer.from_pretrained(resolve_model(None))
    per_row = [len(tok(tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]) for r in rows]
    assert stages["generate"]["prompt_tokens"] == round(sum(per_row) / len(rows) * 1000)  # the sample's mean, for --rows
    assert stages["generate"]["output_tokens"] == 50 * 1000 and stages["generate --n 2"]["output_tokens"] == 2 * 50 * 1000
    assert stages["critique 1"]["prompt_tokens"] > stages["generate"]["prompt_tokens"]  # worked examples and the answer
    assert stages["revise 1"]["prompt_tokens"] > stages["critique 1"]["prompt_tokens"]  # ... and the critique
    assert stages["label-prefs"]["judge_calls"] == 1000 * 1 * 4 * 2  # one pair, four principles, both orders
    assert stages["label-prefs"]["output_tokens"] == 0

    totals = plan["totals"]
    gpu_hours = (totals["output_tokens"] / 100 + totals["prompt_tokens"] / 1000) / 3600
    assert totals["gpu_hours"] == pytest.approx(gpu_hours, rel=1e-3)
    assert totals["hours"] == pytest.approx(gpu_hours / 4, rel=1e-3)
    assert totals["cost"] == pytest.approx(gpu_hours * 2, rel=1e-3)

    fewer = plan_json(str(src), "--sample", "2", "--rows", "1000", "--output-tokens", "50", "--rounds", "1", "--no-rl")
    assert [s["stage"] for s in fewer["stages"]] == ["generate", "critique 1", "revise 1"]


def test_plan_measure_times_each_stage_here(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(3)])
    plan = plan_json(str(src), "--engine", "fake", "--measure", "2", "--max-tokens", "12", "--rows", "300")
    assert plan["measured_rows"] == 2 and plan["output_tokens_source"] == "measured on 2 rows"
    assert 0 < plan["output_tokens_per_text"] <= 12
    assert all(s["seconds"] > 0 for s in plan["stages"])
    assert plan["totals"]["hours"] == pytest.approx(sum(s["seconds"] for s in plan["stages"]) / 3600, rel=1e-2)
    # Measuring runs the stages on the engine; the token counts still come from the model's tokenizer alone.
    counted = {k: plan_json(str(src), "--engine", "fake", "--output-tokens", "5", *extra)["stages"] for k, extra in (("measured", ("--measure", "2")), ("not", ()))}
    keys = ("stage", "generations", "judge_calls", "prompt_tokens", "output_tokens")
    assert [{k: s[k] for k in keys} for s in counted["measured"]] == [{k: s[k] for k in keys} for s in counted["not"]]
    result = invoke("plan", str(src), "--measure", "2", "--throughput", "5")
    assert result.exit_code == 2 and "give one" in result.output
