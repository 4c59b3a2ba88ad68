"""What the leakage guard costs and what it saw, per finished run: stage 2's wall time, the guard's share of it
(metrics.jsonl's `stage_seconds` / `guard_seconds`, written at the end of stage 2), the guard's reading at every
selection step beside the target score and the monitor's ICL leakage at the same step (when it probed there), and
the verdict (run.json `guard`) beside the final evaluation's leakage (eval.json, no prompt).

    python bench/guard_cost.py runs/demo/*/ [--json bench/guard_world.json]
    python bench/guard_cost.py --reading smollm2-135m-instruct   # one reading's seconds, apart from any stage
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from promot.eval_record import read_eval  # noqa: E402
from promot.rundir import read_metrics, read_run_info  # noqa: E402


def summary(run: Path) -> dict:
    info, metrics, ev = read_run_info(run), read_metrics(run), read_eval(run)
    timing = next((m for m in reversed(metrics) if m.get("stage") == "stage2" and "guard_seconds" in m), None)
    monitor = {m["step"]: m["icl_leakage"] for m in metrics if m.get("stage") == "stage2" and "icl_leakage" in m}
    steps = [{"step": s["step"], "target": s["target_score"], "guard_leakage": s.get("guard_leakage"),
              "monitor_leakage": monitor.get(s["step"])} for s in info.stages.get("stage2", {}).get("scores", [])]
    tuned = ev.variants.get("tuned", {}) if ev else {}
    out = {"run": str(run), "method": info.method, "steps": steps,
           "guard": None if info.guard is None else dataclasses.asdict(info.guard),
           "eval_leakage": {k: v.leakage for k, v in tuned.items()}}
    if timing:
        rest = timing["stage_seconds"] - timing["guard_seconds"]
        out.update(stage2_seconds=timing["stage_seconds"], guard_seconds=timing["guard_seconds"],
                   guard_added=round(timing["guard_seconds"] / rest, 4) if rest > 0 else None)
    return out


def reading(model_name: str, repeats: int = 3, max_new_tokens: int = 2, batch_size: int = 16) -> None:
    """Median seconds of one guard reading of the shipped requests through the chat template: the guard's cost
    per selection step on its own, apart from any stage."""
    import statistics
    import time

    from promot.evaluate.guard import LeakageGuard, load_requests
    from promot.evaluate.metrics import AnswerFormat
    from promot.models.loading import load_model

    loaded = load_model(model_name)
    guard = LeakageGuard(load_requests(), AnswerFormat(("True", "False")), loaded.tokenizer, 256, True,
                         max_new_tokens, batch_size)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        guard.measure(loaded.model)
        times.append(time.perf_counter() - started)
    print(f"{model_name}: {statistics.median(times):.2f} s per reading (median of {repeats}: "
          f"{', '.join(f'{t:.2f}' for t in times)}; {len(guard.examples)} requests, batch {batch_size}, "
          f"{max_new_tokens} new tokens)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--reading", metavar="MODEL", help="time one guard reading on MODEL instead")
    args = ap.parse_args()
    if args.reading:
        return reading(args.reading)
    rows = [summary(r) for r in args.runs if (r / "run.json").is_file()]
    for r in rows:
        g = r["guard"]
        verdict = "no guard" if g is None else (f"guard {100 * g['leakage']:.1f}% at step {g['step']} (base "
                                                f"{100 * g['base']:.1f}%) {'held' if g['held'] else 'NOT PROTECTED'}")
        cost = (f"stage 2 {r['stage2_seconds']:.0f} s, guard {r['guard_seconds']:.1f} s "
                f"(+{100 * r['guard_added']:.1f}%)" if r.get("guard_added") is not None else "no timing")
        leaks = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["eval_leakage"].items() if v is not None)
        print(f"{r['run']}: {r['method']}: {verdict}; {cost}; eval leakage {leaks or '–'}")
        for s in r["steps"]:
            gl = "–" if s["guard_leakage"] is None else f"{100 * s['guard_leakage']:.1f}%"
            ml = "–" if s["monitor_leakage"] is None else f"{100 * s['monitor_leakage']:.1f}%"
            print(f"    step {s['step']:>4}: target {s['target']:5.1f}  guard {gl:>6}  monitor ICL leakage {ml:>6}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
