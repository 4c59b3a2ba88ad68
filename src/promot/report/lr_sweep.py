"""An lr sweep's table (`promot compare --lr-sweep`): each method at its own stage-2 lr, chosen by the frontier's
rule — among its lrs whose target reaches the best, the one that keeps the most ICL."""
from __future__ import annotations

from promot.report.frontier import Frontier, MethodSeeds, _val, within_best


def swept_lr(m: MethodSeeds) -> float | None:
    """The stage-2 lr of an lr sweep's group (`compare --lr-sweep` names it `<method>-lr<lr>`), else None."""
    prefix = f"{m.method}-lr"
    if not m.name.startswith(prefix):
        return None
    try:
        return float(m.name[len(prefix):])
    except ValueError:
        return None


def lr_table(front: Frontier) -> list[list[str]]:
    """With an lr sweep: each method at its own lr — among its lrs whose target reaches the best (the same rule as
    the headline's), the one that keeps the most ICL; a method whose every lr misses the target says so. Empty
    without a sweep."""
    within = within_best(front)
    swept: dict[str, list[tuple[float, MethodSeeds]]] = {}
    for m in front.methods:
        if (lr := swept_lr(m)) is not None and m.final:
            swept.setdefault(m.method, []).append((lr, m))
    if not swept:
        return []
    rows = [["method", "lrs tried", "its lr", "target score [95% CI]", "ICL Norm.Avg, no prompt [95% CI]",
             "why this lr"]]
    for method, points in swept.items():
        points.sort()
        tried = ", ".join(f"{lr:g}" for lr, _ in points)
        reaching = [(lr, m) for lr, m in points if within.get(m.name)]
        if not reaching:
            rows.append([method, tried, "–", "–", "–", "every lr misses the best target score"])
            continue
        lr, m = max(reaching, key=lambda p: p[1].final.icl)
        p = m.final
        why = (f"keeps the most ICL of its {len(reaching)} lrs reaching the best target score" if len(reaching) > 1
               else "its only lr reaching the best target score")
        rows.append([method, tried, f"{lr:g}", _val(p.target, p.target_ci), _val(p.icl, p.icl_ci), why])
    return rows

