"""ProMoT on the world over seeds and CPU kernels: what separates the seeds that hold from those that collapse.

Runs `promot compare` on the demo's config once per kernel (the machine's own, and the ones named by --kernels:
`avx2` sets ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2, `default` ATEN_CPU_CAPABILITY=default), then prints
one row per (kernel, method, seed) with the candidates' values: stage 1's target score and prompt scale, stage 2's
first logged loss, the selected step, the guard's leakage where the run has one, and the final ICL and leakage.

    python bench/world_seeds.py --seeds 0,1,2,3,4 --kernels native,avx2 --methods finetune,promot \
        --out runs/world-seeds/base [key.sub=value ...]

`--target brackets` trains on the world's other fine-tuning target (a generation format, "[ letters ]") instead of
true_false, with the demo's settings otherwise unchanged: a target the demo's choice never saw.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KERNELS = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
           "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}}


SUITE_DATA = Path(__file__).resolve().parents[1] / "src/promot/evaluate/suites/world/data"
TARGETS = {"true_false": [], "brackets": [f"data.train={SUITE_DATA}/brackets.train.jsonl",
                                          f"data.validation={SUITE_DATA}/brackets.validation.jsonl",
                                          "eval.metric=exact_match", "eval.max_new_tokens=8"]}
"""Each target's own data, and the selection metric and answer budget its format needs (as examples/world/multitask)."""


def run_compare(out: Path, kernel: str, seeds: str, methods: str, overrides: list[str],
                target: str = "true_false") -> float:
    import yaml

    from promot.world.demo import demo_config

    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "config.yaml"
    cfg.write_text(yaml.safe_dump(demo_config()))
    cmd = [sys.executable, "-m", "promot.cli", "compare", str(cfg), *TARGETS[target], *overrides, "--methods", methods,
           "--seeds", seeds, "--tasks", f"world,world_{target}", "--target-task", f"world_{target}",
           "--shots", "1,4", "--limit", "48", "--batch-size", "64", "--no-bf16", "--out", str(out)]
    started = time.time()
    subprocess.run(cmd, check=True, env={**os.environ, **KERNELS[kernel]})
    return time.time() - started


def rows(out: Path) -> list[dict]:
    found = []
    for run in sorted(out.glob("*/seed-*")):
        if not (run / "eval.json").is_file():
            continue
        info = json.loads((run / "run.json").read_text())
        ev = json.loads((run / "eval.json").read_text())["variants"]["tuned"]
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        s1, s2 = info["stages"].get("stage1", {}), info["stages"].get("stage2", {})
        loss0 = next((m["loss"] for m in metrics if m.get("stage") == "stage2" and "loss" in m), None)
        curve = [(m["step"], round(m["icl_score"], 1), round(100 * m.get("icl_leakage", 0), 1)) for m in metrics
                 if m.get("stage") == "stage2" and "icl_score" in m]
        base = json.loads((run / "eval.json").read_text())["variants"]["base"]
        found.append({"method": run.parent.name, "seed": run.name, "s1_score": s1.get("best_score"),
                      "base1": base["k=1"]["norm_avg"], "base4": base["k=4"]["norm_avg"],
                      "scale": s1.get("prompt_scale"), "loss10": loss0, "best_step": s2.get("best_step"),
                      "target": s2.get("best_score"), "guard": s2.get("guard"),
                      "icl1": ev["k=1"]["norm_avg"], "leak1": _percent(ev["k=1"]["leakage"]),
                      "icl4": ev["k=4"]["norm_avg"], "leak4": _percent(ev["k=4"]["leakage"]), "curve": curve})
    return found


def _percent(share: float | None) -> float | None:
    """Leakage in percent; None where the target's format is open-ended and nothing measures it (brackets)."""
    return None if share is None else 100 * share


def _fmt(x: float | None) -> str:
    return "    –" if x is None else f"{x:5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--kernels", default="native,avx2")
    ap.add_argument("--methods", default="finetune,promot")
    ap.add_argument("--out", type=Path, default=Path("runs/world-seeds"))
    ap.add_argument("--target", choices=sorted(TARGETS), default="true_false", help="the task fine-tuned on")
    ap.add_argument("--summary-only", action="store_true", help="print the table of runs already made")
    ap.add_argument("--json", type=Path, help="also write every row and each kernel's headline here")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    report = {"overrides": a.overrides, "target": a.target, "seeds": a.seeds, "kernels": {}}
    for kernel in a.kernels.split(","):
        if not a.summary_only:
            took = run_compare(a.out / kernel, kernel, a.seeds, a.methods, a.overrides, a.target)
            print(f"{kernel}: {took:.0f} s", flush=True)
        found = rows(a.out / kernel)
        for r in found:
            guard = "" if r["guard"] is None else f" guard {r['guard']}"
            print(f"{kernel:7} {r['method']:9} {r['seed']:7} s1 {r['s1_score'] or 0:5.1f} scale "
                  f"{r['scale'] or 0:5.1f} loss@10 {r['loss10'] or 0:.3f} step {r['best_step']} target "
                  f"{_fmt(r['target'])} ICL1 {r['icl1']:5.1f} leak1 {_fmt(r['leak1'])} ICL4 {r['icl4']:5.1f} "
                  f"leak4 {_fmt(r['leak4'])}{guard}\n    curve {r['curve']}")
        means = {}
        for method in sorted({r["method"] for r in found}):
            mine = [r for r in found if r["method"] == method]
            m = {key: statistics.mean(r[key] for r in mine) for key in ("icl1", "icl4", "base1", "base4")}
            means[method] = {**m, "ratio1": m["icl1"] / m["base1"], "ratio4": m["icl4"] / m["base4"],
                             "max_leak1": max((r["leak1"] for r in mine if r["leak1"] is not None), default=None),
                             "max_leak4": max((r["leak4"] for r in mine if r["leak4"] is not None), default=None)}
            print(f"{kernel:7} {method:9} mean ICL1 {m['icl1']:.1f} ({means[method]['ratio1']:.3f} x base) ICL4 "
                  f"{m['icl4']:.1f} ({means[method]['ratio4']:.3f} x base) max leak1 "
                  f"{_fmt(means[method]['max_leak1'])} leak4 {_fmt(means[method]['max_leak4'])}")
        lead = headline(a.out / kernel)
        print(f"{kernel:7} headline: {lead}")
        report["kernels"][kernel] = {"rows": found, "means": means, "headline": lead}
        if a.json:
            a.json.write_text(json.dumps(report, indent=1) + "\n")  # after each kernel: a killed grid keeps its rows


def headline(out: Path) -> str | None:
    """The frontier's headline over the evaluated seeds, as `promot compare --seeds` prints it."""
    from promot.report.frontier import frontier_headline
    from promot.report.tables import load_runs

    runs = sorted(r.parent for r in out.glob("*/seed-*/eval.json"))
    return frontier_headline(load_runs(runs)) if runs else None


if __name__ == "__main__":
    main()
