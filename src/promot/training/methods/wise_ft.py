"""WiSE-FT (methods wise-ft, promot-wise-ft; Wortsman et al. 2022): after stage 2, θ = α·θ_tuned + (1−α)·θ_base
for every α of `wise_ft.alphas`, each scored on the target's validation set (with the run's prompt, if any) and by
the monitor (and the leakage guard); the run keeps, among the α within `wise_ft.tolerance` of the best score, the
least leaking one — selection as everywhere else — and of those the smallest (the weights nearest the base).
The whole α curve goes to metrics.jsonl (stage "wise-ft") and
run.json for the report. ProMoT's prompt is not interpolated: it stays the one stage 2 trained around.

The interpolation is mergekit's `linear` merge (weights α and 1−α, normalize) of two in-memory models; written
here because mergekit merges checkpoints on disk, and this is one line per tensor. Its settings and their checks:
promot/methods/wise_ft.py."""
from __future__ import annotations

import logging

from promot.rundir import WISE_FT as STAGE
from promot.training.loop import StageHooks
from promot.training.methods.base import Addon

log = logging.getLogger(__name__)


class WiseFT(Addon):
    name = STAGE
    needs_whole_weights = True

    def before_stage2(self, lm, ctx):
        return StageHooks(state={"base": _trained_copy(lm)})

    def after_stage2(self, lm, ctx, stage2, hooks):
        from promot.distributed import is_main_process
        from promot.evaluate.monitor import SpecializationMonitor
        from promot.progress import Progress, verbose
        from promot.training.loop import MetricsLog, score_target

        base, tuned = hooks.state["base"], _trained_copy(lm)
        params = dict(lm.model.named_parameters())
        probes = [m for m in ctx.monitors if isinstance(m, SpecializationMonitor)]  # ICL + leakage at every α
        alphas = sorted({float(a) for a in ctx.cfg.wise_ft.alphas})
        main = is_main_process()
        progress = Progress(len(alphas), f"{ctx.run_dir.name} {STAGE}", unit="α") if main and not verbose() else None
        curve, metrics = [], MetricsLog(ctx.run_dir, STAGE)
        try:
            for alpha in alphas:
                interpolate(params, base, tuned, alpha)
                row = {"alpha": alpha, "eval_target_score": score_target(lm, ctx)}
                if ctx.guard is not None and ctx.guard_policy is not None:
                    row["guard_leakage"] = ctx.guard.measure(lm.model)
                for probe in probes:
                    row.update(probe.measure())
                curve.append(row)
                if main:
                    metrics.append(row)
                if progress:
                    progress.update_to(len(curve))
        except BaseException:
            if progress:
                progress.close(failed=True)  # the error line stands alone
            raise
        best = max(r["eval_target_score"] for r in curve)
        near = [r for r in curve if r["eval_target_score"] >= best - ctx.cfg.wise_ft.tolerance]
        kept = min(near, key=lambda r: (r.get("guard_leakage", 0.0), r["alpha"]))  # least leaking, nearest the base
        interpolate(params, base, tuned, kept["alpha"])
        record = {
            "best_alpha": kept["alpha"], "best_score": kept["eval_target_score"],
            "scores": [{"alpha": r["alpha"], "target_score": r["eval_target_score"],
                        **({"guard_leakage": r["guard_leakage"]} if "guard_leakage" in r else {})} for r in curve],
            "metric": stage2.get("metric", ctx.cfg.eval.metric),
        }
        if "guard_leakage" in kept and (guard := stage2.get("guard")):
            # the verdict is on the interpolated model the run saves, not on stage 2's checkpoint
            from promot.training.selection import within_ceiling

            leak = kept["guard_leakage"]
            record["guard"] = {**guard, "leakage": leak, "alpha": kept["alpha"],
                               "held": within_ceiling(guard["base"], leak, guard["ceiling"])}
        outcome = (f"kept α={kept['alpha']:g}, target {kept['eval_target_score']:.2f} (α:score "
                   + ", ".join(f"{r['alpha']:g}:{r['eval_target_score']:.1f}" for r in curve) + ")")
        if progress:
            progress.close(outcome)
        elif main:
            log.info("%s %s: %s", ctx.run_dir.name, STAGE, outcome)
        return {STAGE: record}


def _trained_copy(lm) -> dict:
    """The trained weights, copied to the CPU (frozen ones are equal in base and tuned: nothing to mix)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in lm.model.named_parameters() if p.requires_grad}


def interpolate(params: dict, base: dict, tuned: dict, alpha: float) -> None:
    """params[n] ← α·tuned[n] + (1−α)·base[n], computed in fp32, stored in each parameter's own dtype."""
    import torch

    with torch.no_grad():
        for n, t in tuned.items():
            mixed = alpha * t.float() + (1 - alpha) * base[n].float()
            params[n].copy_(mixed.to(params[n].dtype))


WISE_FT = WiseFT()
