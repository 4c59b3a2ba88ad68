"""The report's plots (the only matplotlib importer). Each returns a PNG as base64, or None when there is no data.

One colour per method in every plot (`METHOD_COLORS`), so `promot` is the same green everywhere; runs of the same
method are told apart by line style. Scores and leakage share the 0-100 scale, and ICL axes start at 0.
"""
from __future__ import annotations

import base64
import io
import itertools

from promot.report.frontier import frontier_headline, frontier_points
from promot.report.tables import RunView, curve, label, tradeoff

METHOD_COLORS = {
    "base": "#7f7f7f", "finetune": "#d62728", "prompt-tuning": "#9467bd", "joint": "#ff7f0e",
    "random-prompt": "#8c564b", "lora": "#1f77b4", "promot": "#2ca02c", "promot-lora": "#17becf",
    "wise-ft": "#e377c2", "promot-wise-ft": "#98df8a", "replay": "#bcbd22", "promot-replay": "#006d2c",
    "l2-sp": "#aec7e8", "freeze": "#ff9896", "value-only": "#c5b0d5", "sdft": "#c49c94",
}
LINESTYLES = ("-", "--", ":", "-.")
FRONTIER_MARKERS = ("o", "D", "^", "v", "P")
MODULE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#7f7f7f")


def method_color(method: str) -> str:
    """The method's fixed colour (unknown methods: black)."""
    return METHOD_COLORS.get(method, "#000000")


def _styles(runs: list[RunView]) -> dict[str, tuple[str, str]]:
    """run name → (colour of its method, line style: solid for a method's first run, then dashed, ...)."""
    seen: dict[str, int] = {}
    out = {}
    for r in runs:
        i = seen[r.method] = seen.get(r.method, -1) + 1
        out[r.name] = (method_color(r.method), LINESTYLES[i % len(LINESTYLES)])
    return out


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
    """The monitor's curve: ICL score and leakage (both 0-100) against stage-2 steps (paper Fig. 1-2)."""
    if not any(curve(r, "icl_score") for r in runs):
        return None
    plt = _plt()
    style = _styles(runs)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in runs:
        color, ls = style[r.name]
        if pts := curve(r, "icl_score"):
            a.plot(*zip(*pts), marker="o", color=color, ls=ls, label=label(r))
        if pts := curve(r, "icl_leakage"):
            b.plot([s for s, _ in pts], [100 * v for _, v in pts], marker="o", color=color, ls=ls, label=label(r))
    a.set(title="ICL Norm.Avg (no prompt) during stage 2", xlabel="step", ylabel="score (0-100)", ylim=(0, 102))
    b.set(title="format leakage on other tasks", xlabel="step", ylabel="% of answers", ylim=(0, 102))
    for ax in (a, b):
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    return _png(fig)


def alignment_over_steps(runs: list[RunView]) -> str | None:
    """Gradient alignment (real vs shuffled labels) against stage-2 steps (paper Fig. 3 / 7): one colour per
    module, one line style per run, and a legend for each."""
    kinds = sorted({k[len("align_"):] for r in runs for m in r.metrics for k in m if k.startswith("align_")})
    if not kinds:
        return None
    from matplotlib.lines import Line2D

    plt = _plt()
    colors = dict(zip(kinds, itertools.cycle(MODULE_COLORS)))
    plotted = [r for r in runs if any(curve(r, f"align_{k}") for k in kinds)]
    styles = {r.name: LINESTYLES[i % len(LINESTYLES)] for i, r in enumerate(plotted)}
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in plotted:
        for kind in kinds:
            if pts := curve(r, f"align_{kind}"):
                ax.plot(*zip(*pts), marker=".", color=colors[kind], ls=styles[r.name])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(title="gradient alignment: real vs shuffled labels", xlabel="step", ylabel="cosine", ylim=(-1.02, 1.02))
    ax.grid(alpha=0.3)
    modules = ax.legend([Line2D([], [], color=colors[k]) for k in kinds], kinds, title="module", fontsize=7,
                        loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(modules)
    if len(plotted) > 1:
        ax.legend([Line2D([], [], color="black", ls=styles[r.name]) for r in plotted], [label(r) for r in plotted],
                  title="run", fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    return _png(fig)


def target_vs_icl(runs: list[RunView]) -> str | None:
    """Trade-off over checkpoints: target score vs ICL Norm.Avg (paper App. C.3); only the first and last step of
    each run are labelled, so labels do not pile up."""
    if not any(tradeoff(r) for r in runs):
        return None
    plt = _plt()
    style = _styles(runs)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    labelled: set[tuple] = set()
    for r in runs:
        if pts := tradeoff(r):
            steps, target, icl = zip(*pts)
            color, ls = style[r.name]
            ax.plot(target, icl, marker="o", ms=4, color=color, ls=ls, label=label(r))
            for i in sorted({0, len(pts) - 1}):
                spot = (round(target[i], 1), round(icl[i], 1), steps[i])
                if spot not in labelled:  # runs that start from the same checkpoint share one label
                    labelled.add(spot)
                    ax.annotate(f"step {steps[i]}", (target[i], icl[i]), fontsize=7, color=color if i else "dimgrey",
                                xytext=(4, 4 if i else -10), textcoords="offset points")
    ax.set(title="trade-off over checkpoints", xlabel="target score (validation)", ylabel="ICL Norm.Avg (no prompt)",
           xlim=(0, 102), ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def delta_heatmap(rows: list[str], cols: list[str], values: list[list[float | None]],
                  cis: list[list] | None = None) -> str | None:
    """Change vs base per task (columns) for every run variant (rows): diverging colours centred at 0, each cell
    annotated with its delta (and its 95% CI when eval.json has one)."""
    if not rows or not cols:
        return None
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    plt = _plt()
    grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    span = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
    has_ci = bool(cis) and any(c for row in cis for c in row)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(cols) + 2.5), 0.5 * len(rows) * (1.5 if has_ci else 1) + 1.6))
    im = ax.imshow(grid, cmap="RdBu", norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span), aspect="auto")
    for i, j in itertools.product(range(len(rows)), range(len(cols))):
        v = grid[i, j]
        if np.isnan(v):
            continue
        text = "0" if round(v) == 0 else f"{v:+.0f}".replace("-", "−")
        ci = cis[i][j] if cis else None
        if ci:
            text += f"\n[{ci[0]:+.0f}, {ci[1]:+.0f}]".replace("-", "−")
        ax.text(j, i, text, ha="center", va="center", fontsize=7 if ci else 8,
                color="white" if abs(v) > 0.6 * span else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    if "Norm.Avg" in cols:
        ax.axvline(cols.index("Norm.Avg") - 0.5, color="black", lw=1.2)
    fig.colorbar(im, ax=ax, label="change vs base (points)", fraction=0.04, pad=0.02)
    ax.set_title("change vs base per task (points, 0-100 scale)")
    return _png(fig)


def leakage_bars(entries: list[tuple[str, str, float, list[float] | None]]) -> str | None:
    """Format leakage (0-100) per variant, coloured by method, with 95% CI error bars when eval.json has them.
    entries: (label, method, leakage 0-1, ci 0-1 or None)."""
    if not entries:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(entries) + 1.2))
    ys = range(len(entries))
    vals = [100 * e[2] for e in entries]
    err = [[max(0.0, v - 100 * e[3][0]) if e[3] else 0 for v, e in zip(vals, entries)],
           [max(0.0, 100 * e[3][1] - v) if e[3] else 0 for v, e in zip(vals, entries)]]
    bars = ax.barh(ys, vals, color=[method_color(e[1]) for e in entries],
                   xerr=err if any(e[3] for e in entries) else None, capsize=3)
    ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=3)
    ax.set_yticks(list(ys), [e[0] for e in entries], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="% of other tasks' answers in the fine-tuned format", title="format leakage")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _err(x: float, ci: list[float] | None) -> list[list[float]] | None:
    return None if not ci else [[max(0.0, x - ci[0])], [max(0.0, ci[1] - x)]]


def _draw_run(ax, f, color: str, marker: str, faint: bool) -> None:
    """One run on the frontier: its checkpoints, its α grid (a few α labelled) and its evaluated point with item
    error bars — or, `faint` (one seed of several), the same lighter, its point small and without a legend entry."""
    if f.checkpoints:
        _, target, icl = zip(*f.checkpoints)
        ax.plot(target, icl, marker=marker, ms=3, lw=0.8, color=color, alpha=0.35 if faint else 0.7)
    if f.alphas:
        alphas, target, icl = zip(*f.alphas)
        ax.plot(target, icl, marker=marker, ms=3, lw=1.2, color=color, ls="--", alpha=0.45 if faint else 0.9)
        shown = {0, len(alphas) - 1} | {j for j, a in enumerate(alphas) if f.best_alpha is not None
                                         and abs(a - f.best_alpha) < 1e-9}
        for j in sorted(shown if not faint else ()):
            ax.annotate(f"α={alphas[j]:g}", (target[j], icl[j]), fontsize=7, color=color,
                        xytext=(4, -10 if j == 0 else 4), textcoords="offset points")
    if (p := f.final) and faint:
        ax.plot([p.target], [p.icl], marker=marker, ms=5, ls="", color=color, alpha=0.6, zorder=4)
    elif p:
        ax.errorbar([p.target], [p.icl], xerr=_err(p.target, p.target_ci), yerr=_err(p.icl, p.icl_ci),
                    fmt=marker, ms=8, color=color, mec="black", mew=0.8, capsize=3, zorder=5, label=label(f.run))
    elif f.checkpoints or f.alphas:
        ax.plot([], [], color=color, marker=marker, label=label(f.run))  # a legend entry for a curve-only run


def frontier(runs: list[RunView]) -> str | None:
    """The forgetting frontier: target score (x) against ICL Norm.Avg without the prompt (y), both 0-100. Per run
    its stage-2 checkpoints (thin line, markers), its WiSE-FT α grid (dashed, a few α labelled) and its final
    evaluated point with 95% CIs as error bars, in its method's colour; the base model a grey star; the headline
    (`frontier.frontier_headline`) as the caption. Up and to the right is better. A method run with several seeds:
    every seed's curves and point, faint, and the mean over seeds with error bars over seeds and items."""
    front = frontier_points(runs)
    if not (front.base or any(f.final or f.checkpoints or f.alphas for f in front.runs)):
        return None
    import textwrap

    from matplotlib.lines import Line2D

    plt = _plt()
    seen: dict[str, int] = {}
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for m in front.methods:
        color = method_color(m.method)
        i = seen[m.method] = seen.get(m.method, -1) + 1
        marker = FRONTIER_MARKERS[i % len(FRONTIER_MARKERS)]  # groups of one method: one colour, told apart by marker
        many = len(m.runs) > 1
        for f in m.runs:
            _draw_run(ax, f, color, marker, faint=many)
        if many and (p := m.final):  # the mean over seeds, error bars over seeds and items
            ax.errorbar([p.target], [p.icl], xerr=_err(p.target, p.target_ci), yerr=_err(p.icl, p.icl_ci),
                        fmt=marker, ms=9, color=color, mec="black", mew=0.8, capsize=3, zorder=5,
                        label=f"{m.label}, mean of {len(m.seeds)} seeds")
        elif many:
            ax.plot([], [], color=color, marker=marker, label=m.label)
    if b := front.base:
        ax.errorbar([b.target], [b.icl], xerr=_err(b.target, b.target_ci), yerr=_err(b.icl, b.icl_ci), fmt="*",
                    ms=14, color=METHOD_COLORS["base"], mec="black", mew=0.6, capsize=3, zorder=6, label="base")
    shots = f", {front.k[2:]}-shot" if front.k else ""
    ax.set(title=f"forgetting frontier{shots}: keep ICL while reaching the target", xlim=(-2, 102), ylim=(0, 102),
           xlabel="target score (final: eval, serving variant; curves: validation)", ylabel="ICL Norm.Avg (no prompt)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    keys = [(Line2D([], [], color="grey", lw=0.8, marker="o", ms=3), "stage-2 checkpoints"),
            (Line2D([], [], color="grey", lw=1.2, ls="--", marker="o", ms=3), "WiSE-FT α grid")]
    if front.seeded:
        keys.append((Line2D([], [], color="grey", ls="", marker="o", ms=4, alpha=0.6), "one seed's model"))
    keys = [k for k, shown in zip(keys, (any(f.checkpoints for f in front.runs), any(f.alphas for f in front.runs),
                                         True)) if shown]
    ax.legend([*handles, *(k[0] for k in keys)], [*labels, *(k[1] for k in keys)], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    if text := frontier_headline(runs, front):
        fig.text(0.5, -0.02, textwrap.fill(text.replace("`", ""), 110), ha="center", va="top", fontsize=8)
    return _png(fig)
