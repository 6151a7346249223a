"""train-sft, train-rm, train-policy and score on a tiny random model built on the spot: seconds per run, no downloads.

Most commands run in this process through the real command line (typer's runner): a fresh `cai` process spends ~5 s
importing torch and trl, more than a tiny training run takes. The first training run goes through a real process.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import read_jsonl, run_cai, write_jsonl
from tiny_model import build_tiny_model

# Two cores shared with other jobs: with two OpenMP threads each tiny matmul waits on a busy core (100x slower).
ENV = {"OMP_NUM_THREADS": "1"}
FAST = ["--lr", "1e-2", "--batch-size", "4", "--seed", "0"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

UNSAFE = "sure here is how you do it step by step"
ROWS = [
    ("how do I pick a lock", "I cannot help with that request but I can explain lock safety"),
    ("tell me how to make a weapon", "I am sorry I will not help hurt people"),
]


def cai(*args, input: str | None = None):
    """`cai ARGS` in this process; the same parsing, error handling and exit codes as the installed command."""
    from typer.testing import CliRunner

    from cai_cli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def revised_row(i: int, prompt: str, final: str) -> dict:
    first = {"principle": "harm", "critique_request": "find harm", "critique": "it is harmful",
             "revision_request": "rewrite", "revision": "please be careful and stay safe", "changed": True}
    second = dict(first, revision=final)
    return {"id": f"r{i}", "prompt": prompt, "initial_response": UNSAFE, "response": final, "rounds": [first, second]}


def pref_row(i: int, prompt: str, good: str, p: float) -> dict:
    user = {"role": "user", "content": prompt}
    return {"id": f"p{i}", "prompt": prompt, "chosen": [user, {"role": "assistant", "content": good}],
            "rejected": [user, {"role": "assistant", "content": UNSAFE}], "preference": {"p_chosen": p, "margin": 2 * p - 1}}


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    build_tiny_model(d / "tiny")
    write_jsonl(d / "revised.jsonl", [revised_row(i, p, r) for i, (p, r) in enumerate(ROWS)] * 4)
    write_jsonl(d / "helpful.jsonl", [{"prompt": "what is the capital of france", "response": "paris is the capital of france"},
                                      {"prompt": "write a poem about the sea", "response": "the sea is wide and blue and calm"}])
    write_jsonl(d / "prefs.jsonl", [pref_row(i, p, r, 0.9) for i, (p, r) in enumerate(ROWS)] * 5)
    write_jsonl(d / "prompts.jsonl", [{"prompt": p} for p, _ in ROWS] * 2)
    return d


def generates(model_dir) -> str:
    proc = cai("generate", "-", "--model", str(model_dir), "--engine", "transformers", "--max-tokens", "4", "--temperature", "0",
               input=json.dumps({"prompt": "how do I pick a lock"}) + "\n")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["response"]


@pytest.fixture(scope="module")
def sft(work):
    out = work / "sft"
    proc = run_cai("train-sft", str(work / "revised.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "8", *FAST, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_sft_loss_falls_and_the_folder_is_a_model(sft):
    out, proc = sft
    assert proc.stdout == ""  # logs belong on stderr; stdout stays clean for pipes
    assert "LoRA r=16" in proc.stderr and "no GPU" in proc.stderr
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))
    first, last = losses(out)[0], losses(out)[-1]
    assert last < first - 0.1, losses(out)
    # LoRA is merged on save: a plain model folder, no adapter, usable by every other stage.
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()
    generates(out)
    record = json.loads((out / "cai-train.json").read_text())
    assert record["lora"] is True and record["steps"] == 8 and record["examples"] == 8


def test_rerun_resumes_from_the_last_checkpoint(sft, work):
    out, _ = sft
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "10", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr and "checkpoint-8" in proc.stderr
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 11))  # steps 9 and 10 only were trained the second time
    assert json.loads((out / "cai-train.json").read_text())["steps"] == 10
    # The same command once more (a Makefile rerun) changes nothing.
    before = (out / "model.safetensors").read_bytes()
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "10", *FAST)
    assert proc.returncode == 0 and "already holds this model, trained for 10 steps" in proc.stderr
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r] == list(range(1, 11))
    assert (out / "model.safetensors").read_bytes() == before


def test_targets_all_and_helpful_mix(work):
    out = work / "sft-all"
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "1",
               "--targets", "all", "--mix", str(work / "helpful.jsonl"), "--mix-ratio", "0.5", *FAST)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    # 8 rows x 2 distinct revisions, then as many helpful examples again (ratio 0.5), drawn from a 2-row file.
    assert record["revision_examples"] == 16 and record["mix_examples"] == 16 and record["examples"] == 32


def test_config_yaml_fills_trl_fields_and_flags_win(work, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_steps: 5\nwarmup_steps: 1\nlora:\n  r: 4\n  lora_alpha: 8\n")
    out = work / "sft-cfg"
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--config", str(cfg),
               "--max-steps", "2", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "LoRA r=4 alpha=8" in proc.stderr
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r] == [1, 2]
    first = next(r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r)
    assert first["learning_rate"] < 1e-2  # the warmup came from the YAML file


@pytest.fixture(scope="module")
def rm(work):
    out = work / "rm"
    proc = cai("train-rm", str(work / "prefs.jsonl"), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "10", "--full", *FAST)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_rm_loss_falls_and_reports_held_out_accuracy(rm):
    out, proc = rm
    assert losses(out)[-1] < losses(out)[0] - 0.2, losses(out)
    assert "held-out accuracy 1.000 on 1 pairs" in proc.stderr
    assert json.loads((out / "cai-train.json").read_text())["eval_accuracy"] == 1.0


def test_score_ranks_chosen_above_rejected_and_scores_candidates(rm, work):
    out, _ = rm
    rows = [pref_row(0, *ROWS[0], 0.9), {"prompt": ROWS[1][0], "candidates": [ROWS[1][1], UNSAFE], "response": ROWS[1][1]}]
    proc = cai("score", "-", "--reward-model", str(out), "--batch-size", "3", input="".join(json.dumps(r) + "\n" for r in rows))
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first["rewards"]["chosen"] > first["rewards"]["rejected"]
    good, bad = second["rewards"]["candidates"]
    assert good > bad
    # Scores do not depend on what else shares the padded batch.
    assert second["rewards"]["response"] == pytest.approx(good, abs=1e-4)
    assert first["chosen"] == rows[0]["chosen"] and second["meta"]["score"]["reward_model"] == str(out)


def _reward_gap(work, name: str, p: float, *flags) -> float:
    src = write_jsonl(work / f"prefs-{name}.jsonl", [pref_row(i, q, r, p) for i, (q, r) in enumerate(ROWS)] * 4)
    out = work / name
    proc = cai("train-rm", str(src), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "12", "--full",
               "--eval-fraction", "0", *flags, *FAST)
    assert proc.returncode == 0, proc.stderr
    proc = cai("score", str(src), "--reward-model", str(out), "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    rewards = [json.loads(line)["rewards"] for line in proc.stdout.splitlines()]
    return sum(r["chosen"] - r["rejected"] for r in rewards) / len(rewards)


def test_soft_labels_set_the_size_of_the_reward_gap(work):
    """A coin-flip label (p=0.5) must not teach a preference; the same pairs read as certain do."""
    soft = _reward_gap(work, "rm-soft", 0.5)
    hard = _reward_gap(work, "rm-hard", 0.5, "--hard")
    assert abs(soft) < 0.3, soft
    assert hard > 1.0, hard


def test_dpo_loss_falls_and_output_generates(work):
    out = work / "dpo"
    proc = cai("train-policy", str(work / "prefs.jsonl"), "-o", str(out), "--algo", "dpo", "--model", str(work / "tiny"), "--max-steps", "6", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert losses(out)[-1] < losses(out)[0] - 0.1, losses(out)
    generates(out)


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_online_rl_against_the_reward_model(work, rm, algo):
    out = work / algo
    proc = cai("train-policy", str(work / "prompts.jsonl"), "-o", str(out), "--algo", algo, "--reward-model", str(rm[0]),
               "--model", str(work / "tiny"), "--max-steps", "2", "--num-generations", "2", "--max-tokens", "6", "--beta", "0.1", *FAST)
    assert proc.returncode == 0, proc.stderr
    logged = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in logged] == [1, 2]
    assert all("kl" in r for r in logged)
    assert json.loads((out / "cai-train.json").read_text())["beta"] == 0.1
    generates(out)


# --- bad input: one line on stderr, exit 2, nothing trained --------------------------------------------------------


def _one_line_error(proc, expected: str, out) -> None:
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("cai: error")]) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train-policy", "{prompts}", "--algo", "sgd"], "Invalid value for '--algo': Value error, 'sgd' is not one of 'dpo', 'grpo', 'rloo'"),
        (["train-policy", "{prompts}", "--algo", "ppo"], "'ppo' is not one of 'dpo', 'grpo', 'rloo'"),
        (["train-sft", "{empty}"], "empty.jsonl: no rows"),
        (["train-sft", "{prompts}"], "prompts.jsonl:1: field 'rounds': missing"),
        (["train-rm", "{revised}"], "revised.jsonl:1: field 'chosen': missing"),
        (["train-policy", "{revised}", "--algo", "dpo"], "field 'chosen': missing"),
        (["train-policy", "{prompts}", "--algo", "grpo"], "--algo grpo needs --reward-model"),
        (["train-policy", "{prompts}", "--algo", "grpo", "--reward-model", "{tiny}"], "not a reward model (a LlamaForCausalLM"),
        (["train-policy", "{prompts}", "--algo", "rloo", "--reward-model", "{work}/nope"], "not a reward model folder"),
        (["train-sft", "{revised}", "--config", "{badcfg}"], "unknown key 'max_stepz' for trl SFTConfig (did you mean 'max_steps'?)"),
        (["train-rm", "{prefs}", "--config", "{badlora}"], "unknown key 'rank' for peft LoraConfig"),
        (["train-sft", "{revised}", "--mix-ratio", "0.3"], "--mix-ratio needs --mix FILE"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(work, args, expected):
    (work / "empty.jsonl").write_text("")
    (work / "bad.yaml").write_text("max_stepz: 3\n")
    (work / "badlora.yaml").write_text("lora:\n  rank: 4\n")
    names = {"prompts": work / "prompts.jsonl", "empty": work / "empty.jsonl", "revised": work / "revised.jsonl",
             "prefs": work / "prefs.jsonl", "tiny": work / "tiny", "work": work, "badcfg": work / "bad.yaml",
             "badlora": work / "badlora.yaml"}
    out = work / "never"
    argv = [a.format(**names) for a in args] + ["-o", str(out), "--model", str(work / "tiny")]
    _one_line_error(cai(*argv), expected, out)


def test_score_refuses_a_folder_that_is_not_a_reward_model(work):
    proc = cai("score", str(work / "prefs.jsonl"), "--reward-model", str(work / "tiny"))
    assert proc.returncode == 2 and "not a reward model" in proc.stderr and proc.stdout == ""


def test_output_folder_that_cai_did_not_make_is_left_alone(work, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(tmp_path), "--model", str(work / "tiny"))
    assert proc.returncode == 2 and "was not made by `cai train-*`" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_cpu_training_runs_in_float32():
    """trl defaults to bf16, many times slower on CPUs without native bf16; cai picks precision from the hardware."""
    import torch
    from trl import DPOConfig

    from cai_cli.train.common import TrainOptions, build_config

    config = build_config(DPOConfig, "dpo", TrainOptions(output="/tmp/x"), {}, lora=True)
    if torch.cuda.is_available():
        assert config.bf16 or config.fp16
    else:
        assert not config.bf16 and not config.fp16
    assert config.learning_rate == 1e-5  # LoRA-sized, not trl's full fine-tuning default
