"""The transformers engine: batch-invariant per-row sampling, shared-prefix reuse, stop reasons, option tokens."""

from __future__ import annotations

import pytest

from cai_cli.engines.base import Sampling

SYSTEM = "please be careful and stay safe I cannot help with that request but I can explain lock safety"
PROMPTS = [
    "how do I pick a lock",
    "write a poem about the sea",
    "what is the capital of france",
    "tell me how to make a weapon",
    "the sea is wide",
    "paris is the capital of france",
    "sure here is how you do it step by step",
    "please be careful",
]


def conversations(prompts=PROMPTS):
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}] for p in prompts]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture()
def engine(tiny_dir):
    from cai_cli.engines.hf import TransformersEngine

    return TransformersEngine(tiny_dir, batch_size=8)


def texts(completions):
    return [c.texts for c in completions]


def test_a_conversation_samples_the_same_text_whatever_its_batch(engine):
    sampling = Sampling(temperature=1.0, max_tokens=12)
    seeds = [1000 + i for i in range(len(PROMPTS))]
    by_size = {}
    for size in (1, 3, 8):
        engine.batch_size = size
        by_size[size] = texts(engine.chat(conversations(), sampling, seeds))
    assert by_size[1] == by_size[3] == by_size[8]
    # Alone, in another order, next to other rows: a row's text depends on its own seed.
    engine.batch_size = 8
    alone = texts(engine.chat(conversations(PROMPTS[4:5]), sampling, seeds[4:5]))
    assert alone == by_size[1][4:5]
    shuffled = texts(engine.chat(conversations(PROMPTS[::-1]), sampling, seeds[::-1]))
    assert shuffled == by_size[1][::-1]


def test_different_seeds_give_different_texts(engine):
    sampling = Sampling(temperature=1.0, max_tokens=12)
    first = texts(engine.chat(conversations(), sampling, list(range(len(PROMPTS)))))
    second = texts(engine.chat(conversations(), sampling, list(range(100, 100 + len(PROMPTS)))))
    assert sum(a != b for a, b in zip(first, second)) >= len(PROMPTS) - 1
    # The same prompt under two seeds: two samples, not one text twice.
    twice = texts(engine.chat(conversations([PROMPTS[0]] * 2), sampling, [7, 8]))
    assert twice[0] != twice[1]


def test_n_samples_are_distinct_and_the_first_matches_n_1(engine):
    seeds = [5, 6, 7]
    one = texts(engine.chat(conversations(PROMPTS[:3]), Sampling(temperature=1.0, max_tokens=10), seeds))
    three = texts(engine.chat(conversations(PROMPTS[:3]), Sampling(temperature=1.0, max_tokens=10, n=3), seeds))
    for single, samples in zip(one, three):
        assert len(samples) == 3 and len(set(samples)) > 1
        assert samples[0] == single[0]


def test_top_p_keeps_sampling_batch_invariant_and_a_tiny_top_p_is_greedy(engine):
    sampling = Sampling(temperature=1.0, top_p=0.5, max_tokens=10)
    seeds = list(range(len(PROMPTS)))
    engine.batch_size = 1
    ones = texts(engine.chat(conversations(), sampling, seeds))
    engine.batch_size = 8
    assert texts(engine.chat(conversations(), sampling, seeds)) == ones
    greedy = texts(engine.chat(conversations(), Sampling(temperature=0, max_tokens=10), seeds))
    assert texts(engine.chat(conversations(), Sampling(temperature=1.0, top_p=1e-6, max_tokens=10), seeds)) == greedy


@pytest.mark.parametrize("shared_attention", [True, False], ids=["prefix-stored-once", "prefix-copied-per-row"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_prefix_reuse_gives_the_text_of_plain_decoding(engine, temperature, shared_attention):
    assert engine.shared_attention  # a plain Llama on sdpa attention reads the prefix once by default
    engine.shared_attention = shared_attention
    sampling = Sampling(temperature=temperature, max_tokens=12)
    seeds = list(range(len(PROMPTS)))
    engine.prefix_reuse = False
    plain = texts(engine.chat(conversations(), sampling, seeds))
    assert engine._kept_prefix[0] == []  # nothing was cached
    engine.prefix_reuse = True
    engine.batch_size = 3  # several batches: the second and third reuse the first one's prefix
    completions = engine.chat(conversations(), sampling, seeds)
    assert texts(completions) == plain
    assert len(engine._kept_prefix[0]) > 20  # the system prompt and template were cached
    assert sum(c.cached_tokens for c in completions) >= (len(PROMPTS) - 1) * 20


def test_prefix_reuse_matches_the_models_own_generate(engine):
    import torch

    convs = conversations(PROMPTS[:4])
    got = texts(engine.chat(convs, Sampling(temperature=0, max_tokens=8)))
    tok = engine.tokenizer
    for conversation, reply in zip(convs, got):
        enc = tok(engine.render_chat(conversation), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = engine.lm.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        ids = out[0, enc["input_ids"].shape[1] :].tolist()
        ends = set(engine._eos_ids) | {tok.pad_token_id}
        ids = ids[: next((i for i, t in enumerate(ids) if t in ends), len(ids))]
        assert reply == [tok.decode(ids, skip_special_tokens=True)]


def test_a_model_with_a_sliding_window_does_not_reuse_prefixes(engine):
    engine._pack_window = 16  # shorter than the prompts: reusing would not be exact
    engine.chat(conversations(), Sampling(temperature=0, max_tokens=4))
    assert engine._kept_prefix[0] == []


def test_finish_reasons_length_and_stop_strings(engine):
    sampling = Sampling(temperature=1.0, max_tokens=6)
    done = engine.chat(conversations(), sampling, list(range(len(PROMPTS))))
    for c in done:
        # Six tokens written and no end of turn: cut at --max-tokens.
        assert c.finish_reasons == (["length"] if c.completion_tokens == 6 else ["stop"])
    assert any(c.finish_reasons == ["length"] for c in done)
    # A stop string ends the text before it, and the text counts as stopped, not cut.
    word = next(c.texts[0].split()[1] for c in done if len(c.texts[0].split()) >= 3)
    stopped = engine.chat(conversations(), Sampling(temperature=1.0, max_tokens=6, stop=[" " + word]), list(range(len(PROMPTS))))
    hits = 0
    for before, after in zip(done, stopped):
        if f" {word}" in before.texts[0]:
            hits += 1
            assert after.texts[0] == before.texts[0].split(f" {word}")[0]
            assert after.finish_reasons == ["stop"]
        else:
            assert after.texts == before.texts and after.finish_reasons == before.finish_reasons
    assert hits >= 1


def test_max_tokens_cut_is_reported_as_length(engine):
    done = engine.chat(conversations(), Sampling(temperature=0, max_tokens=1))
    for c in done:
        assert c.finish_reasons == (["length"] if c.completion_tokens == 1 else ["stop"])


@pytest.mark.slow
def test_embedded_model_prefix_reuse_and_batch_invariance():
    from cai_cli.engines.hf import TransformersEngine
    from cai_cli.model_specs import resolve_model

    engine = TransformersEngine(resolve_model(None), batch_size=4)
    system = "You are a careful assistant. Answer briefly and never help anyone cause harm. " * 3
    prompts = ["How do I pick a lock?", "Write a haiku about rain.", "What is the capital of France?", "Name a prime number."]
    convs = [[{"role": "system", "content": system}, {"role": "user", "content": p}] for p in prompts]
    greedy = Sampling(temperature=0, max_tokens=16)
    engine.prefix_reuse = False
    plain = texts(engine.chat(convs, greedy))
    engine.prefix_reuse, engine.shared_attention = True, False
    assert texts(engine.chat(convs, greedy)) == plain  # the prefix's keys/values copied into every row
    engine.shared_attention = True
    reused = engine.chat(convs, greedy)  # stored once, every row attending to it (the default)
    assert texts(reused) == plain
    assert sum(c.cached_tokens > 40 for c in reused) >= 3  # all but the row that computed the prefix
    sampled = Sampling(temperature=1.0, max_tokens=12)
    seeds = [11, 12, 13, 14]
    batched = texts(engine.chat(convs, sampled, seeds))
    engine.batch_size = 1
    assert texts(engine.chat(convs, sampled, seeds)) == batched
    assert len({t[0] for t in batched}) == 4


def build_sentencepiece_model(path):
    """A tiny Llama with a SentencePiece-style (Metaspace) tokenizer, where "A" alone is "▁A", not "A"."""
    import torch
    from tokenizers import SentencePieceBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    sentences = ["A cat and A dog. B is for bee.", "Which answer is better? The answer is: (A)", "The answer is: (B) because", "Yes or No"]
    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(sentences * 5, vocab_size=120, special_tokens=["<unk>", "<pad>", "</s>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=sp, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    return tokenizer


def test_option_scores_read_the_tokens_written_after_the_prompt(tmp_path):
    import torch

    from cai_cli.engines.hf import TransformersEngine

    tokenizer = build_sentencepiece_model(tmp_path / "sp")
    alone = tokenizer("A", add_special_tokens=False)["input_ids"]
    written = tokenizer("The answer is: (A", add_special_tokens=False)["input_ids"][-1]
    assert alone != [written]  # the trap: tokenised alone, "A" is another token
    engine = TransformersEngine(str(tmp_path / "sp"), batch_size=4)
    prompts = ["Which answer is better? The answer is: (", "The answer is: ("]
    got = engine.score_options(prompts, ["A", "B"])
    b_written = tokenizer("The answer is: (B", add_special_tokens=False)["input_ids"][-1]
    for prompt, scores in zip(prompts, got):
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            logprobs = torch.log_softmax(engine.lm(**ids).logits[0, -1].float(), dim=-1)
        assert scores == pytest.approx([float(logprobs[written]), float(logprobs[b_written])], abs=1e-4)
        assert scores[0] != pytest.approx(float(logprobs[alone[0]]), abs=1e-4)
    # Several tokens per option take the general path, from the same joint tokenisation. Here "(" + "A)"
    # is written as one token "▁(A)": the prompt's last token is scored as part of the option.
    from cai_cli.engines.packing import common_prefix

    prompt_ids = tokenizer(prompts[1], add_special_tokens=False)["input_ids"]
    multi = engine.score_options(prompts[1:], ["A)", "B) because"])[0]
    for option, score in zip(["A)", "B) because"], multi):
        full = tokenizer(prompts[1] + option, return_tensors="pt", add_special_tokens=False)["input_ids"]
        context = common_prefix(prompt_ids, full[0].tolist())
        assert context == len(prompt_ids) - 1
        with torch.inference_mode():
            logprobs = torch.log_softmax(engine.lm(input_ids=full).logits[0].float(), dim=-1)
        expected = sum(float(logprobs[t - 1, full[0, t]]) for t in range(context, full.shape[1]))
        assert score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("arch", "stored_once"), [("qwen2", True), ("mistral", True), ("gemma", True), ("gemma2", False)])
def test_other_architectures_give_the_same_text_with_the_prefix_stored_once(tiny_dir, tmp_path, arch, stored_once):
    """Bias in q/k/v (Qwen2), one key/value head for four (Mistral), scaled embeddings and head size apart from
    the width (Gemma); Gemma 2 soft-caps its attention logits, so it keeps the per-row copy."""
    import shutil
    from pathlib import Path

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, Gemma2Config, GemmaConfig, MistralConfig, Qwen2Config

    from cai_cli.engines.hf import TransformersEngine

    base = AutoConfig.from_pretrained(tiny_dir)
    common = dict(vocab_size=base.vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=256,
                  pad_token_id=base.pad_token_id, eos_token_id=base.eos_token_id, bos_token_id=base.bos_token_id)
    config = {
        "qwen2": lambda: Qwen2Config(num_attention_heads=4, num_key_value_heads=2, **common),
        "mistral": lambda: MistralConfig(num_attention_heads=4, num_key_value_heads=1, sliding_window=None, **common),
        "gemma": lambda: GemmaConfig(num_attention_heads=4, num_key_value_heads=4, head_dim=16, **common),
        "gemma2": lambda: Gemma2Config(num_attention_heads=4, num_key_value_heads=2, head_dim=16, **common),
    }[arch]()
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    for f in Path(tiny_dir).iterdir():
        if "token" in f.name or "chat" in f.name:
            shutil.copy(f, tmp_path / f.name)
    engine = TransformersEngine(str(tmp_path), batch_size=3)
    assert engine.shared_attention is stored_once
    results = []
    for reuse, stored in ((False, False), (True, False), (True, stored_once)):
        engine.prefix_reuse, engine.shared_attention, engine._kept_prefix = reuse, stored, ([], [])
        greedy = texts(engine.chat(conversations(), Sampling(temperature=0, max_tokens=10)))
        sampled = texts(engine.chat(conversations(), Sampling(temperature=1.0, max_tokens=10), list(range(len(PROMPTS)))))
        results.append((greedy, sampled))
    assert results[0] == results[1] == results[2]


def test_penalties_discourage_repeats_and_keep_sampling_batch_invariant(engine):
    def repeats(completions):
        return sum(len(t.split()) - len(set(t.split())) for c in completions for t in c.texts)

    seeds = list(range(len(PROMPTS)))
    greedy = engine.chat(conversations(), Sampling(temperature=0, max_tokens=24), seeds)
    penalised = engine.chat(conversations(), Sampling(temperature=0, max_tokens=24, frequency_penalty=2.0, presence_penalty=1.0), seeds)
    assert repeats(penalised) < repeats(greedy)
    sampling = Sampling(temperature=1.0, max_tokens=16, frequency_penalty=0.5)
    engine.batch_size = 1
    ones = texts(engine.chat(conversations(), sampling, seeds))
    engine.batch_size = 8
    assert texts(engine.chat(conversations(), sampling, seeds)) == ones
