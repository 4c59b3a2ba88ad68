"""Where `promot demo`'s seconds go: one demo run, its wall time broken down by kind of work, and a rough floor.

    python bench/demo_profile.py [--methods finetune,promot] [--quick] [--out runs/demo-profile]

Times are inclusive and measured by wrapping the functions that do each kind of work (nothing else changes):
forward/backward (Trainer.training_step, the probes' own backward passes excluded), optimizer steps, the monitor's
ICL probes, gradient alignment, the update-size probe, checkpoint selection (target scoring by generation),
WiSE-FT's α grid, checkpoints written, the final evaluation (lm-eval passes) and the report; "other" is the rest
(imports, model and data loading, Trainer set-up). The floor: the demo's training FLOPs (6 · parameters · trained
tokens, the usual dense estimate, stage 1 included at full cost since its backward runs through the whole model)
over the matmul throughput this CPU reaches on the model's own shapes.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from pathlib import Path

import torch

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
_active: list[str] = []


def timed(kind: str, owner, name: str) -> None:
    """Wrap owner.name so its time is charged to `kind` (time inside a nested timed call goes to the inner kind)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        _active.append(kind)
        try:
            return original(*args, **kwargs)
        finally:
            _active.pop()
            spent = time.perf_counter() - start
            SPENT[kind] += spent
            CALLS[kind] += 1
            if _active:  # the outer kind did not spend this time itself
                SPENT[_active[-1]] -= spent

    setattr(owner, name, wrapper)


def instrument() -> None:
    from promot.evaluate import gradient_alignment, monitor, runner
    from promot.report import render
    from promot.training import loop
    from promot.training.methods import wise_ft
    from promot.training import update_size

    timed("forward/backward", loop.PromotTrainer, "training_step")
    timed("optimizer", torch.optim.Optimizer, "zero_grad")
    for cls in _optimizer_classes():
        timed("optimizer", cls, "step")
    timed("ICL probes (monitor)", monitor.SpecializationMonitor, "measure")
    timed("gradient alignment", gradient_alignment.GradientAlignmentProbe, "measure")
    timed("update-size probe", update_size.UpdateSizeProbe, "on_pre_optimizer_step")
    timed("update-size probe", update_size.UpdateSizeProbe, "measure")
    timed("selection (target scoring)", loop, "score_target")
    timed("WiSE-FT α grid", wise_ft.WiseFT, "after_stage2")
    timed("checkpoints", loop.PromotTrainer, "_save_checkpoint")
    timed("evaluation (lm-eval)", runner, "run_all_shots")
    timed("report", render, "render")


def _optimizer_classes() -> set[type]:
    from transformers.optimization import Adafactor

    return {torch.optim.AdamW, Adafactor}


def matmul_tflops(hidden: int, inter: int, tokens: int, seconds: float = 2.0) -> float:
    """fp32 GFLOP/s on the model's own MLP shape ([tokens, hidden] @ [hidden, inter]), the best of a timed loop."""
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, inter)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        best = max(best, 20 * 2 * tokens * hidden * inter / (time.perf_counter() - start))
    return best / 1e9


def main() -> None:
    from promot.world.demo import METHODS, DemoSettings, run_demo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/demo-profile")
    args = ap.parse_args()
    methods = tuple(m for m in args.methods.split(",") if m)
    start = time.perf_counter()
    instrument()
    with contextlib.redirect_stdout(None):
        runs, _ = run_demo(DemoSettings(out=Path(args.out), methods=methods, quick=args.quick))
    wall = time.perf_counter() - start
    accounted = sum(SPENT.values())
    print(f"demo ({len(methods)} methods{', quick' if args.quick else ''}): {wall:.1f} s wall, "
          f"torch threads {torch.get_num_threads()}")
    for kind, s in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<28}{s:>8.1f} s {100 * s / wall:>5.1f}%  ({CALLS[kind]} calls)")
    print(f"  {'other (start-up, loading, Trainer set-up)':<28}{wall - accounted:>8.1f} s "
          f"{100 * (wall - accounted) / wall:>5.1f}%")
    _floor(runs, SPENT["forward/backward"])


def _floor(runs: list[Path], fwd_bwd: float) -> None:
    """Training FLOPs over the CPU's matmul throughput on the model's shapes: how far the step is from its floor."""
    from promot import rundir
    from promot.config import load_config
    from promot.models import load_model

    cfg = load_config(runs[0] / rundir.CONFIG)
    model = load_model(cfg.model.name).model
    n_params = sum(p.numel() for p in model.parameters())
    tokens = 0
    for run in runs:
        c = load_config(run / rundir.CONFIG)
        stages = rundir.read_run_info(run).stages
        steps = sum(getattr(c, s).steps * getattr(c, s).batch_size for s in ("stage1", "stage2") if s in stages)
        tokens += steps * 24  # a world example is ~24 tokens with its prompt (measured on the demo's data)
    flops = 6 * n_params * tokens
    text = model.config
    gflops = matmul_tflops(text.hidden_size, text.intermediate_size, cfg.stage2.batch_size * 24)
    print(f"floor: 6 × {n_params / 1e6:.2f} M params × {tokens / 1e6:.2f} M trained tokens = {flops / 1e12:.2f} TFLOP; "
          f"matmul on the model's shapes {gflops:.1f} GFLOP/s → {flops / gflops / 1e9:.1f} s "
          f"(forward/backward took {fwd_bwd:.1f} s)")


if __name__ == "__main__":
    main()
