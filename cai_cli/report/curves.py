"""Training curves: what `cai train-*` logged in DIR/metrics.jsonl, over steps, as a figure (PNG, SVG, PDF), an HTML
page, a table on the terminal and, with --json-out, the series themselves.

`cai report DIR` (a folder `cai train-sft`, `train-rm` or `train-policy` wrote) or `cai report DIR/metrics.jsonl`;
several folders are drawn on the same axes, one colour each. Each panel is drawn when the run logged what it needs:

- loss (and eval_loss with --eval-fraction);
- reward: GRPO's and RLOO's mean reward per step with its spread across samples (± the standard deviation), DPO's
  implicit reward margin, a reward model's mean score;
- KL to the starting model (GRPO with beta > 0);
- the learning rate;
- with the judge in the loop (`train-policy --reward judge`), each reward (one per tier, one per hard constraint)
  over steps;
- accuracy (a reward model's, DPO's reward accuracy, SFT's token accuracy);
- with `train-policy --monitor`, the training reward against the monitor's on the probe set at each check.

RL rewards are noisy from step to step: a series of more than SMOOTH_FROM points is drawn thin, with its moving
average (a window of a tenth of the run, at least 3 steps) drawn thick over it.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..errors import CaiError
from ..filekinds import TRAINING_CURVES, is_training_metrics
from ..jsonl import InputSource, read_lines
from ..train.record import METRICS, RECORD, read_record

SMOOTH_FROM = 15
_PRE = "<pre style='font-family:monospace'>{code}</pre>"
REWARD_KEYS = ("reward", "rewards/margins", "mean_reward", "margin")
MONITOR_KEYS = ("monitor/train_reward", "monitor/monitor_reward")  # train/monitor.py's lines in metrics.jsonl
ACCURACY_KEYS = ("accuracy", "eval_accuracy", "rewards/accuracies", "eval_rewards/accuracies", "mean_token_accuracy")
# Logged with every record, not a metric of training.
NOT_METRICS = frozenset({"step", "epoch", "time"})


@dataclass
class Run:
    """One training folder's logged series: metric -> [(step, value)] in logged order."""

    label: str
    source: str
    record: dict = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def values(self, key: str) -> list[float]:
        return [v for _, v in self.series.get(key, [])]

    def per_reward(self) -> list[str]:
        """The judge's rewards (trl's rewards/<name>/mean, one per tier and hard constraint). A single reward function
        (a reward model's, or a judge with one tier) repeats `reward`, so it is left out."""
        keys = [k for k in self.series if k.startswith("rewards/") and k.endswith("/mean")]
        return keys if len(keys) > 1 else []

    def describe(self) -> str:
        r = self.record
        what = " ".join(str(x) for x in (r.get("command"), r.get("algo")) if x)
        return f"{self.label} ({what})" if what else self.label


def metrics_paths(paths: list[str]) -> list[Path] | None:
    """The metrics.jsonl of each of PATHS when every one is a training folder (or its metrics file), None when none is.
    Training runs and eval results in one call, or a training folder that logged nothing, is one line."""
    found = [_metrics_path(p) for p in paths]
    if all(f is None for f in found):
        return None
    if any(f is None for f in found):
        evals = [p for p, f in zip(paths, found) if f is None]
        raise CaiError(f"give training folders (or their metrics.jsonl) or eval results, not both: {', '.join(evals)} "
                       "is not a training folder")
    return [f for f in found if f is not None]


def _metrics_path(path: str) -> Path | None:
    p = Path(path)
    if p.is_dir():
        if (p / METRICS).is_file():
            return p / METRICS
        if (p / RECORD).is_file():
            raise CaiError(f"{path}: a `cai train-*` folder with no {METRICS}: training has logged nothing there yet")
        return None
    if not p.is_file():
        return None  # the eval reader says what is wrong with it
    source = InputSource(path)
    try:
        first = next((item for item in source.lines() if item is not None), None)
    except CaiError:
        return None  # not JSONL: the eval reader names what it is
    finally:
        source.close()
    return p if first is not None and first.row is not None and is_training_metrics(first.row) else None


def load_runs(paths: list[Path]) -> list[Run]:
    """Every numeric series of each metrics file; a line that is not valid JSON is one line naming file and line."""
    runs = []
    labels: set[str] = set()
    for path in paths:
        folder = path.parent
        label = folder.name if path.name == METRICS else path.stem
        if label in labels:
            label = str(folder)
        labels.add(label)
        run = Run(label, str(path), (read_record(folder) or {}) if path.name == METRICS else {})
        for item in read_lines(str(path)):
            if item.error is not None:
                raise CaiError(f"{item.error}; `cai report` reads the metrics.jsonl that `cai train-*` writes")
            assert item.row is not None  # a line without an error has its row
            step = item.row.get("step")
            if not isinstance(step, int):
                raise CaiError(f"{path}:{item.line}: field 'step': expected a whole number, as `cai train-*` logs it")
            for key, value in item.row.items():
                if key not in NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    run.series.setdefault(key, []).append((step, float(value)))
        if not run.series:
            raise CaiError(f"{path}: no metric logged (only steps): nothing to draw")
        runs.append(run)
    return runs


def panels(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """(title, metric keys) of each panel some run can fill, in the order they are drawn."""
    tiers = sorted({k for r in runs for k in r.per_reward()})
    wanted = [
        ("Loss", ["loss", "eval_loss"]),
        ("Reward", list(REWARD_KEYS)),
        ("KL to the starting model", ["kl"]),
        ("Learning rate", ["learning_rate"]),
        ("Rewards per tier and constraint (the judge)", tiers),
        ("Accuracy", list(ACCURACY_KEYS)),
        ("Training reward against the monitor (probe set)", list(MONITOR_KEYS)),
    ]
    return [(title, [k for k in keys if any(k in r.series for r in runs)]) for title, keys in wanted if any(k in r.series for r in runs for k in keys)]


def _window(n: int) -> int:
    return max(3, n // 10)


def _moving_average(values: list[float], width: int) -> list[float]:
    """The mean of each point's window (centred, cut at the ends)."""
    half = width // 2
    return [sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def _label(key: str) -> str:
    return key.removeprefix("rewards/").removesuffix("/mean") if key.startswith("rewards/") and key.endswith("/mean") and key != "rewards/margins" else key


def figure(runs: list[Run]):
    """One panel per quantity logged (panels()), two to a row, every run in its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = panels(runs)
    if not found:
        raise CaiError("nothing to plot: the metrics hold no loss, reward, KL, learning rate or accuracy")
    rows = math.ceil(len(found) / 2)
    fig = plt.figure(figsize=(12, 3.4 * rows + 0.6), dpi=110, layout="constrained")
    grid = fig.add_gridspec(rows, 2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for i, (title, keys) in enumerate(found):
        ax = fig.add_subplot(grid[i // 2, :] if i == len(found) - 1 and len(found) % 2 else grid[i // 2, i % 2])
        smoothed = False
        for r, run in enumerate(runs):
            colour = colours[r % len(colours)]
            for k, key in enumerate(keys):
                points = run.series.get(key)
                if not points:
                    continue
                steps, values = [s for s, _ in points], [v for _, v in points]
                name = _label(key) if len(runs) == 1 else f"{run.label}: {_label(key)}"
                style = styles[k % len(styles)]
                tier = key.startswith("rewards/") and key.endswith("/mean") and key != "rewards/margins"
                c = colours[k % len(colours)] if tier and len(runs) == 1 else colour
                spread = run.series.get("reward_std" if key == "reward" else key[: -len("/mean")] + "/std" if tier else "")
                if spread and len(spread) == len(points) and len(keys) <= 2:
                    std = [v for _, v in spread]
                    ax.fill_between(steps, [v - s for v, s in zip(values, std)], [v + s for v, s in zip(values, std)], color=c, alpha=0.12, lw=0)
                if len(points) > SMOOTH_FROM and key != "learning_rate":
                    smoothed = True
                    ax.plot(steps, values, style, color=c, alpha=0.35, lw=0.8)
                    ax.plot(steps, _moving_average(values, _window(len(values))), style, color=c, lw=2, label=name)
                else:
                    ax.plot(steps, values, style, color=c, lw=1.6, marker="o" if len(points) <= SMOOTH_FROM else None, ms=3, label=name)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("step" + (" (thin: each step; thick: moving average)" if smoothed else ""), fontsize=9)
        if title == "Learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        if "reward_std" in {k for run in runs for k in run.series} and title == "Reward":
            ax.set_ylabel("mean reward (shaded: ± its std across samples)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Training curves: " + ", ".join(run.describe() for run in runs), fontsize=12)
    return fig


def table(runs: list[Run]):
    """Per run and metric: steps logged, first and last value, and the means of the first and last quarter."""
    from rich.table import Table

    t = Table(title="cai report: training curves", caption="first/last ¼: the mean of the first and last quarter of the logged steps")
    for col in ("run", "metric", "steps", "first", "last", "first ¼", "last ¼"):
        t.add_column(col, justify="left" if col in ("run", "metric") else "right")
    shown = {k for _, keys in panels(runs) for k in keys}
    for run in runs:
        for key in [k for _, keys in panels(runs) for k in keys if k in run.series and k in shown]:
            values = run.values(key)
            q = max(1, len(values) // 4)
            t.add_row(run.label, _label(key), str(len(values)), _num(values[0]), _num(values[-1]), _num(sum(values[:q]) / q), _num(sum(values[-q:]) / q))
    return t


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e-3 and x else f"{x:.4f}"


def page(runs: list[Run], png_b64: str) -> str:
    from rich.console import Console

    console = Console(record=True, width=140, file=io.StringIO())
    console.print(table(runs))
    files = html.escape(", ".join(run.source for run in runs))
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>cai training curves</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px}img{max-width:100%}</style>"
        f"<h1>cai training curves</h1><p>{files}</p><img alt='loss, reward, KL and learning rate over steps' src='data:image/png;base64,{png_b64}'>"
        f"{console.export_html(inline_styles=True, code_format=_PRE)}</html>"
    )


def as_json(runs: list[Run]) -> dict:
    return {"kind": TRAINING_CURVES, "runs": [{"label": r.label, "source": r.source, "command": r.record.get("command"),
                                                "series": {k: [[s, v] for s, v in pts] for k, pts in r.series.items()}} for r in runs]}


def run_curves(paths: list[Path], output: str | None, chart_to: Path | None, json_to: Path | None, write_json) -> list[Run]:
    """`cai report TRAIN_DIR ...`: the table on stdout, then the JSON (to JSON_TO) and the figure (OUTPUT, written to
    CHART_TO) when asked for; the targets are checked already."""
    import sys

    from rich.console import Console

    from .figure_file import save_figure

    runs = load_runs(paths)
    Console().print(table(runs))
    if json_to is not None:
        write_json(json_to, as_json(runs))
    if output is not None:
        print(f"cai report: training curves -> {save_figure(figure(runs), output, chart_to, partial(page, runs))}", file=sys.stderr)
    return runs
