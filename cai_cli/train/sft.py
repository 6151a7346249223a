"""train-sft: fine-tune on (conversation, revision) pairs with trl's SFTTrainer, optionally mixed with helpful data."""

from __future__ import annotations

from ..errors import CaiError
from .common import (
    TrainOptions,
    prepare_output,
    quiet_libraries,
    run_training,
    say,
    setup,
    trl_errors,
)
from .data import (
    TARGETS,
    check_helpful,
    check_revised,
    helpful_example,
    load_examples,
    mix_in,
    sft_examples,
)


def train_sft(opts: TrainOptions, rows: str, targets: str = "final", mix: str | None = None, mix_ratio: float | None = None) -> dict:
    if targets not in TARGETS:
        raise CaiError(f"--targets: expected one of {', '.join(TARGETS)}, got {targets!r}")
    if mix_ratio is not None and mix is None:
        raise CaiError("--mix-ratio needs --mix FILE (rows with prompt or messages, and response)")
    out = prepare_output(opts.output)
    examples = load_examples(rows, check_revised, lambda r: sft_examples(r, targets))
    revised = len(examples)
    added = 0
    if mix is not None:
        helpful = load_examples(mix, check_helpful, helpful_example)
        examples, added = mix_in(examples, helpful, mix_ratio, opts.seed or 0)

    quiet_libraries()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    base, config, peft, use_lora = setup("sft", opts, SFTConfig, "CAUSAL_LM", "train-sft")
    say(f"train-sft: {revised} revision examples ({targets} targets)" + (f" + {added} helpful examples from {mix}" if mix else ""))
    # The prompt-completion conversational format makes SFTTrainer put the loss on the reply only.
    with trl_errors():
        trainer = SFTTrainer(model=base, args=config, train_dataset=Dataset.from_list(examples), peft_config=peft)
    record = {"input": rows, "targets": targets, "examples": len(examples), "revision_examples": revised, "mix": mix, "mix_examples": added}
    result = run_training(trainer, out, "train-sft", base, use_lora, "causal", record, opts.progress)
    say(f"train-sft: {result['steps']} steps, loss {result['train_loss']:.4f}, {result['seconds']:.1f}s; model in {out}")
    return result
