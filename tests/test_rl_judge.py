"""The judge in the RL loop (`train-policy --reward judge`) and offline (`cai score --reward judge`): what each mode asks and
costs, the hard-constraint penalty, the rewards trl received equal to `cai score --reward judge`'s, a judge server that
dies mid-step, and (slow) GRPO on the embedded model with the embedded judge.

The policy is the tiny random model of tests/tiny_model.py; the judge is the fake engine, scripted below: between
two answers it prefers the longer, and it says an answer crosses a hard constraint when the answer mentions a weapon.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FAKE_ENV, ROOT, read_jsonl, write_jsonl
from fakes.rl_judge import judge_scorer
from test_train import ENV, FAST, cai
from tiny_model import CHAT_TEMPLATE, build_tiny_model

CONSTITUTION = """\
name: rl-test
priorities: [safe, helpful]
hard_constraints:
  - {id: no-weapons, text: Never explain how to build a weapon.}
critiques:
  - {id: harm, critique: Name the harm., revision: Remove the harm.}
comparisons:
  - {id: less-harmful, tier: safe, question: "Which of these assistant responses is less harmful?"}
  - {id: more-helpful, tier: helpful, question: "Which of these assistant responses is more helpful?"}
  - {id: more-honest, tier: helpful, question: "Which of these assistant responses is more honest?"}
"""
NAMES = ["tier:safe", "tier:helpful", "constraint:no-weapons"]
WEIGHTS = [1.0, 1 / 3, 2.0]
# Two cores shared with other jobs: each tiny matmul on one torch thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("rl")
    build_tiny_model(d / "tiny")
    (d / "rules.yaml").write_text(CONSTITUTION)
    write_jsonl(d / "prompts.jsonl", [{"prompt": p} for p in ("how do I pick a lock", "tell me how to make a weapon")] * 2)
    return d


@pytest.fixture
def judge(fake_engine):
    fake_engine.scorer = staticmethod(judge_scorer)
    return fake_engine


def score(d, rows, *flags):
    proc = cai("score", "-", "--reward", "judge", "-c", d / "rules.yaml", "--judge-engine", "fake", *flags,
               input="".join(json.dumps(r) + "\n" for r in rows))
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


# ---- the judge's rewards -------------------------------------------------------------------------------------------


def test_the_penalty_lowers_the_reward_of_a_completion_the_judge_marks_as_a_violation(d, judge):
    safe, unsafe = "I will not help you there", "here is how: build weapon"
    assert len(safe) == len(unsafe)  # the judge prefers the longer answer: these tie on every comparison
    (scored,), _ = score(d, [{"id": "r", "prompt": "tell me how to make a weapon", "candidates": [safe, unsafe]}])
    parts = scored["reward_parts"]["candidates"]
    assert list(parts[0]) == NAMES
    assert parts[0]["tier:safe"] == pytest.approx(0.5) and parts[1]["tier:safe"] == pytest.approx(0.5)
    assert parts[0]["constraint:no-weapons"] == pytest.approx(-0.1)
    assert parts[1]["constraint:no-weapons"] == pytest.approx(-0.9)
    totals = scored["rewards"]["candidates"]
    assert totals[1] < totals[0]
    assert totals[0] - totals[1] == pytest.approx(2.0 * 0.8)  # the constraint's weight times the gap in P(violation)
    assert scored["meta"]["score"]["reward_weights"] == pytest.approx(WEIGHTS)

    # A weapon-free answer that loses every comparison still beats one that surely crosses the line.
    (scored,), _ = score(d, [{"id": "r", "prompt": "hi", "candidates": ["no", "here is how to make a weapon, step by step, in detail"]}])
    parts, totals = scored["reward_parts"]["candidates"], scored["rewards"]["candidates"]
    assert parts[0]["tier:safe"] < 0.5 < parts[1]["tier:safe"]
    assert totals[0] > totals[1]


def test_each_mode_asks_what_its_cost_says_and_asks_nothing_twice(d, judge):
    """Per group of G completions with K questions (here 3: one safe, two helpful) and C = 1 constraint: group asks
    G(G-1)K scored prompts, reference and pointwise 2GK, and the gate 2GC; answers are cached."""
    from cai_cli.constitution import load_constitution
    from cai_cli.engines import EngineOptions, load_engine
    from cai_cli.judge.reward import Group, JudgeReward
    from cai_cli.judge.reward_config import JudgeRewardConfig

    charter = load_constitution(str(d / "rules.yaml"))
    engine = load_engine(EngineOptions(engine="fake"))
    texts = ["a", "bb", "ccc", "dddd"]
    g, k, c = len(texts), 3, 1
    for mode, prompts in (("group", g * (g - 1) * k), ("reference", 2 * g * k), ("pointwise", 2 * g * k)):
        reward = JudgeReward(engine, charter, JudgeRewardConfig(mode=mode))
        before = judge.calls["score"]
        first = reward.score([Group([{"role": "user", "content": "q"}], texts, reference="ref")])
        assert judge.calls["score"] - before == prompts + 2 * g * c, mode
        assert reward.calls.prompts == prompts + 2 * g * c
        again = reward.score([Group([{"role": "user", "content": "q"}], texts, reference="ref")])
        assert judge.calls["score"] - before == prompts + 2 * g * c, f"{mode}: a repeated group is answered from the cache"
        assert again == first and reward.calls.cached == reward.calls.questions // 2
    # In a group, each tier's rewards are win rates: the longest answer wins every comparison, and they sum to G/2.
    reward = JudgeReward(engine, charter, JudgeRewardConfig(mode="group"))
    (parts,) = reward.score([Group([{"role": "user", "content": "q"}], texts)])
    safe = [p["tier:safe"] for p in parts]
    assert safe == sorted(safe) and sum(safe) == pytest.approx(g / 2)
    # An identical completion ties with its twin without being asked.
    before = judge.calls["score"]
    (parts,) = JudgeReward(engine, charter, JudgeRewardConfig(mode="group", principles=1)).score([Group([{"role": "user", "content": "q"}], ["x", "x"])])
    assert [p["tier:safe"] for p in parts] == [0.5, 0.5]
    assert judge.calls["score"] - before == 2  # the gate's pair only: one distinct text, one constraint


def test_score_judge_fields_modes_and_bad_rows(d, judge):
    row = {"id": "r", "prompt": "hi", "response": "a reply", "reference": "the reference reply",
           "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a longer chosen reply"}],
           "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "short"}]}
    (scored,), stderr = score(d, [row], "--reward-mode", "reference", "--reference-field", "reference")
    assert set(scored["rewards"]) == {"response", "chosen", "rejected"}
    assert scored["reward_parts"]["response"]["tier:safe"] < 0.5  # shorter than the reference
    assert "scored 3 completions" in stderr
    (scored,), _ = score(d, [row], "--reward-mode", "pointwise")
    assert scored["reward_parts"]["response"]["tier:helpful"] == pytest.approx(0.5)

    proc = cai("score", "-", "--reward", "judge", "-c", d / "rules.yaml", "--judge-engine", "fake", input=json.dumps({"id": "r", "prompt": "hi", "response": "x"}) + "\n")
    assert proc.returncode == 2 and "--reward-mode group compares each completion with the others of its group" in proc.stderr
    proc = cai("score", "-", "--reward", "judge", "-c", d / "rules.yaml", "--judge-engine", "fake", "--reward-weights", "1,2",
               input=json.dumps({"id": "r", "prompt": "hi", "candidates": ["x", "y"]}) + "\n")
    assert proc.returncode == 2 and "expected 3 numbers, one per reward in this order: tier:safe, tier:helpful, constraint:no-weapons" in proc.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--reward", "judge", "--reward-model", "{tiny}"], "--reward judge scores with the constitutional judge; --reward-model is for --reward model"),
        (["--judge-model", "x"], "--constitution, --judge-model: are for the judge's rewards; add --reward judge"),
        (["--reward", "judge", "--reward-weights", "1"], "--reward-weights: expected 3 numbers, one per reward in this order: tier:safe, tier:helpful, constraint:no-weapons"),
        (["--reward", "judge", "--reward-mode", "reference"], "prompts.jsonl:1: field 'response': missing: --reward-mode reference compares"),
        (["--reward", "judge", "--judge-engine", "openai"], "--judge-engine openai needs --judge-base-url"),
    ],
)
def test_bad_judge_options_are_one_line_before_any_model_loads(d, args, expected):
    out = d / "never"
    argv = ["train-policy", d / "prompts.jsonl", "-o", out, "--algo", "grpo", "--model", d / "tiny", "-c", d / "rules.yaml",
            *[a.format(tiny=d / "tiny") for a in args]]
    proc = cai(*argv)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("cai: error")]) == 1
    assert not out.exists()


# ---- in the loop ---------------------------------------------------------------------------------------------------

GRPO = ["--algo", "grpo", "--reward", "judge", "--num-generations", "2", "--max-tokens", "6", "--beta", "0.1", *FAST]


def test_grpo_with_the_judge_and_score_gives_the_rewards_the_trainer_received(d, judge):
    out = d / "grpo"
    proc = cai("train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-engine", "fake",
               "--max-steps", "2", *GRPO)
    assert proc.returncode == 0, proc.stderr
    assert "the judge (the embedded model on fake, in this process) scores every completion by rl-test: tier:safe x1, tier:helpful x0.333333, constraint:no-weapons x2" in proc.stderr
    record = json.loads((out / "cai-train.json").read_text())
    assert record["fingerprint"]["settings"]["reward"]["judge"]["rewards"] == NAMES
    assert record["fingerprint"]["trl"]["reward_weights"] == pytest.approx(WEIGHTS)
    logged = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in logged] == [1, 2]
    for r in logged:
        assert all(f"rewards/{name}/mean" in r for name in NAMES)
        assert r["judge/questions"] > 0 and r["judge/prompts"] > 0 and r["judge/seconds"] >= 0

    # Every group the trainer judged is a row of samples.jsonl, and `cai score --reward judge` gives every completion there the
    # reward the trainer received: the same parts, the same total, and per step the means trl logged.
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 1, 2, 2] and all(len(s["candidates"]) == 2 for s in samples)
    rescored, _ = score(d, samples)
    for seen, again in zip(samples, rescored, strict=True):
        assert again["reward_parts"]["candidates"] == seen["reward_parts"]["candidates"]  # the same questions, the same answers
        assert again["rewards"]["candidates"] == seen["rewards"]["candidates"]
    for r in logged:
        rows = [s for s in rescored if s["step"] == r["step"]]
        totals = [t for s in rows for t in s["rewards"]["candidates"]]
        assert r["reward"] == pytest.approx(sum(totals) / len(totals), abs=1e-5)
        for name in NAMES:
            values = [p[name] for s in rows for p in s["reward_parts"]["candidates"]]
            assert r[f"rewards/{name}/mean"] == pytest.approx(sum(values) / len(values), abs=1e-5)
    assert any(p["tier:safe"] != 0.5 for s in samples for p in s["reward_parts"]["candidates"])  # the judge told them apart

    # Another mode is another reward: the folder refuses it, naming the change.
    proc = cai("train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-engine", "fake",
               "--max-steps", "2", *GRPO, "--reward-mode", "pointwise")
    assert proc.returncode == 2 and "settings.reward.judge.mode: group -> pointwise" in proc.stderr, proc.stderr


CHARTER = """\
# The helper's charter

## Our aims, in order

When these aims pull apart, they rank in this order of priority:

1. **Careful**: never putting anyone in danger.
2. **Truthful**: saying only what is so.
3. **Useful**: answering what was asked, fully.

## Being careful

The helper does not explain how to build a weapon or how to hurt anyone, and it takes a person in danger seriously.

### Lines it never crosses

- never explain how to build a weapon;
- never help anyone stalk a person.

## Being truthful

The helper says only what it believes, marks what it is unsure of and never invents a source.

## Being useful

The helper answers the question that was asked, completely, with working steps where they help.

## Acknowledgements

Thanks to everyone who read the drafts.
"""


def test_an_imported_document_states_its_order_and_the_judges_rewards_work_on_it(d, judge, tmp_path):
    doc = tmp_path / "charter.md"
    doc.write_text(CHARTER)
    proc = cai("constitution", "import", doc, "--sidecar")
    assert proc.returncode == 0, proc.stderr
    assert ("priorities: [careful, truthful, useful]   # highest first; read from 'Our aims, in order' (line 3): "
            "1. Careful, 2. Truthful, 3. Useful") in proc.stdout
    assert "acknowledgements: {route: false}" in proc.stdout and "hard_constraints: being-careful/lines-it-never-crosses" in proc.stdout
    assert 'question: "Which of these assistant responses better meets this aim of the constitution: careful (never putting anyone in danger)?"' in proc.stdout
    from cai_cli.constitution import load_constitution

    charter = load_constitution(str(doc))
    assert charter.priorities == ("careful", "truthful", "useful") and [q.tier for q in charter.comparisons] == list(charter.priorities)
    assert charter.tier_of("being-truthful").name == "truthful" and not charter.section_by_id("acknowledgements").routed

    names = ["tier:careful", "tier:truthful", "tier:useful", "constraint:never-explain-how-to-build-a", "constraint:never-help-anyone-stalk-a-person"]
    rows = [{"id": "r", "prompt": "how do I build a weapon", "candidates": ["I won't explain that.", "Here is how to build a weapon at home."]}]
    proc = cai("score", "-", "--reward", "judge", "-c", doc, "--judge-engine", "fake", input="".join(json.dumps(r) + "\n" for r in rows))
    assert proc.returncode == 0, proc.stderr
    (scored,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert list(scored["reward_parts"]["candidates"][0]) == names
    assert scored["reward_passages"]["tier:careful"] == "being-careful" and scored["reward_passages"][names[3]] == "being-careful/lines-it-never-crosses"
    assert scored["reward_parts"]["candidates"][1][names[3]] == pytest.approx(-0.9)  # the weapon answer crosses the line

    out = tmp_path / "grpo"
    proc = cai("train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", doc, "--judge-engine", "fake", "--max-steps", "1", *GRPO)
    assert proc.returncode == 0, proc.stderr
    samples = read_jsonl(out / "samples.jsonl")
    assert samples and all(list(s["reward_parts"]["candidates"][0]) == names and "tier:careful" in s["reward_passages"] for s in samples)


def test_rloo_with_the_judge_in_reference_mode(d, judge, tmp_path):
    """RLOO takes the same reward functions; reference mode compares each sample with its prompt row's reference."""
    src = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "how do I pick a lock", "response": "I cannot help with that request"},
                                                   {"prompt": "write a poem about the sea", "response": "the sea is wide"}] * 2)
    out = tmp_path / "rloo"
    proc = cai("train-policy", src, "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-engine", "fake", "--max-steps", "1",
               "--algo", "rloo", "--reward", "judge", "--reward-mode", "reference", "--num-generations", "2", "--max-tokens", "6", *FAST)
    assert proc.returncode == 0, proc.stderr
    (logged,) = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert all(f"rewards/{name}/mean" in logged for name in NAMES)
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["response"] for s in samples] == ["I cannot help with that request", "the sea is wide"]  # each group's reference
    rescored, _ = score(d, samples, "--reward-mode", "reference")
    assert [r["rewards"] for r in rescored] == [s["rewards"] for s in samples]


# ---- a judge server that dies mid-step -----------------------------------------------------------------------------


def build_judge_tokenizer(path: Path) -> Path:
    """A word-level tokenizer that splits punctuation, so "(A" is "(" then "A": the openai engine reads the options
    with it here, while the server scores."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(["A B Yes No ( ) : answer is The"], trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return path


class JudgeServer:
    """An OpenAI-compatible server that scores options as vLLM's does (logprob_token_ids), until DIES_WHEN exists:
    from then on it closes its port and drops every connection, as a server that went down."""

    def __init__(self, model: str, dies_when: Path | None = None, port: int = 0):
        self.model, self.dies_when, self.requests = model, dies_when, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, body: dict):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": server.model, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if server.dies_when is not None and server.dies_when.exists():
                    threading.Thread(target=server.stop, daemon=True).start()
                    self.close_connection = True
                    return
                server.requests += 1
                ids, labels = body["prompt"], body["logprob_token_ids"]
                top = {f"token_id:{t}": -1.0 - ((sum(ids) * 7 + t) % 5) / 4 for t in labels}
                self._send({"id": "c", "object": "text_completion", "created": 0, "model": server.model,
                            "choices": [{"index": 0, "text": "x", "finish_reason": "length", "logprobs": {"top_logprobs": [top], "tokens": ["x"], "token_logprobs": [-1.0], "text_offset": [0]}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.dead = False
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        if not self.dead:
            self.dead = True
            self.httpd.shutdown()
            self.httpd.server_close()


def test_a_judge_server_that_fails_mid_step_is_one_line_and_the_run_resumes_from_its_checkpoint(d, tmp_path):
    tokenizer = build_judge_tokenizer(tmp_path / "judge")
    out = tmp_path / "grpo"
    (tmp_path / "save1.yaml").write_text("save_steps: 1\n")
    args = ["train-policy", d / "prompts.jsonl", "-o", out, "--model", d / "tiny", "-c", d / "rules.yaml", "--judge-model", tokenizer,
            "--max-steps", "3", "--config", tmp_path / "save1.yaml", *GRPO]
    first = JudgeServer(str(tokenizer), dies_when=out / "checkpoints" / "checkpoint-1" / "trainer_state.json")
    try:
        proc = cai(*args, "--judge-base-url", first.url)
    finally:
        first.stop()
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cai: error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert f"the judge (--judge-base-url {first.url}) failed at step 2: option scoring failed" in errors[0]
    assert "rerun the same command to resume" in errors[0]
    assert json.loads((out / "cai-train.json").read_text())["state"] == "training"
    assert first.requests > 0

    second = JudgeServer(str(tokenizer), port=first.port)  # the server is back
    try:
        proc = cai(*args, "--judge-base-url", second.url)
    finally:
        second.stop()
    assert proc.returncode == 0, proc.stderr
    assert "resuming from checkpoint-1 (step 1 of 3)" in proc.stderr
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "reward" in r] == [1, 2, 3]
    assert [s["step"] for s in read_jsonl(out / "samples.jsonl")] == [1, 1, 2, 2, 3, 3]
    assert json.loads((out / "cai-train.json").read_text())["state"] == "done"


# ---- for real ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_grpo_steps_of_the_embedded_model_with_the_embedded_judge(tmp_path):
    """A GRPO step of the embedded model, judged in this process by the embedded model under the assistant
    constitution (four tiers, five hard constraints): the rewards and the judge's cost reach metrics.jsonl, and
    `cai score --reward judge` gives the completions the rewards the trainer received. One step: steps after the
    first (and a run going on from a checkpoint) are checked on the tiny model above; this checks the real model and
    the shipped constitution's judge prompts."""
    src = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "How do I pick a lock?"}, {"prompt": "Write a haiku about rain."}])
    out = tmp_path / "rl"
    proc = cai("train-policy", src, "-o", out, "--algo", "grpo", "--reward", "judge", "-c", "assistant", "--principles", "1",
               "--num-generations", "2", "--max-tokens", "8", "--max-steps", "1", "--batch-size", "2", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    logged = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in logged] == [1]
    for r in logged:
        assert "rewards/tier:safe/mean" in r and "rewards/constraint:creates-sexual-content-involving-minors/mean" in r
        assert r["judge/prompt_tokens"] > 0 and r["judge/seconds"] > 0
    samples = read_jsonl(out / "samples.jsonl")
    assert len(samples) == 1 and len(samples[0]["candidates"]) == 2
    proc = cai("score", out / "samples.jsonl", "--reward", "judge", "-c", "assistant", "--principles", "1")
    assert proc.returncode == 0, proc.stderr
    rescored = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rescored) == len(samples)
    for seen, again in zip(samples, rescored):
        # The judge's forward passes batch the prompts differently in training and here: equal to float32 noise.
        assert again["rewards"]["candidates"] == pytest.approx(seen["rewards"]["candidates"], abs=1e-3)


@pytest.mark.slow
def test_two_processes_judge_a_group_split_between_them(d, judge, tmp_path):
    """Under torchrun, one batch of one prompt per process and two completions per prompt puts each group's
    completions on two processes: each completion is still judged against the other, every question once."""
    import os
    import shutil
    import subprocess
    import sys

    env = {**os.environ, **ENV, **FAKE_ENV, "CAI_ENGINE_PLUGINS": "fakes.engine,fakes.rl_judge", "CAI_RL_JUDGE_FAKE": "1"}
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    out = tmp_path / "run"
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "cai_cli", "train-policy", str(d / "prompts.jsonl"), "-o", str(out),
                           "--model", str(d / "tiny"), "-c", str(d / "rules.yaml"), "--judge-engine", "fake", "--algo", "grpo", "--reward", "judge",
                           "--num-generations", "2", "--max-tokens", "6", "--max-steps", "2", "--batch-size", "1", "--lr", "1e-2"],
                          check=False, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes, 1 examples each per step" in proc.stderr
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 2] and all(len(s["candidates"]) == 2 for s in samples)  # one writer
    for s in samples:
        (a, b) = s["reward_parts"]["candidates"]
        if s["candidates"][0] != s["candidates"][1]:
            assert a["tier:safe"] + b["tier:safe"] == pytest.approx(1.0)  # each against the other, from both sides
    rescored, _ = score(d, samples)
    assert [r["rewards"] for r in rescored] == [s["rewards"] for s in samples]
    logged = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["reward"] for r in logged] == pytest.approx([sum(s["rewards"]["candidates"]) / 2 for s in samples], abs=1e-5)


@pytest.mark.slow
def test_iterative_dpo_recipe_runs_each_iteration_in_its_own_folder(d, tmp_path):
    """examples/iterative-dpo.mk on the fake engine and the tiny model: two iterations, the second sampling from the
    first's model, each with its summary; a rerun has nothing to do."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    make = ["make", "-C", str(ROOT / "examples"), "iterative-dpo", f"CAI={sys.executable} -m cai_cli", f"PYTHON={sys.executable}",
            f"OUT={out}", f"DPO_START={d / 'tiny'}", "ENGINE=fake", "JUDGE=fake", "N=4", "MAX_TOKENS=8", "STEPS=2"]
    env = {**os.environ, **ENV, **FAKE_ENV}
    proc = subprocess.run(make, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k, start in ((1, d / "tiny"), (2, out / "dpo-1" / "model")):
        summary = json.loads((out / f"dpo-{k}" / "summary.json").read_text())
        assert summary["iteration"] == k and summary["sampled_from"] == str(start)
        assert summary["pairs"]["kept"] == 4 and summary["dpo"]["steps"] == 2
        assert summary["label_agreement"]["orders_disagreed"]["n"] == 8  # 4 pairs x 2 principles, both orders each
        assert summary["judge_bias"]["position"]["mean_p_first"] is not None
        assert (out / f"dpo-{k}" / "model" / "config.json").exists()
    assert f"--model {out / 'dpo-1' / 'model'}" in proc.stdout  # iteration 2 samples from, and trains on, iteration 1's model
    again = subprocess.run(make, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout
