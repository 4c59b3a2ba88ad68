"""One evaluated model as a point of the frontier: its target score and its ICL Norm.Avg and leakage, each with the
95% interval its per-item scores give (report/frontier.py places the points; report/seeds.py pools seeds)."""
from __future__ import annotations

from dataclasses import dataclass

from promot.evaluate.metrics import paired_bootstrap, proportion_ci
from promot.eval_record import VariantSummary


@dataclass
class FinalPoint:
    """One evaluated model at one shot count (0-100 scale; CIs are absolute 95% bootstrap intervals, None when the
    per-item scores needed for them are missing): the target score of the variant that serves the fine-tuned task,
    the ICL Norm.Avg and leakage (a 0-1 share) of the variant that serves every other task (no prompt)."""

    target: float
    target_ci: list[float] | None
    icl: float
    icl_ci: list[float] | None
    leakage: float | None = None
    leakage_ci: list[float] | None = None


def mean_ci(items: dict[str, list[float]], tasks: list[str]) -> list[float] | None:
    """95% bootstrap CI of the mean of per-task means over `tasks` (each task's items resampled on its own, seeded:
    deterministic). paired_bootstrap against an all-zero baseline is exactly that interval for the level itself.
    None when a task has no per-item scores (corpus-level metrics): an interval over fewer tasks would not be the
    interval of the reported mean."""
    if not tasks or any(not items.get(t) for t in tasks):
        return None
    own = {t: items[t] for t in tasks}
    return paired_bootstrap({t: [0.0] * len(v) for t, v in own.items()}, own).get("norm_avg")


def final_point(served: VariantSummary, icl_summary: VariantSummary) -> FinalPoint | None:
    """A FinalPoint from eval.json summaries (one variant at one shot count): target score from `served`, ICL
    Norm.Avg and leakage from `icl_summary` (for a tuned model: tuned+prompt and tuned; for base: base twice)."""
    target = served.target_score
    if target is None:
        return None
    leak_ci = icl_summary.leakage_ci
    if leak_ci is None and icl_summary.leak_hits:
        leak_ci = proportion_ci(list(icl_summary.leak_hits))
    return FinalPoint(target, mean_ci(served.items, list(served.target_tasks)), icl_summary.norm_avg,
                      mean_ci(icl_summary.items, icl_summary.icl_tasks), icl_summary.leakage,
                      None if leak_ci is None else list(leak_ci))
