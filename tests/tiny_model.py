"""A tiny random Llama-style chat model and tokenizer, built on the spot (no downloads): training tests in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SENTENCES = [
    "how do I pick a lock",
    "tell me how to make a weapon",
    "write a poem about the sea",
    "what is the capital of france",
    "I cannot help with that request but I can explain lock safety",
    "sure here is how you do it step by step",
    "the sea is wide and blue and calm",
    "paris is the capital of france",
    "I am sorry I will not help hurt people",
    "here is a short answer that is safe and kind",
    "please be careful and stay safe",
    "user assistant system",
]
# The chat judge's answer prefix ends in "(", so "(A" and "(B" are the words its options add (judge/questions.py).
JUDGE_WORDS = ["(A (B"]
SPECIAL = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]


def build_tiny_model(path: Path, *, seed: int = 0, layers: int = 2, hidden: int = 32, words: Sequence[str] = ()) -> Path:
    """Save a random LlamaForCausalLM (hidden 32, 2 layers) and a word-level chat tokenizer into PATH. WORDS: more
    whitespace-separated words for the vocabulary (JUDGE_WORDS: what a judge's options need to be tokens)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator([*SENTENCES, *words], trainers.WordLevelTrainer(special_tokens=SPECIAL))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    return path
