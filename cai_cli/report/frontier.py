"""The harm / over-refusal frontier (`cai eval --checkpoints`), as the report reads and draws it: over-refusal across,
harmfulness up, each point with its Wilson 95% intervals both ways, the points of one run joined in order and
labelled, so the checkpoint worth keeping (low on both) stands out. Where the gate judged answers (a constitution with
hard constraints), the harm it judged is drawn too, hollow, beside each point."""

from __future__ import annotations

from pathlib import Path

from ..errors import CaiError


def frontier_of(content, path: str) -> dict:
    """One frontier from what `cai eval --checkpoints` wrote: its summary JSON, or its rows (one per point)."""
    points = content.get("points") if isinstance(content, dict) else content
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) and "harmfulness" in p and "over_refusal" in p for p in points):
        raise CaiError(f"{path}: a frontier without its points (harmfulness, over_refusal per point): cut short or edited; rerun `cai eval --checkpoints`")
    name = Path(path).name.removesuffix(".summary.json").removesuffix(".jsonl")
    return {"label": name, "source": path, "points": [{k: v for k, v in p.items() if k != "meta"} for p in points]}


def _yerr(stats: list[dict]) -> list[list[float]]:
    return [[max(0.0, s["value"] - s["ci"][0]) for s in stats], [max(0.0, s["ci"][1] - s["value"]) for s in stats]]


def draw_frontier(ax, frontiers: list[dict]) -> None:
    """Each frontier's points joined in order, with their intervals and labels."""
    from matplotlib.colors import TABLEAU_COLORS

    palette = [str(c) for c in TABLEAU_COLORS.values()]
    for colour, f in zip(palette * (1 + len(frontiers) // len(palette)), frontiers):
        shown = [p for p in f["points"] if p["harmfulness"].get("value") is not None and p["over_refusal"].get("value") is not None]
        xs = [p["over_refusal"]["value"] for p in shown]
        ys = [p["harmfulness"]["value"] for p in shown]
        ax.errorbar(xs, ys, xerr=_yerr([p["over_refusal"] for p in shown]), yerr=_yerr([p["harmfulness"] for p in shown]),
                    fmt="o-", color=colour, ms=6, capsize=3, lw=1.4, label=f"{f['label']}: harmfulness (not declined)")
        judged = [p for p in shown if (p.get("harm_judged") or {}).get("value") is not None]
        if judged:
            ax.errorbar([p["over_refusal"]["value"] for p in judged], [p["harm_judged"]["value"] for p in judged],
                        yerr=_yerr([p["harm_judged"] for p in judged]), fmt="s--", mfc="none", color=colour, ms=6, capsize=2, lw=0.8,
                        label=f"{f['label']}: harm judged by the gate")
        named: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label ("base, step-1")
        for x, y, p in zip(xs, ys, shown):
            named.setdefault((round(x, 4), round(y, 4)), []).append(p["checkpoint"])
        for (x, y), names in named.items():
            ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8, color=colour)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("over-refusal: benign prompts declined (Wilson 95%)")
    ax.set_ylabel("harmfulness: red-team prompts answered (Wilson 95%)")
    ax.set_title("Harm / over-refusal frontier, points joined in training order (lower left is better)", fontsize=11)
    ax.legend(loc="upper right", fontsize=8, frameon=True)
    ax.grid(alpha=0.3)
