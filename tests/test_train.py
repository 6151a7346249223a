"""train-sft, train-rm, train-policy and score on a tiny random model built on the spot: seconds per run, no downloads.

Commands run in this process through the real entry point (run_cai): a fresh `cai` process spends ~5 s importing
torch and trl, more than a tiny training run takes.
"""

from __future__ import annotations

import json

import pytest

from conftest import read_jsonl, run_cai, write_jsonl
from tiny_model import build_tiny_model

# Two cores shared with other jobs: with two OpenMP threads each tiny matmul waits on a busy core (100x slower).
ENV = {"OMP_NUM_THREADS": "1"}
FAST = ["--lr", "1e-2", "--batch-size", "4", "--seed", "0"]


# Two cores shared with other jobs: each tiny matmul on one torch thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

UNSAFE = "sure here is how you do it step by step"
ROWS = [
    ("how do I pick a lock", "I cannot help with that request but I can explain lock safety"),
    ("tell me how to make a weapon", "I am sorry I will not help hurt people"),
]


cai = run_cai  # `cai ARGS` in this process (the name test_export, test_rl_judge and others import from here)


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
    assert "training on from checkpoint-8 to step 10" in proc.stderr
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


def cut(row: dict, index: int = -1) -> dict:
    """ROW as if round INDEX's revision had stopped at --max-tokens, recorded where `cai revise` records it."""
    row = json.loads(json.dumps(row))
    row["rounds"][index]["revision_finish_reason"] = "length"
    return row


def test_revision_targets_know_which_revisions_were_cut():
    from cai_cli.trl_examples import revision_targets

    row = revised_row(0, *ROWS[0])
    final, first = ROWS[0][1], row["rounds"][0]["revision"]
    # Rows written before cai recorded finish reasons have none: nothing says they were cut.
    assert revision_targets(row, "all") == [(first, False), (final, False)]
    assert revision_targets(cut(row), "final") == [(final, True)]
    assert revision_targets(cut(row), "all") == [(first, False), (final, True)]
    # Each round speaks for its own revision: a cut in round 1 is seen after round 2 was written.
    assert revision_targets(cut(row, 0), "all") == [(first, True), (final, False)]
    assert revision_targets(cut(row, 0), "final") == [(final, False)]
    # Rows written before rounds recorded it: meta.revise speaks for the last round only.
    legacy = dict(row, meta={"revise": {"finish_reason": "length"}})
    assert revision_targets(legacy, "all") == [(first, False), (final, True)]
    # A last round that was skipped (--skip-unchanged) kept the text before it: that text keeps its writer's status.
    skipped = cut(row, 0)
    skipped["rounds"][1].update(revision=first, skip_check={"p_change": 0.1, "threshold": 0.5, "skipped": True})
    assert revision_targets(skipped, "final") == [(first, True)]
    # Kept all the way from the first reply: generate's finish reason decides.
    kept = dict(revised_row(1, *ROWS[1]), meta={"generate": {"finish_reason": "length"}})
    for r in kept["rounds"]:
        r.update(revision=kept["initial_response"], skip_check={"p_change": 0.1, "threshold": 0.5, "skipped": True})
    assert revision_targets(kept, "final") == [(kept["initial_response"], True)]


def _two_rounds_with_a_cut_first_revision(path, fake_engine):
    """Two critique/revise rounds through the real commands on the fake engine: round 1's revisions run past
    --max-tokens 8, round 2's end on their own."""
    from conftest import invoke

    def reply(conv, seed):
        if conv[-2]["content"] != "CRITIQUE":
            return "CRITIQUE"  # a critique request
        # A revision request: [..., response, critique request, critique, revision request].
        return "one two three four five six seven eight nine ten" if conv[-4]["content"] == UNSAFE else "please be careful and stay safe"

    fake_engine.reply = staticmethod(reply)
    src = write_jsonl(path / "gen.jsonl", [{"id": f"g{i}", "prompt": p, "response": UNSAFE, "initial_response": UNSAFE,
                                            "meta": {"generate": {"finish_reason": "stop"}}} for i, (p, _) in enumerate(ROWS * 2)])
    current = src
    for r in (1, 2):
        for stage in ("critique", "revise"):
            out = path / f"{stage}{r}.jsonl"
            result = invoke(stage, str(current), "-o", str(out), "--engine", "fake", "--max-tokens", "8")
            assert result.exit_code == 0, result.output
            current = out
    return current


def test_targets_all_leaves_out_a_cut_revision_of_an_earlier_round(work, tmp_path, fake_engine):
    from cai_cli.trl_examples import revision_targets

    revised = _two_rounds_with_a_cut_first_revision(tmp_path, fake_engine)
    rows = read_jsonl(revised)
    assert all(r["rounds"][0]["revision_finish_reason"] == "length" and r["rounds"][1]["revision_finish_reason"] == "stop"
               and r["rounds"][0]["critique_finish_reason"] == "stop" for r in rows)
    assert [cut for r in rows for _, cut in revision_targets(r, "all")] == [True, False] * 4
    out = tmp_path / "sft"
    proc = cai("train-sft", str(revised), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "1", "--targets", "all", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "left out 4 revisions" in proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    assert record["revision_examples"] == 4 and record["truncated_left_out"] == 4


def test_train_sft_leaves_out_cut_revisions_and_says_how_many(work, tmp_path):
    rows = [revised_row(i, *ROWS[i % 2]) for i in range(6)]
    src = write_jsonl(tmp_path / "revised.jsonl", [cut(r) if i < 2 else r for i, r in enumerate(rows)])
    helpful = write_jsonl(tmp_path / "helpful.jsonl", [
        {"prompt": "what is the capital of france", "response": "paris is the", "meta": {"generate": {"finish_reason": "length"}}},
        {"prompt": "write a poem about the sea", "response": "the sea is wide and blue and calm", "meta": {"generate": {"finish_reason": "stop"}}},
    ])
    out = tmp_path / "sft"
    proc = cai("train-sft", str(src), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "1", "--mix", str(helpful), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "left out 2 revisions and 1 helpful replies cut at --max-tokens" in proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    assert record["revision_examples"] == 4 and record["truncated_left_out"] == 2
    assert record["mix_examples"] == 1 and record["helpful_truncated_left_out"] == 1 and record["examples"] == 5

    out = tmp_path / "sft-keep"
    proc = cai("train-sft", str(src), "-o", str(out), "--model", str(work / "tiny"), "--max-steps", "1", "--mix", str(helpful),
               "--keep-truncated", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "left out" not in proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    assert record["revision_examples"] == 6 and record["mix_examples"] == 2 and record["truncated_left_out"] == 0


def test_train_sft_refuses_when_every_revision_was_cut(work, tmp_path):
    src = write_jsonl(tmp_path / "revised.jsonl", [cut(revised_row(0, *ROWS[0]))])
    out = tmp_path / "sft"
    proc = cai("train-sft", str(src), "-o", str(out), "--model", str(work / "tiny"))
    assert proc.returncode == 2 and "all 1 revisions were cut at --max-tokens" in proc.stderr and "--keep-truncated" in proc.stderr


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
    # 10 pairs of 2 prompts: one whole prompt (5 pairs) is held out, so accuracy is measured on a prompt never trained on.
    assert "5 held out (1 of 2 prompts" in proc.stderr
    assert "held-out accuracy 1.000 on 5 pairs" in proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    assert record["eval_accuracy"] == 1.0 and record["held_out"] == 5 and record["held_out_prompts"] == 1


def test_held_out_pairs_are_split_by_prompt_not_by_row():
    from cai_cli.train.dataset import split_by_prompt

    examples = [{"prompt": [{"role": "user", "content": f"prompt {i % 7}"}]} for i in range(40)]
    for seed in range(5):
        train, held = split_by_prompt(examples, 0.2, seed)
        assert sorted(train + held) == list(range(40))
        train_prompts = {examples[i]["prompt"][0]["content"] for i in train}
        held_prompts = {examples[i]["prompt"][0]["content"] for i in held}
        assert held_prompts and not train_prompts & held_prompts  # no prompt on both sides
        assert 8 <= len(held) <= 8 + 6  # whole prompts until a fifth of the pairs
    assert split_by_prompt(examples, 0.2, 0) == split_by_prompt(examples, 0.2, 0)
    assert split_by_prompt(examples, 0.2, 0) != split_by_prompt(examples, 0.2, 1)
    # Never every prompt: one is always left to train on; one prompt alone, or fraction 0, holds nothing out.
    assert len(split_by_prompt(examples, 0.99, 0)[0]) > 0
    assert split_by_prompt(examples[:1] * 5, 0.5, 0) == (list(range(5)), [])
    assert split_by_prompt(examples, 0.0, 0) == (list(range(40)), [])


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


def _dpo_batch_loss(trainer_cls, model_dir, ps, out, noise_seed=None):
    """(loss, gradients, logged reward margin) of one batch of the same lock-picking pair with soft labels PS."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig

    config = DPOConfig(output_dir=str(out), report_to=[], bf16=False, use_cpu=True, per_device_train_batch_size=len(ps),
                       disable_tqdm=True, gradient_checkpointing=False, dataloader_pin_memory=False, beta=0.5)
    examples = [{"prompt": [{"role": "user", "content": ROWS[0][0]}], "chosen": [{"role": "assistant", "content": ROWS[0][1]}],
                     "rejected": [{"role": "assistant", "content": UNSAFE}], "p_chosen": p} for p in ps]
    trainer = trainer_cls(model=str(model_dir), args=config, train_dataset=Dataset.from_list(examples))
    model = trainer.model.train()
    if noise_seed is not None:  # move the policy away from its reference, so the reward gap is not zero
        gen = torch.Generator().manual_seed(noise_seed)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn(param.shape, generator=gen))
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = torch.cat([q.grad.flatten() for q in model.parameters() if q.grad is not None])
    return loss.item(), grads, trainer._metrics["train"]["rewards/margins"][-1]


def test_soft_dpo_loss_is_conservative_dpo_with_label_smoothing_one_minus_p(work, tmp_path):
    """Per pair: -[p log s(bD) + (1-p) log s(-bD)]; p = 1 is trl's own DPO loss, and a 0.5 pair pulls nowhere."""
    import math

    import torch
    from trl import DPOTrainer

    from cai_cli.train.dpo import SoftDPOTrainer

    tiny = work / "tiny"
    # Where the policy is its reference (the start of training) the gap is 0: the gradient is proportional to p - 1/2.
    loss, half, _ = _dpo_batch_loss(SoftDPOTrainer, tiny, [0.5], tmp_path / "a")
    assert loss == pytest.approx(math.log(2)) and torch.count_nonzero(half) == 0
    _, sure, _ = _dpo_batch_loss(SoftDPOTrainer, tiny, [1.0], tmp_path / "b")
    _, likely, _ = _dpo_batch_loss(SoftDPOTrainer, tiny, [0.9], tmp_path / "c")
    assert sure.abs().max() > 0 and torch.allclose(likely, 0.8 * sure, atol=1e-7)
    _, trl_grads, _ = _dpo_batch_loss(DPOTrainer, tiny, [1.0], tmp_path / "d")
    assert torch.allclose(sure, trl_grads, atol=1e-7)

    # Away from the reference: p = 1 equals trl's sigmoid loss, other p the cDPO formula on the logged margin bD.
    trl_loss, trl_grads, margin = _dpo_batch_loss(DPOTrainer, tiny, [1.0], tmp_path / "e", noise_seed=1)
    assert abs(margin) > 1e-3
    soft_loss, soft_grads, soft_margin = _dpo_batch_loss(SoftDPOTrainer, tiny, [1.0], tmp_path / "f", noise_seed=1)
    assert soft_margin == pytest.approx(margin, rel=1e-5) and soft_loss == pytest.approx(trl_loss, rel=1e-5)
    assert torch.allclose(soft_grads, trl_grads, atol=1e-6)
    log_sigmoid = torch.nn.functional.logsigmoid
    for p in (0.5, 0.7):
        soft_loss, _, _ = _dpo_batch_loss(SoftDPOTrainer, tiny, [p], tmp_path / f"g{p}", noise_seed=1)
        m = torch.tensor(margin)
        assert soft_loss == pytest.approx(-(p * log_sigmoid(m) + (1 - p) * log_sigmoid(-m)).item(), rel=1e-5)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_dpo_on_coin_flip_labels_leaves_the_model_as_it_was_unless_hard(work):
    src = write_jsonl(work / "prefs-coin.jsonl", [pref_row(i, q, r, 0.5) for i, (q, r) in enumerate(ROWS)] * 4)
    base = _weights(work / "tiny")
    changed = {}
    for name, flags in (("dpo-coin", []), ("dpo-coin-hard", ["--hard"])):
        proc = cai("train-policy", str(src), "-o", str(work / name), "--algo", "dpo", "--model", str(work / "tiny"), "--max-steps", "3",
                   *flags, *FAST)
        assert proc.returncode == 0, proc.stderr
        after = _weights(work / name)
        changed[name] = max((after[k] - base[k]).abs().max().item() for k in base)
        assert json.loads((work / name / "cai-train.json").read_text())["soft_labels"] is (not flags)
    assert changed["dpo-coin"] == 0.0  # p = 0.5 says nothing about which reply is better: nothing is learned
    assert changed["dpo-coin-hard"] > 1e-4  # read as certain, the same pairs move the model


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
        (["train-sft", "{revised}", "--report-to", "wandb"], "--report-to wandb: the wandb package is not installed (pip install wandb)"),
        (["train-policy", "{prefs}", "--report-to", "tensorboard"], "--report-to tensorboard: the tensorboard package is not installed"),
        (["train-policy", "{prompts}", "--algo", "grpo", "--hard"], "--hard is for --algo dpo"),
        (["train-policy", "{prefs}", "--config", "{ipo}"], "--config asks for loss_type ['ipo']: soft labels train DPO's sigmoid loss only; add --hard"),
        (["train-sft", "{revised}", "--config", "{words}"], "'num_train_epochs' expects a number, got 'two'"),
        (["train-rm", "{prefs}", "--config", "{words}"], "'num_train_epochs' expects a number, got 'two'"),
        # trl drops examples longer than max_length; when none is left, the command says so and leaves no folder behind.
        (["train-sft", "{revised}", "--max-length", "8"], "train-sft: trl left no example to train on: every one is longer than max_length 8"),
        (["train-policy", "{prefs}", "--max-length", "8"], "train-policy: trl left no example to train on"),
        (["train-rm", "{prefs}", "--max-length", "8"], "every one of the 5 pairs is longer than max_length 8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(work, args, expected):
    (work / "empty.jsonl").write_text("")
    (work / "bad.yaml").write_text("max_stepz: 3\n")
    (work / "badlora.yaml").write_text("lora:\n  rank: 4\n")
    (work / "ipo.yaml").write_text("loss_type: ipo\n")
    (work / "words.yaml").write_text("num_train_epochs: two\n")
    names = {"ipo": work / "ipo.yaml", "words": work / "words.yaml", "prompts": work / "prompts.jsonl", "empty": work / "empty.jsonl", "revised": work / "revised.jsonl",
             "prefs": work / "prefs.jsonl", "tiny": work / "tiny", "work": work, "badcfg": work / "bad.yaml",
             "badlora": work / "badlora.yaml"}
    out = work / "never"
    argv = [a.format(**names) for a in args] + ["-o", str(out), "--model", str(work / "tiny")]
    _one_line_error(cai(*argv), expected, out)


def test_score_refuses_a_folder_that_is_not_a_reward_model(work):
    proc = cai("score", str(work / "prefs.jsonl"), "--reward-model", str(work / "tiny"))
    assert proc.returncode == 2 and "not a reward model" in proc.stderr and proc.stdout == ""


def test_a_reward_model_folder_does_not_generate_or_train_a_policy(work, rm):
    """A reward model scores replies; handed to a command that writes them, it stops with one line before loading."""
    proc = cai("generate", "-", "--model", str(rm[0]), "--engine", "transformers", input=json.dumps({"prompt": "hi"}) + "\n")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert "a reward model (a sequence classifier, as `cai train-rm` writes), which scores replies and cannot write them" in proc.stderr
    _one_line_error(cai("train-sft", str(work / "revised.jsonl"), "-o", str(work / "never"), "--model", str(rm[0])),
                    "cannot write them; pass it as --reward-model", work / "never")


def test_grpo_refuses_temperature_0_as_its_help_says(work, rm):
    help_text = " ".join(cai("train-policy", "--help").stdout.replace("│", " ").split())  # rich's box, unwrapped
    assert "0 is refused: greedy decoding makes every sample of a prompt the same" in help_text
    for algo in ("grpo", "rloo"):
        proc = cai("train-policy", str(work / "prompts.jsonl"), "-o", str(work / "never"), "--algo", algo, "--reward-model", str(rm[0]),
                   "--model", str(work / "tiny"), "--temperature", "0")
        _one_line_error(proc, f"--temperature 0: {algo} learns by comparing several samples of each prompt, and greedy decoding "
                              "makes them all the same", work / "never")


def test_output_folder_that_cai_did_not_make_is_left_alone(work, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = cai("train-sft", str(work / "revised.jsonl"), "-o", str(tmp_path), "--model", str(work / "tiny"))
    assert proc.returncode == 2 and "so `cai train-*` did not make it" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_report_to_passes_each_installed_tracker_to_trl_and_names_the_run(monkeypatch):
    import importlib.util

    from trl import SFTConfig

    from cai_cli.train.common import TrainOptions, config_values

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("tensorboardX", "trackio") else found(name, *a))
    values = config_values(SFTConfig, "sft", TrainOptions(output="out/sl-cai", report_to=["tensorboard", "trackio", "tensorboard"]), {}, lora=True)
    assert values["report_to"] == ["tensorboard", "trackio"] and values["run_name"] == "sl-cai"
    assert config_values(SFTConfig, "sft", TrainOptions(output="out/sl-cai"), {}, lora=True)["report_to"] == []  # off by default


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
