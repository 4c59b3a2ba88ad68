"""The report's plots (the only matplotlib importer). Each returns a PNG as base64, or None when there is no data."""
from __future__ import annotations

import base64
import io

from promot.report.tables import RunView, curve, tradeoff


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def icl_over_steps(runs: list[RunView]) -> str | None:
    """The monitor's curve: ICL score and leakage against stage-2 steps (paper Fig. 1-2)."""
    if not any(curve(r, "icl_score") for r in runs):
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in runs:
        if pts := curve(r, "icl_score"):
            a.plot(*zip(*pts), marker="o", label=f"{r.name} ({r.method})")
        if pts := curve(r, "icl_leakage"):
            b.plot(*zip(*pts), marker="o", label=f"{r.name} ({r.method})")
    a.set(title="ICL Norm.Avg (no prompt) during stage 2", xlabel="step", ylabel="score (0-100)")
    b.set(title="format leakage on other tasks", xlabel="step", ylabel="share of answers", ylim=(-0.02, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    return _png(fig)


def alignment_over_steps(runs: list[RunView]) -> str | None:
    """Gradient alignment (real vs shuffled labels) per module kind against stage-2 steps (paper Fig. 3 / 7)."""
    series = [(r, k[len("align_"):]) for r in runs
              for k in sorted({k for m in r.metrics for k in m if k.startswith("align_")})]
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r, kind in series:
        ax.plot(*zip(*curve(r, f"align_{kind}")), marker="o", label=f"{r.name}: {kind}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(title="gradient alignment: real vs shuffled labels", xlabel="step", ylabel="cosine", ylim=(-1.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def target_vs_icl(runs: list[RunView]) -> str | None:
    """Trade-off over checkpoints: target score vs ICL Norm.Avg (paper App. C.3), step annotated."""
    if not any(tradeoff(r) for r in runs):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for r in runs:
        if pts := tradeoff(r):
            steps, target, icl = zip(*pts)
            ax.plot(target, icl, marker="o", label=f"{r.name} ({r.method})")
            for s, x, y in zip(steps, target, icl):
                ax.annotate(str(s), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(title="trade-off over checkpoints", xlabel="target score (validation)", ylabel="ICL Norm.Avg (no prompt)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def task_bars(rows: list[list[str]]) -> str | None:
    """Per-task scores for every column of the task table."""
    if len(rows) < 3:
        return None
    plt = _plt()
    names, tasks = rows[0][1:], [r[0] for r in rows[1:]]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(tasks)), 3.8))
    for i, name in enumerate(names):
        vals = [float(r[1 + i].split()[0]) if r[1 + i] != "–" else 0.0 for r in rows[1:]]
        ax.bar([j + i * width for j in range(len(tasks))], vals, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks, rotation=35, ha="right", fontsize=8)
    ax.set(ylabel="score (0-100)", title="per-task scores")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
