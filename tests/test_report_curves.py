"""`cai report TRAIN_DIR`: a training folder's curves (loss, reward, KL, learning rate, the judge's rewards per tier)."""

from __future__ import annotations

import json

from cai_cli.report.curves import load_runs, metrics_paths, panels

from conftest import invoke, write_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _grpo_with_judge(folder, steps: int = 30):
    """A metrics.jsonl as `train-policy --reward judge` logs it: the reward climbing, noisy, with two tiers and a constraint."""
    folder.mkdir()
    rows = []
    for s in range(1, steps + 1):
        safety, helpful = -1 + s / steps + (0.3 if s % 2 else -0.3), 0.2 * s / steps
        rows.append({"step": s, "epoch": s / steps, "time": 1.0 + s, "loss": 0.01 * (-1) ** s, "learning_rate": 5e-5 * (1 - s / steps),
                     "kl": 0.001 * s, "reward": safety + 0.5 * helpful, "reward_std": 0.4, "rewards/safety/mean": safety,
                     "rewards/safety/std": 0.5, "rewards/helpfulness/mean": helpful, "rewards/constraint:weapons/mean": 0.0,
                     "judge/questions": 48, "completions/mean_length": 40.0})
    write_jsonl(folder / "metrics.jsonl", rows)
    (folder / "cai-train.json").write_text(json.dumps({"cai_train": 1, "command": "train-policy", "algo": "grpo", "state": "done"}))
    return folder


def test_a_training_folder_gets_its_curves_as_png_html_and_json(tmp_path):
    run = _grpo_with_judge(tmp_path / "rl-cai")
    result = invoke("report", str(run), "-o", str(tmp_path / "curves.png"), "--json-out", str(tmp_path / "curves.json"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    # The table: the reward's first and last quarter, so a rising reward can be read without the figure.
    line = next(x for x in result.output.splitlines() if "│ reward " in x)
    first_q, last_q = (float(v) for v in line.split("│")[-3:-1])
    assert first_q < last_q
    series = json.loads((tmp_path / "curves.json").read_text())
    assert series["kind"] == "cai-training-curves" and series["runs"][0]["command"] == "train-policy"
    assert len(series["runs"][0]["series"]["rewards/safety/mean"]) == 30
    page = tmp_path / "curves.html"
    assert invoke("report", str(run / "metrics.jsonl"), "-o", str(page)).exit_code == 0
    assert "data:image/png;base64," in page.read_text() and "safety" in page.read_text()


def test_panels_follow_what_the_run_logged(tmp_path):
    judge = load_runs(metrics_paths([str(_grpo_with_judge(tmp_path / "rl"))]))
    titles = {t: keys for t, keys in panels(judge)}
    assert titles["Reward"] == ["reward"] and titles["KL to the starting model"] == ["kl"]
    assert sorted(titles["Rewards per tier and constraint (the judge)"]) == ["rewards/constraint:weapons/mean", "rewards/helpfulness/mean", "rewards/safety/mean"]
    sft = tmp_path / "sft"
    sft.mkdir()
    write_jsonl(sft / "metrics.jsonl", [{"step": s, "epoch": s / 4, "loss": 2.0 - s / 10, "learning_rate": 2e-4, "mean_token_accuracy": 0.5} for s in range(1, 5)])
    assert [t for t, _ in panels(load_runs(metrics_paths([str(sft)])))] == ["Loss", "Learning rate", "Accuracy"]
    # A reward model's single reward function repeats `reward`: no per-tier panel for it.
    rm = tmp_path / "grpo-rm"
    rm.mkdir()
    write_jsonl(rm / "metrics.jsonl", [{"step": 1, "epoch": 1, "reward": 0.1, "rewards/rm/mean": 0.1}])
    assert [t for t, _ in panels(load_runs(metrics_paths([str(rm)])))] == ["Reward"]


def test_a_monitored_run_draws_the_training_reward_against_the_monitor(tmp_path):
    """train-policy --monitor logs its checks into metrics.jsonl between trl's lines: report draws them as a panel and
    the table shows the divergence (training reward up, monitor down)."""
    run = _grpo_with_judge(tmp_path / "rl-watched", steps=10)
    checks = [{"step": s, "epoch": s / 10, "monitor/train_reward": 0.5 + 0.02 * s, "monitor/monitor_reward": 0.5 - 0.03 * s,
               "monitor/rank_correlation": 0.1, "monitor/probes": 4, "monitor/diverged": s >= 8} for s in (0, 4, 8)]
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(c) + "\n" for c in checks)
    titles = dict(panels(load_runs(metrics_paths([str(run)]))))
    assert titles["Training reward against the monitor (probe set)"] == ["monitor/train_reward", "monitor/monitor_reward"]
    result = invoke("report", str(run), "-o", str(tmp_path / "watched.png"), "--json-out", str(tmp_path / "watched.json"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "watched.png").read_bytes()[:8] == PNG_MAGIC and "monitor/" in result.output
    series = json.loads((tmp_path / "watched.json").read_text())["runs"][0]["series"]
    assert [v for _, v in series["monitor/monitor_reward"]] == [0.5, 0.38, 0.26]


def test_two_runs_share_the_axes(tmp_path):
    a, b = _grpo_with_judge(tmp_path / "a"), _grpo_with_judge(tmp_path / "b", steps=10)
    result = invoke("report", str(a), str(b), "-o", str(tmp_path / "both.svg"))
    assert result.exit_code == 0, result.output
    assert "<svg" in (tmp_path / "both.svg").read_text()[:400]


def test_bad_training_inputs_are_one_line_errors(tmp_path):
    empty = tmp_path / "started"
    empty.mkdir()
    (empty / "cai-train.json").write_text("{}")
    result = invoke("report", str(empty))
    assert result.exit_code == 2 and "no metrics.jsonl" in result.output
    run = _grpo_with_judge(tmp_path / "rl")
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"id": "a", "meta": {"eval": {}}}])
    result = invoke("report", str(run), str(evals))
    assert result.exit_code == 2 and "not both" in result.output
    (run / "metrics.jsonl").write_text('{"step": 1, "epoch": 1, "loss": 1}\n{"step": 2,\n')
    result = invoke("report", str(run))
    assert result.exit_code == 2 and "metrics.jsonl:2" in result.output
    result = invoke("report", str(_grpo_with_judge(tmp_path / "ok")), "-o", str(tmp_path / "curves.gif"))
    assert result.exit_code == 2 and ".png, .svg, .pdf or .html" in result.output
