"""train-sft: fine-tune on (conversation, revision) pairs with trl's SFTTrainer, optionally mixed with helpful data."""

from __future__ import annotations

from ..errors import CaiError, choice
from ..model_specs import quiet_libraries
from ..trl_examples import (
    Targets,
    check_helpful,
    check_revised,
    helpful_example,
    keep_whole,
    sft_candidates,
)
from .common import (
    TrainOptions,
    prepare_output,
    say,
    setup,
    trl_errors,
)
from .dataset import load_examples, mix_in
from .record import data_identity
from .run import already_done, run_training, start


def train_sft(
    opts: TrainOptions,
    rows: str,
    targets: Targets | str = Targets.final,
    mix: str | None = None,
    mix_ratio: float | None = None,
    keep_truncated: bool = False,
) -> dict:
    targets = choice(Targets, targets, "--targets")
    if mix_ratio is not None and mix is None:
        raise CaiError("--mix-ratio needs --mix FILE (rows with prompt or messages, and response)")
    out = prepare_output(opts.output)
    # A revision cut at --max-tokens would teach the model to stop mid-sentence; it is left out unless asked for.
    examples, cut = keep_whole(load_examples(rows, check_revised, lambda r: sft_candidates(r, targets)), keep_truncated)
    if not examples:
        raise CaiError(f"{rows}: all {cut} revisions were cut at --max-tokens; rerun `cai revise` with a larger --max-tokens, or pass --keep-truncated")
    revised = len(examples)
    revised_data = data_identity(rows, examples)
    helpful_data = data_identity(None, None)
    added = helpful_cut = 0
    if mix is not None:
        helpful, helpful_cut = keep_whole(load_examples(mix, check_helpful, helpful_example), keep_truncated)
        if not helpful:
            raise CaiError(f"--mix {mix}: all {helpful_cut} replies were cut at --max-tokens; pass --keep-truncated to use them")
        helpful_data = data_identity(mix, helpful)
        examples, added = mix_in(examples, helpful, mix_ratio, opts.seed or 0)

    quiet_libraries()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    plan = setup("sft", opts, SFTConfig, "CAUSAL_LM", "train-sft")
    settings = {"targets": targets.value, "keep_truncated": keep_truncated, "mix_ratio": mix_ratio}
    run = start("train-sft", opts, plan, settings, {"input": revised_data, "mix": helpful_data})
    if run.nothing_to_do:
        return already_done(run)
    say(f"train-sft: {revised} revision examples ({targets.value} targets)" + (f" + {added} helpful examples from {mix}" if mix else ""))
    if cut or helpful_cut:
        say(f"train-sft: left out {cut} revisions" + (f" and {helpful_cut} helpful replies" if mix else "")
            + " cut at --max-tokens (finish_reason length); --keep-truncated keeps them")
    record = {"input": rows, "targets": targets.value, "examples": len(examples), "revision_examples": revised, "mix": mix, "mix_examples": added,
              "keep_truncated": keep_truncated, "truncated_left_out": cut, "helpful_truncated_left_out": helpful_cut}
    with run.undo_unless_started():
        # The prompt-completion conversational format makes SFTTrainer put the loss on the reply only.
        with trl_errors():
            trainer = SFTTrainer(model=plan.base, args=plan.config, train_dataset=Dataset.from_list(examples), peft_config=plan.peft)
        result = run_training(trainer, run, plan.base, plan.lora, "causal", record, opts.progress)
    if not result.get("skipped"):
        say(f"train-sft: {result['steps']} steps, loss {result['train_loss']:.4f}, {result['seconds']:.1f}s; model in {out}")
    return result
