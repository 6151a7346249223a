"""A second opinion during RL (`train-policy --monitor SPEC`): is the policy learning what the reward says, or gaming it?

Every --monitor-every N steps the policy answers a fixed probe set (the first --monitor-probes prompts of the
training data, greedy, up to --max-tokens tokens), and each answer is scored twice:
- by the training reward: the reward model (its score), or the training judge asked about the answer against the
  policy's own answer to that prompt at step 0 (both orders: P(better than where it started), weighted as in
  training);
- by the monitor: another judge (a model here, or a server), or the training judge's held-out questions, asked the
  same way, against the same step-0 answers.
Both start from a baseline, the step-0 answers scored by each (a judge's is 0.5 per tier by construction, less the
hard-constraint penalties). A judge's group reward averages 0.5 over any group, so it cannot show a trend; measured
against fixed step-0 answers, a rise means the policy got better by that judge's lights.

metrics.jsonl gets one line per check (step 0 first): `monitor/train_reward` and `monitor/monitor_reward` (means
over the probes), their changes since step 0, `monitor/rank_correlation` (Spearman, over the probes) and
`monitor/diverged`. DIR/monitor-probe.jsonl keeps every probe answer with both scores (the step-0 answers, marked
`reference`, are the references; a resume reads them back). The rule: the run has diverged where the training reward is above its step-0
value and the monitor's has fallen below its own by more than --divergence-threshold. With --stop-on-divergence the
run then stops: the checkpoint of that step is written, the run is left resumable (rerun the same command; a
higher threshold or no --stop-on-divergence trains on), and the command exits 4.

SPEC: `principles:ID,ID` (those comparison questions of the constitution are held out of the training judge and
asked by the monitor, on the training judge's engine, or with --reward model on the judge's engine options);
`http(s)://HOST/v1` or `MODEL@http(s)://...` (a served judge: the openai engine, MODEL a local folder of it whose
tokenizer reads the options); anything else is a model (`embedded`, a folder, a hub id) on transformers in this
process. The monitor's questions are the constitution's (-c), up to --principles per tier.

Only the main process probes (the others wait for its decision, which every process follows); the monitor's settings
are not part of the run's fingerprint, so a resumed run may change them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from ..errors import CaiError, RewardDiverged
from ..flags import MONITOR_PANEL, Flag

if TYPE_CHECKING:
    from ..constitution import Constitution
    from ..engines import EngineOptions

PROBE_FILE = "monitor-probe.jsonl"
DEFAULT_EVERY = 10
DEFAULT_PROBES = 8
DEFAULT_THRESHOLD = 0.1


@dataclass(frozen=True)
class MonitorOptions:
    """train-policy's reward monitor: --monitor SPEC and its settings (the other options need --monitor)."""

    monitor: Annotated[str | None, Flag(
        panel=MONITOR_PANEL, metavar="SPEC",
        help="Every --monitor-every steps, score the policy's greedy answers to a fixed probe set with the training reward and with a second "
        "judge, and log both and their rank correlation to metrics.jsonl. SPEC: principles:ID,ID (those comparison questions held out of "
        "the training judge), a served judge (http://HOST/v1 or MODEL@http://HOST/v1), or a model (embedded, a folder, a hub id) here.",
    )] = None
    monitor_every: Annotated[int, Flag(panel=MONITOR_PANEL, min=1, help="Steps between the monitor's checks (and one at step 0).")] = DEFAULT_EVERY
    monitor_probes: Annotated[int, Flag(panel=MONITOR_PANEL, min=1, help="Probe prompts: the first N distinct prompts of the input.")] = DEFAULT_PROBES
    stop_on_divergence: Annotated[bool, Flag(
        panel=MONITOR_PANEL, name="--stop-on-divergence/--no-stop-on-divergence",
        help="Stop (exit 4, the checkpoint kept, resumable) where the training reward is above its step-0 value and the monitor's has fallen "
        "by more than --divergence-threshold.",
    )] = False
    divergence_threshold: Annotated[float, Flag(
        panel=MONITOR_PANEL, min=0.0, help="How far the monitor's mean reward may fall below its step-0 value before the run has diverged.",
    )] = DEFAULT_THRESHOLD

    def __post_init__(self):
        settings = (self.monitor_every, self.monitor_probes, self.stop_on_divergence, self.divergence_threshold)
        if self.monitor is None and settings != (DEFAULT_EVERY, DEFAULT_PROBES, False, DEFAULT_THRESHOLD):
            raise CaiError("--monitor-every, --monitor-probes, --stop-on-divergence and --divergence-threshold set the reward monitor: add --monitor SPEC")


class SpecKind(str, Enum):
    """What --monitor SPEC names."""

    principles = "principles"  # held-out comparison questions of the training judge
    server = "server"  # a served judge
    model = "model"  # a model in this process


@dataclass(frozen=True)
class Spec:
    """What --monitor names: held-out questions (`principles`), a server (`url`, with the MODEL folder whose tokenizer
    reads the options), or a MODEL in this process."""

    kind: SpecKind
    principles: tuple[str, ...] = ()
    model: str | None = None
    url: str | None = None

    def describe(self) -> str:
        if self.kind is SpecKind.principles:
            return f"the training judge's held-out questions {', '.join(self.principles)}"
        if self.kind is SpecKind.server:
            return f"the judge at {self.url}" + (f" ({self.model})" if self.model else "")
        return f"{self.model or 'the embedded model'} in this process"


def parse_spec(value: str) -> Spec:
    text = value.strip()
    if text.startswith("principles:"):
        ids = tuple(x.strip() for x in text.removeprefix("principles:").split(",") if x.strip())
        if not ids:
            raise CaiError("--monitor principles:ID,ID names the comparison questions held out for the monitor; none given")
        return Spec(SpecKind.principles, principles=ids)
    model, _, url = text.rpartition("@") if "@http" in text else ("", "", text)
    if url.startswith(("http://", "https://")):
        return Spec(SpecKind.server, model=model or None, url=url)
    return Spec(SpecKind.model, model=None if text in ("embedded", "default") else text)


def split_held_out(charter: Constitution, ids: Sequence[str]) -> tuple[Constitution, Constitution]:
    """(the training judge's constitution without the held-out questions, the monitor's with them alone)."""
    known = {q.id for q in charter.comparisons}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise CaiError(f"--monitor principles:{','.join(ids)}: {', '.join(unknown)} not among the comparison questions of "
                       f"{charter.source} ({', '.join(sorted(known)) or 'none'})")
    kept = tuple(q for q in charter.comparisons if q.id not in ids)
    if not kept:
        raise CaiError(f"--monitor principles:{','.join(ids)}: holds out every comparison question of {charter.source}; keep some for training")
    return replace(charter, comparisons=kept), replace(charter, comparisons=tuple(q for q in charter.comparisons if q.id in ids))


def monitor_engine(spec: Spec, judge_engine: EngineOptions) -> EngineOptions:
    """The monitor's engine: the judge's (held-out questions), a server, or a model on transformers here."""
    from ..engines import EngineName, EngineOptions, ServerOptions

    if spec.kind is SpecKind.principles:
        return judge_engine
    if spec.kind is SpecKind.server:
        assert spec.url is not None
        return EngineOptions(engine=EngineName.openai.value, model=spec.model, server=ServerOptions(base_url=[spec.url]))
    return EngineOptions(engine=EngineName.transformers.value, model=spec.model)


def diverged(start: tuple[float, float], now: tuple[float, float], threshold: float) -> bool:
    """The rule: the training reward above its step-0 value while the monitor's fell by more than THRESHOLD."""
    (t0, m0), (t, m) = start, now
    return t > t0 and m0 - m > threshold


# ---- scoring the probe answers --------------------------------------------------------------------------------------

Scorer = Callable[[list[list[dict]], list[str], list[str]], list[float | None]]  # (conversations, answers, references)


def judge_scorer(reward, weights: Sequence[float]) -> Scorer:
    """A judge's rewards for each answer against its reference (reference mode, both orders), weighted; REWARD a
    JudgeReward in reference mode."""
    from ..judge.reward import Group
    from ..judge.reward_config import RewardMode, total

    assert reward.cfg.mode is RewardMode.reference, "the monitor's judges compare each answer with its reference"

    def score(conversations: list[list[dict]], answers: list[str], references: list[str]) -> list[float | None]:
        groups = [Group(conv, [answer], ref) for conv, answer, ref in zip(conversations, answers, references)]
        return [total(parts[0], reward.names, weights) for parts in reward.score(groups)]

    return score


def reward_model_scorer(model, tokenizer) -> Scorer:
    """The reward model's score of each answer (engines/reward_model.py: each text alone), on the device it sits on."""
    from ..engines.reward_model import reward_score, reward_text

    def score(conversations: list[list[dict]], answers: list[str], references: list[str]) -> list[float | None]:
        texts = [reward_text(tokenizer, [*conv, {"role": "assistant", "content": a}]) for conv, a in zip(conversations, answers)]
        device = str(next(model.parameters()).device)
        return [reward_score(model, tokenizer, text, device)[0] for text in texts]

    return score


# ---- the probe set and its answers ----------------------------------------------------------------------------------


def probe_prompts(examples: Sequence[dict], count: int) -> list[list[dict]]:
    """The first COUNT distinct prompts of the training data: the probe set."""
    seen: dict[str, list[dict]] = {}
    for ex in examples:
        prompt = ex["prompt"]
        conv = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        key = repr(conv)
        if key not in seen:
            seen[key] = conv
        if len(seen) == count:
            break
    return list(seen.values())


def greedy_answers(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
    """The policy's greedy answer to each conversation, one at a time (no padding), in eval mode, no gradients."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    try:
        device = next(model.parameters()).device
        for conv in conversations:
            ids = tokenizer.apply_chat_template(conv, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            ids = {k: v.to(device) for k, v in ids.items()}
            with torch.inference_mode():
                made = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
            out.append(tokenizer.decode(made[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    finally:
        if was_training:
            model.train()
    return out


def rewind_probe(out: Path, step: int) -> list[dict]:
    """DIR/monitor-probe.jsonl cut back to the steps a resumed checkpoint holds (step <= STEP); its rows."""
    from ..jsonl import read_rows
    from ..output import write_file

    path = out / PROBE_FILE
    if not path.exists():
        return []
    import json

    kept = [r for r in read_rows(str(path)) if isinstance(r.get("step"), int) and r["step"] <= step]
    write_file(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return kept


@dataclass
class Check:
    """One check: the step, per probe (answer, training reward, monitor reward), and the means."""

    step: int
    answers: list[str]
    train: list[float | None]
    monitor: list[float | None]

    def means(self) -> tuple[float, float]:
        t = [x for x in self.train if x is not None]
        m = [x for x in self.monitor if x is not None]
        if not t or not m:
            raise CaiError(f"the reward monitor at step {self.step}: no probe answer got a score from "
                           f"{'the training reward' if not t else 'the monitor'}")
        return sum(t) / len(t), sum(m) / len(m)


class Monitor:
    """The checks of one run: the probe set, the references (the step-0 answers), both scorers, the baseline."""

    def __init__(self, opts: MonitorOptions, spec: Spec, prompts: list[list[dict]], train: Callable[[], Scorer], monitor: Callable[[], Scorer],
                 out: Path, max_new_tokens: int):
        self.opts, self.spec, self.prompts, self.out = opts, spec, prompts, out
        self._train, self._monitor = train, monitor
        self._train_scorer: Scorer | None = None
        self._scorer: Scorer | None = None
        self.max_new_tokens = max_new_tokens
        self.references: list[str] | None = None
        self.start: tuple[float, float] | None = None
        self.stopped_at: int | None = None

    def train(self) -> Scorer:
        if self._train_scorer is None:
            self._train_scorer = self._train()
        return self._train_scorer

    def monitor(self) -> Scorer:
        if self._scorer is None:
            self._scorer = self._monitor()
        return self._scorer

    def check(self, step: int, answers: list[str]) -> Check:
        assert self.references is not None
        return Check(step, answers, self.train()(self.prompts, answers, self.references), self.monitor()(self.prompts, answers, self.references))

    def record(self, check: Check, epoch: float | None, reference: bool = False) -> dict:
        """metrics.jsonl's line for CHECK (and the probe rows kept in DIR/monitor-probe.jsonl)."""
        from ..output import append_rows
        from ..stats import rank_correlation

        t, m = check.means()
        if self.start is None:
            self.start = (t, m)
        pairs = [(a, b) for a, b in zip(check.train, check.monitor) if a is not None and b is not None]
        gone = diverged(self.start, (t, m), self.opts.divergence_threshold)
        line = {"step": check.step, "epoch": epoch, "monitor/train_reward": round(t, 6), "monitor/monitor_reward": round(m, 6),
                "monitor/train_reward_change": round(t - self.start[0], 6), "monitor/monitor_reward_change": round(m - self.start[1], 6),
                "monitor/rank_correlation": rank_correlation([a for a, _ in pairs], [b for _, b in pairs]),
                "monitor/probes": len(pairs), "monitor/diverged": gone}
        append_rows(self.out / PROBE_FILE, [
            {"id": f"step{check.step}:{n}", "step": check.step, "messages": conv, "response": answer, "train_reward": tr, "monitor_reward": mr,
             **({"reference": True} if reference else {})}
            for n, (conv, answer, tr, mr) in enumerate(zip(self.prompts, check.answers, check.train, check.monitor))])
        return line


def judge_calls(charter: Constitution, principles: int) -> int:
    """Scored prompts per probe answer for a judge in reference mode: each question both orders, each constraint both
    ways round."""
    from ..judge.reward_config import tier_pools

    k = sum(min(principles or len(pool), len(pool)) for _, pool in tier_pools(charter))
    return 2 * k + 2 * len(charter.hard_constraints)


def plan_line(monitor: Monitor, max_steps: int, train: str, train_calls: int, monitor_calls: int) -> str:
    """What the monitor will cost, printed before training: checks, generations, judge calls."""
    opts, probes = monitor.opts, len(monitor.prompts)
    checks = 1 + max_steps // opts.monitor_every if max_steps > 0 else None
    when = f"{checks} checks (step 0, then every {opts.monitor_every} steps)" if checks else f"a check every {opts.monitor_every} steps"
    stop = f"; stops where the training reward rises while the monitor's falls by more than {opts.divergence_threshold:g}" if opts.stop_on_divergence else ""
    return (f"train-policy: reward monitor: {monitor.spec.describe()}, on {probes} probe prompts: {when}, each {probes} greedy answers "
            f"of up to {monitor.max_new_tokens} tokens, scored by {train} ({train_calls * probes} calls) and by the monitor "
            f"({monitor_calls * probes} judge calls){stop}")


def monitor_callback(monitor: Monitor):
    """The trainer callback: the step-0 answers (or the kept ones on a resume), then a check every N steps; under
    --stop-on-divergence, the checkpoint of a diverged step is written and the run stops there (RewardDiverged)."""
    from transformers import TrainerCallback

    class RewardMonitor(TrainerCallback):
        def _probe(self, state, model, tokenizer, answers: list[str] | None = None) -> None:
            check = monitor.check(state.global_step, answers or greedy_answers(model, tokenizer, monitor.prompts, monitor.max_new_tokens))
            line = monitor.record(check, state.epoch, reference=answers is not None)
            state.log_history.append(dict(line))  # a checkpoint keeps it: metrics.jsonl is cut back by its log history
            from ..output import append_rows
            from .record import METRICS

            append_rows(monitor.out / METRICS, [line])
            print(f"cai train-policy: monitor at step {line['step']}: training reward {line['monitor/train_reward']:.4f} "
                  f"({line['monitor/train_reward_change']:+.4f}), monitor {line['monitor/monitor_reward']:.4f} "
                  f"({line['monitor/monitor_reward_change']:+.4f}), rank correlation {line['monitor/rank_correlation']}", file=sys.stderr)
            if line["monitor/diverged"] and monitor.opts.stop_on_divergence:
                monitor.stopped_at = state.global_step

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if not state.is_world_process_zero:
                return
            kept = rewind_probe(monitor.out, state.global_step if state.global_step else -1)
            references = [r["response"] for r in kept if r.get("reference")]
            if state.global_step and len(references) == len(monitor.prompts):
                monitor.references = references
                # The baseline: the reference answers scored by both, as when they were made (the scores are not
                # reread: the monitor may have changed since).
                monitor.start = monitor.check(0, references).means()
                return
            if state.global_step:
                print(f"cai train-policy: the reward monitor starts at step {state.global_step} (no reference answers were kept): "
                      "its baseline is the policy's answers now", file=sys.stderr)
            monitor.references = greedy_answers(model, processing_class, monitor.prompts, monitor.max_new_tokens)
            self._probe(state, model, processing_class, monitor.references)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step % monitor.opts.monitor_every:
                return
            if state.is_world_process_zero:
                self._probe(state, model, processing_class)
            if args.world_size > 1:  # every process stops where the main one decided to (the others wait for it here)
                from accelerate.utils import broadcast_object_list

                decided = [monitor.stopped_at]
                broadcast_object_list(decided, from_process=0)
                monitor.stopped_at = decided[0]
            if monitor.stopped_at is not None:
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            if monitor.stopped_at is not None and state.global_step == monitor.stopped_at:
                t0, m0 = monitor.start or (0.0, 0.0)
                raise RewardDiverged(
                    f"the reward monitor stopped the run at step {monitor.stopped_at}: the training reward rose above its step-0 "
                    f"value ({t0:.4f}) while {monitor.spec.describe()} fell by more than {monitor.opts.divergence_threshold:g} (from {m0:.4f}); "
                    f"checkpoint-{monitor.stopped_at} is kept: rerun the same command to resume (a higher --divergence-threshold, "
                    f"or no --stop-on-divergence, trains on); DIR/{PROBE_FILE} holds the probe answers")

    return RewardMonitor()


