"""The trainers: `cai train-sft`, `train-rm`, `train-policy`, thin over cai_cli/train (the options every trainer shares:
train.common.TrainOptions)."""

from __future__ import annotations

from ..judge.options import JudgeGateOptions, JudgeRewardOptions
from ..threads import ThreadOptions
from ..train.common import TrainOptions
from ..train.dataset import EVAL_FRACTION
from ..train.monitor import MonitorOptions
from . import options as o
from .apps import app
from .plumbing import command


@command(app, "train-sft")
def train_sft(
    rows: o.TrainInputArg,
    targets: o.TargetsOpt = o.Targets.final,
    mix: o.MixOpt = None,
    mix_ratio: o.MixRatioOpt = None,
    keep_truncated: o.KeepTruncatedOpt = False,
    *, opts: TrainOptions, threads: ThreadOptions,
):
    """Fine-tune on (conversation, revision) pairs from `cai revise` with trl's SFTTrainer; loss on the reply only.

    DIR gets checkpoints/ (a rerun resumes), metrics.jsonl, then the merged model and tokenizer: `cai generate --model DIR`.

    Example:

        cai train-sft out/revised.jsonl -o out/sl-cai --mix out/helpful.jsonl --mix-ratio 0.3 --epochs 1
    """
    from ..train.sft import train_sft as run

    run(opts, rows, targets, mix, mix_ratio, keep_truncated)


@command(app, "train-rm")
def train_rm(
    prefs: o.TrainInputArg,
    eval_fraction: o.EvalFractionOpt = EVAL_FRACTION,
    soft: o.SoftOpt = True,
    *, opts: TrainOptions, threads: ThreadOptions,
):
    """Train a reward model on chosen/rejected pairs from `cai label-prefs` (trl's RewardTrainer, soft labels).

    Prints the held-out accuracy. DIR works as `cai score --reward-model DIR` and `cai train-policy --reward-model DIR`.

    Example:

        cai train-rm out/prefs.jsonl -o out/rm --epochs 1
    """
    from ..train.rm import train_rm as run

    run(opts, prefs, eval_fraction, soft)


@command(app, "train-policy")
def train_policy(
    rows: o.TrainInputArg,
    algo: o.AlgoOpt = o.Algo.dpo,
    reward_model: o.RewardModelOpt = None,
    beta: o.BetaOpt = None,
    num_generations: o.NumGenerationsOpt = None,
    max_tokens: o.MaxTokensOpt = None,
    temperature: o.TemperatureOpt = None,
    soft: o.SoftOpt = True,
    reward: o.RewardSourceOpt = None,
    constitution: o.ConstitutionOpt = None,
    *, opts: TrainOptions, judge: JudgeRewardOptions, gate: JudgeGateOptions, monitor: MonitorOptions, threads: ThreadOptions,
):
    """RL-CAI: DPO straight from labelled pairs, or GRPO / RLOO on prompt rows against a reward model or with the judge in the loop.

    --reward judge asks the constitutional judge (label-prefs' questions, both orders) about every sampled completion at every step: one reward per priority tier, each hard constraint a penalty; the judge runs on its own engine (--judge-model, --judge-engine, --judge-base-url). DIR/samples.jsonl keeps every completion with the rewards it got (`cai score --reward judge` reproduces them). --gold FILE measures the judge's rewards on gold pairs before training (DIR/judge-gate.json) and --min-accuracy / --max-ece stop a judge below the floor (exit 3). --monitor SPEC scores the policy's answers to a fixed probe set every --monitor-every steps with the training reward and a second judge (metrics.jsonl: monitor/*), and with --stop-on-divergence stops (exit 4, resumable) where the first rises while the second falls. See docs/training.md.

    Example:

        cai train-policy out/prefs.jsonl -o out/rl-cai --algo dpo --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-cai --algo grpo --reward-model out/rm --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-judge --algo grpo --reward judge -c assistant --model out/sl-cai
        cai train-policy examples/red_team.jsonl -o out/rl-watched --algo grpo --reward judge --monitor principles:more-honest --monitor-every 5 -c assistant
    """
    from ..train.policy import train_policy as run

    watched = monitor.monitor is not None  # the monitor asks a judge too: its constitution and engine are used then
    if reward is not o.RewardSource.judge:
        judge.refuse_unused("--reward judge", (["--constitution"] if constitution and not watched else []) + gate.given(), engine_used=watched)
    run(opts, rows, algo, reward_model, beta, num_generations, max_tokens, temperature, soft, reward,
        judge if reward is o.RewardSource.judge or watched else None, constitution, gate, monitor if watched else None)
