"""Issue 22, items 2-3: the real-model question asked three times. Does a method keep ICL at the target score in
every seed, not just one?

(a) **scan** — plain fine-tuning, seed 0, monitor on, at a few stage-2 lrs (parameter-scaled Adafactor) between the
    regime where nothing forgets (AdamW 3e-5) and the map's, where everything collapses (scaled Adafactor 1e-3);
    picks the lr where fine-tuning loses ~10-30 points of ICL Norm.Avg (here at most the base's 27.5) at full
    target score (≥ 95);
(b) **bench** — at that lr, seeds 0,1,2 of finetune, promot, promot-1shot (ProMoT trained on 1-shot inputs, the
    paper's best variant: in `chat`, one exemplar as an earlier user/assistant turn, its target scored 1-shot as it
    was trained), replay and promot-replay; evaluated on `mini` (1-shot, through the chat template), printed as
    `promot compare --seeds`'s table: per method the mean over seeds and 95% intervals over seeds and items, each
    method − finetune, and the issue's goal answered (the best ProMoT variant that reaches fine-tuning's target
    score: ≥ base − 3, and − finetune excluding 0).

    python bench/seeds.py --estimate          # the plan and its estimated wall time; runs nothing
    python bench/seeds.py                     # scan, then bench (estimate: see --estimate; goal ≤ 3 h, 2 cores)
    python bench/seeds.py --lr 2e-4           # skip the scan: bench at this lr (the map's: --lr 1e-3)
    python bench/seeds.py --lr 7e-4 --answer  # the table and the goal over what is evaluated so far
    python bench/seeds.py --lr 7e-4 --variant 'promot-s1lr0.03:stage1.lr=0.03'   # one more ProMoT variant
    python bench/seeds.py --smoke             # world-tiny, `has_a`, 2 steps, 2 items: checks it runs (~5 min)

Why this budget is enough (defaults): stage 2 is 72 steps × 16 = 1,152 examples (2.25 epochs of the 512 items),
10% warmup, selection every 18 steps. In the map (RESULTS, "Real models: the map") fine-tuning reached target 100
by step 40-60 and both monitor curves were flat from step 40-80 to 320: Adafactor's steps shrink ~1000× once the
loss is ~0, so the start of stage 2 decides the outcome, not its length. A scan lr whose target does not reach ≥ 95
within 72 steps is not "at full target score" and is not picked. Selection and the monitor share steps (scan:
every 18; bench: the monitor every 36, to save time). Stage 1: 40 steps × 8 (the prompt alone reaches ~50-60 by
then; the map used 60, and 150 left stage 2 nothing to learn but the format). Eval: 40 items per task (CIs ±3-4
points on Norm.Avg), 1-shot.

Runs go to runs/seeds-<model>-<scenario>/{scan/lr-<lr>, bench-lr<lr>/<method>/seed-<s>}, the HTML reports to
…/scan/report and …/bench-lr<lr>/report; `--lr 1e-3` afterwards asks the same at the map's setting (issue 22: "if
the budget allows": it does not, within 3 h — about 2.5 h more). Re-running reuses finished runs and resumes
unfinished ones (compare's rules), so a killed bench picks up where it stopped. One torch job at a time: run
nothing else heavy beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_model import BASE_CONFIG, REPO, SCENARIOS, SUITE_DATA, replay_data  # noqa: E402

METHODS = ("finetune", "promot", "replay", "promot-replay")
ONE_SHOT = "promot-1shot"
FIRST = ("finetune", "promot")
"""The first group: the question's two sides. Then the 1-shot variant, then replay and promot-replay."""
SCAN_LRS = (1e-4, 2e-4, 4e-4)
WINDOW = (-25.0, -8.0)  # Δ ICL Norm.Avg vs base that counts as "loses part of its ICL, not all" (base ≈ 27.5)
AIM = -15.0

# Seconds per unit on the project's 2-core AMD EPYC (AVX2, fp32), SmolLM2-135M-Instruct in the chat template,
# from the 2026-11-30 runs (RESULTS, "The real-model question with seeds"): a 72-step stage-2 run with the monitor
# every 36 and selection every 36 took 591 s beside a test run (an upper bound; the first prior, the map's Xeon
# timings × 1.5, was ~2.5× low);
# an evaluated variant ~90-150 s at 40 items per task. After the scan the script prints measured vs estimated time.
COST = {"stage2_step": 7.0, "stage1_step": 2.5, "probe": 20.0, "selection": 12.0, "eval_variant": 150.0,
        "one_shot_factor": 1.8}


@dataclasses.dataclass
class Budget:
    stage1_steps: int = 40
    stage2_steps: int = 72
    batch: int = 16
    select_every: int = 18
    scan_monitor_every: int = 18
    bench_monitor_every: int = 36
    monitor_limit: int = 10
    eval_limit: int = 40
    select_limit: int = 32


SMOKE = Budget(stage1_steps=2, stage2_steps=2, batch=4, select_every=1, scan_monitor_every=2, bench_monitor_every=2,
               monitor_limit=2, eval_limit=2, select_limit=4)


def overrides(b: Budget, model: str, scenario: str, out: Path, monitor_every: int) -> list[str]:
    """The map's settings (scaled Adafactor, frozen embeddings, 10% warmup) at this budget."""
    chat = SCENARIOS[scenario][2]
    return [f"model.name={model}", f"stage1.steps={b.stage1_steps}", f"stage1.eval_every={b.select_every}",
            f"stage2.steps={b.stage2_steps}", f"stage2.eval_every={b.select_every}", "stage2.scale_parameter=true",
            "stage2.warmup_steps=0.1", f"stage2.batch_size={b.batch}", "stage2.freeze_embeddings=true",
            f"monitor.tasks={'[mini]' if monitor_every else '[]'}", f"monitor.every={max(monitor_every, 1)}",
            f"monitor.limit={b.monitor_limit}",
            f"eval.limit={b.select_limit}", f"monitor.apply_chat_template={str(chat).lower()}",
            *SCENARIOS[scenario][0], *replay_data(out, chat)]


def estimate(b: Budget, n_scan: int, seeds: int, extra: int = 0) -> dict[str, float]:
    """Estimated seconds of the scan and of the bench (training, monitor, selection, evaluation); `extra` further
    ProMoT variants (`--variant`)."""
    def run(stage1: bool, factor: float = 1.0, monitor_every: int = b.bench_monitor_every) -> float:
        s2 = (b.stage2_steps * COST["stage2_step"] * b.batch / 16 * factor
              + (b.stage2_steps // monitor_every + 1) * COST["probe"] * b.monitor_limit / 10
              + (b.stage2_steps // b.select_every + 1) * COST["selection"])
        s1 = b.stage1_steps * COST["stage1_step"] * factor + (b.stage1_steps // b.select_every + 1) * COST["selection"]
        return s2 + (s1 if stage1 else 0.0)

    per_eval = COST["eval_variant"] * b.eval_limit / 40
    scan = n_scan * run(False, monitor_every=b.scan_monitor_every) + (n_scan + 1) * per_eval
    bench = seeds * (2 * run(False) + (2 + extra) * run(True) + run(True, COST["one_shot_factor"]))
    bench += (1 + seeds * (2 + 2 * (2 + extra))) * per_eval + (1 + seeds * 2) * per_eval  # 1-shot: own base
    return {"scan": scan, "bench": bench}


ONE_SHOT_OVERRIDES = ["data.shots=1", "data.max_length=96"]
"""ProMoT on 1-shot inputs: each input gets one exemplar of the training split; in `chat` (conversational data,
issue 19) as an earlier user/assistant turn, so the target can be scored 1-shot as it was trained. A 1-shot chat
input is 77-84 SmolLM2 tokens (0-shot: 49-54), so max_length 64 would cut every exemplar: 96."""


def variant(text: str) -> tuple[str, list[str]]:
    """`--variant NAME:OVERRIDE[;OVERRIDE…]`: a ProMoT variant of the bench's own, under `bench-lr<lr>/NAME`, e.g.
    `promot-s1lr0.03:stage1.lr=0.03` (a prompt nearer the vocabulary's scale)."""
    from promot.config import load_config
    from promot.errors import PromotError
    from promot.training import METHODS as TRAINED

    name, _, rest = text.partition(":")
    if not name.startswith("promot-") or "/" in name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: want promot-NAME:FIELD=VALUE[;FIELD=VALUE...]")
    if name in {*TRAINED, ONE_SHOT}:
        raise argparse.ArgumentTypeError(f"{name!r} is a method's own folder; name the variant otherwise")
    try:  # the config's own checks (keys, types, ranges), so a typo fails here, not hours into the bench
        load_config(BASE_CONFIG, rest.split(";"))
    except PromotError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    return name, rest.split(";")


def spec(scenario: str, b: Budget, target_shots: int = 0):
    from promot.evaluate.runner import EvalSpec

    target, chat = SCENARIOS[scenario][1], SCENARIOS[scenario][2]
    return EvalSpec(tasks=["mini", target], shots=[1], limit=b.eval_limit, target_tasks=(target,),
                    target_shots=target_shots, apply_chat_template=chat, fewshot_as_multiturn=chat)


class Clock:
    """Measured against estimated time, so the projection corrects itself after the first run."""

    def __init__(self, total: float) -> None:
        self.start, self.total = time.time(), total

    def report(self, done_estimate: float, what: str) -> None:
        spent = time.time() - self.start
        factor = spent / done_estimate if done_estimate else 1.0
        print(f"[{what}] {spent / 60:.1f} min spent (estimate so far {done_estimate / 60:.1f}); projected total "
              f"{self.total * factor / 60:.0f} min", flush=True)


def scan(args, b: Budget, root: Path) -> float:
    """Plain fine-tuning at each lr; prints the curve; returns the lr closest to AIM inside WINDOW at target ≥ 95."""
    import promot  # noqa: F401  (aliases)
    from promot.compare import method_configs, train_all
    from promot.evaluate.runner import evaluate
    from promot.report.frontier import frontier_points
    from promot.report.render import render
    from promot.report.tables import console_curves, load_runs

    out = root / "scan"
    base = overrides(b, args.model, args.scenario, root, b.scan_monitor_every)
    cfgs = [dataclasses.replace(c, output_dir=str(out / f"lr-{lr:g}")) for lr in args.scan_lrs
            for c in method_configs(BASE_CONFIG, ["finetune"], out, [*base, f"stage2.lr={lr}", "overwrite=false"])]
    runs = train_all(cfgs)
    evaluate(runs, spec(args.scenario, b))
    views = load_runs(runs)
    front = frontier_points(views)
    print("\n".join(["", "scan (finetune, seed 0):", *console_curves(views), ""]))
    print(f"{'lr':>8}{'target':>9}{'ICL':>7}{'Δ base [95% CI]':>24}{'leak %':>8}")
    rows = []
    for lr, m in zip(args.scan_lrs, front.methods):
        p = m.final
        ci = m.delta_ci or [float("nan")] * 2
        print(f"{lr:>8g}{p.target:>9.1f}{p.icl:>7.1f}{m.delta:>+10.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]"
              f"{'' if p.leakage is None else f'{100 * p.leakage:>8.0f}'}")
        rows.append((lr, p.target, m.delta))
    print(render(runs, out / "report"))
    fits = [r for r in rows if r[1] >= 95 and WINDOW[0] <= r[2] <= WINDOW[1]]
    pick = min(fits or rows, key=lambda r: abs(r[2] - AIM))
    note = "" if fits else f" — no lr lost {-WINDOW[1]:.0f}-{-WINDOW[0]:.0f} points at target ≥ 95; nearest taken"
    print(f"chosen lr {pick[0]:g}: target {pick[1]:.1f}, Δ ICL {pick[2]:+.1f}{note}")
    return pick[0]


def bench(args, b: Budget, root: Path, lr: float) -> None:
    """Group by group (finetune and promot first, then each further variant), every seed trained, then evaluated
    and the seed-aware table printed over all groups so far: a bench stopped for time still answers with what it
    finished, and a re-run reuses every finished run and evaluation."""
    from promot.compare import method_configs, train_all
    from promot.evaluate.runner import evaluate
    from promot.rundir import EVAL, seed_dir

    out = root / f"bench-lr{lr:g}"  # a second lr (the map's 1e-3: `--lr 1e-3`) gets runs of its own
    base = [*overrides(b, args.model, args.scenario, root, b.bench_monitor_every), f"stage2.lr={lr}",
            "overwrite=false"]
    seeds = list(range(args.seeds))
    first = [m for m in args.methods if m in FIRST]
    later = [*(m for m in args.variants if m == ONE_SHOT), *(m for m in args.methods if m not in FIRST),
             *(m for m in args.variants if m != ONE_SHOT)]
    groups = [first, *([m] for m in later)]
    done: list[Path] = []
    for group in filter(None, groups):
        cfgs = []
        for m in group:
            if m in args.variants:
                cfgs += [dataclasses.replace(c, output_dir=str(out / m / seed_dir(c.seed))) for c in
                         method_configs(BASE_CONFIG, ["promot"], out, [*base, *args.variants[m]], seeds)]
            else:
                cfgs += method_configs(BASE_CONFIG, [m], out, base, seeds)
        runs = train_all(cfgs)
        fresh = [r for r in runs if not (r / EVAL).is_file()]
        one_shot = [r for r in fresh if "data.shots=1" in args.variants.get(r.parent.name, ())]
        if other := [r for r in fresh if r not in one_shot]:
            evaluate(other, spec(args.scenario, b))
        if one_shot:  # scored as trained: the target 1-shot (the ICL tasks are 1-shot for every method)
            evaluate(one_shot, spec(args.scenario, b, target_shots=1))
        done += runs
        answer(args, b, lr, seeds, done, out)


def answer(args, b: Budget, lr: float, seeds: list[int], runs: list[Path], out: Path) -> None:
    """`promot compare --seeds`'s table and frontier over `runs`, and the issue's goal answered."""
    from promot.report.frontier import console_frontier, frontier_points
    from promot.report.render import render
    from promot.report.tables import console_summary, load_runs

    views = load_runs(runs)
    print(f"\nmodel={args.model} scenario={args.scenario} lr={lr:g} seeds={seeds} budget={b}")
    print("\n".join(["", *console_summary(views), "", *console_frontier(views), ""]))
    if line := goal(frontier_points(views)):
        print(line, flush=True)
    scales = {f"{r.parent.name}/{r.name}": x for r in runs if (x := prompt_scale(r)) is not None}
    if scales:
        print("prompt row norm ÷ vocabulary row norm: " + ", ".join(f"{k} {x:.1f}×" for k, x in scales.items()))
    print(render(runs, out / "report"), flush=True)


def goal(front) -> str | None:
    """The issue's goal in one line: the best ProMoT variant (most ICL among those every seed of which reaches
    fine-tuning's mean target score within its item interval: the paper's claim is ICL kept *at* the target score,
    and a seed whose selection kept the untouched model keeps ICL by not learning the task) — its mean Δ ICL vs base
    (≥ −3?) and its ICL − finetune's with the seed-and-item interval (excludes 0?)."""
    from promot.report.frontier import REFERENCE, method_contrast, seeds_reaching

    ref = next((m for m in front.methods if m.name == REFERENCE and m.final), None)
    promots = [m for m in front.methods if m.method.startswith("promot") and m.final]
    if not (ref and promots):
        return None
    at_target = [m for m in promots if seeds_reaching(m, ref.final.target) == len(m.seeds)]
    best = max(at_target or promots, key=lambda m: m.final.icl)
    diff = method_contrast(best, ref)
    keeps = best.delta is not None and best.delta >= -3
    ci = diff[1] if diff and diff[1] else [float("nan")] * 2
    apart = ci[0] > 0
    tci = best.final.target_ci or [float("nan")] * 2
    reached = f"{seeds_reaching(best, ref.final.target)} of {len(best.seeds)} seeds reach it"
    return (f"goal (best ProMoT variant `{best.label}`"
            f"{'' if at_target else ': NO variant reaches finetune’s target in every seed; most ICL shown'}): "
            f"mean target {best.final.target:.1f} [{tci[0]:.1f}, {tci[1]:.1f}] vs {REFERENCE} {ref.final.target:.1f} "
            f"({reached}); "
            f"mean Δ ICL vs base {best.delta:+.1f} (≥ −3: {'yes' if keeps else 'no'}); "
            f"− {REFERENCE} {diff[0]:+.1f} "
            f"[{ci[0]:+.1f}, {ci[1]:+.1f}] over seeds and items (excludes 0: {'yes' if apart else 'no'}) → "
            f"{'MET' if at_target and keeps and apart else 'NOT MET'}")


def prompt_scale(run: Path) -> float | None:
    """The run's saved prompt's scale (`promot.prompt.init.prompt_scale`; None without a prompt), from its files:
    runs trained before run.json recorded it at stage 1 have it too."""
    from safetensors import safe_open

    from promot.prompt.init import prompt_scale as scale
    from promot.prompt.peft_io import KEY, WEIGHTS_NAME
    from promot.rundir import MODEL, PROMPT

    if not (run / PROMPT / WEIGHTS_NAME).is_file():
        return None
    with safe_open(run / PROMPT / WEIGHTS_NAME, "pt") as f:
        prompt = f.get_tensor(KEY)
    for shard in sorted((run / MODEL).glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            if name := next((k for k in f.keys() if k.endswith("embed_tokens.weight")), None):
                return scale(prompt, f.get_tensor(name))
    return None


def quiet_logs() -> None:
    """One progress line per stage and eval variant, as the CLI prints them (the libraries' own logs off)."""
    import logging

    from promot.progress import set_verbose

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    set_verbose(False)
    for noisy in ("transformers", "peft", "accelerate", "datasets", "lm_eval", "lm-eval", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def budget_field(text: str) -> tuple[str, int]:
    """`field=value` for --budget: a Budget field and a positive integer, or argparse's one-line error."""
    key, _, value = text.partition("=")
    names = [f.name for f in dataclasses.fields(Budget)]
    if key not in names or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want FIELD=N with N >= 1, FIELD one of {', '.join(names)}")
    return key, int(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="chat")
    ap.add_argument("--scan-lrs", type=lambda s: [float(x) for x in s.split(",")], default=list(SCAN_LRS),
                    help="stage-2 lrs of the scan (scaled Adafactor)")
    ap.add_argument("--lr", type=float, help="skip the scan: bench at this stage-2 lr")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    ap.add_argument("--no-one-shot", action="store_true", help=f"leave out {ONE_SHOT}")
    ap.add_argument("--variant", action="append", default=[], type=variant, metavar="promot-NAME:FIELD=VALUE[;…]",
                    help="a further ProMoT variant, trained after the others (repeatable)")
    ap.add_argument("--scan-only", action="store_true")
    ap.add_argument("--estimate", action="store_true", help="print the plan and its estimated wall time, run nothing")
    ap.add_argument("--answer", action="store_true",
                    help="with --lr: the table and the goal over the bench's evaluated runs so far; trains nothing")
    ap.add_argument("--smoke", action="store_true", help="world-tiny, has_a, a trivial budget: checks it runs")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--budget", action="append", default=[], metavar="field=value", type=budget_field,
                    help="change a Budget field for this call, e.g. eval_limit=24 (repeatable)")
    args = ap.parse_args()
    args.variants = {**({} if args.no_one_shot else {ONE_SHOT: ONE_SHOT_OVERRIDES}), **dict(args.variant)}
    b = SMOKE if args.smoke else Budget()
    b = dataclasses.replace(b, **dict(args.budget))
    if args.smoke:
        args.model, args.scenario, args.seeds = "world-tiny", "has_a", 2
        args.scan_lrs = args.scan_lrs[:2]
    root = args.out or REPO / "runs" / f"seeds-{args.model}-{args.scenario}{'-smoke' if args.smoke else ''}"
    if args.answer:
        if not args.lr:
            ap.error("--answer needs --lr (the bench's lr)")
        from promot.rundir import EVAL

        quiet_logs()
        out = root / f"bench-lr{args.lr:g}"
        done = sorted(r.parent for r in out.glob(f"*/seed-*/{EVAL}"))
        if not done:
            ap.exit(2, f"seeds.py: error: {out}: no evaluated run (*/seed-*/{EVAL}) to answer from\n")
        return answer(args, b, args.lr, sorted({int(r.name[5:]) for r in done}), done, out)
    est = estimate(b, 0 if args.lr else len(args.scan_lrs), args.seeds, len(args.variant))
    total = est["bench"] * (not args.scan_only) + est["scan"]
    print(f"plan: {args.model}, `{args.scenario}`; scan {'skipped' if args.lr else args.scan_lrs} (finetune, seed 0); "
          f"bench {[*args.methods, *args.variants]} × {args.seeds} seeds; {b}")
    print(f"estimated wall time (2-core AVX2 prior, SmolLM2-135M; other jobs on the cores make it longer): scan "
          f"{est['scan'] / 60:.0f} min + bench {est['bench'] / 60:.0f} min = {total / 3600:.1f} h", flush=True)
    if args.estimate:
        return
    quiet_logs()
    clock = Clock(total)
    lr = args.lr or scan(args, b, root)
    clock.report(est["scan"], "scan")
    if not args.scan_only:
        bench(args, b, root, lr)
        clock.report(total, "bench")


if __name__ == "__main__":
    main()
