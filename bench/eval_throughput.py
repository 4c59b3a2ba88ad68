"""Eval throughput: promot's evaluation pass ÷ lm-eval's HFLM, same model, tasks, batch size and items, in one run.

Classes, timed alternately after one untimed warm-up run of each (dataset building, first calls), medians of
--repeats:
- `lm-eval HFLM`: lm-eval's own class through plain `simple_evaluate`, as a user of lm-eval runs it;
- `promot, generate`: promot's pass (`run_lm_eval`: what eval, compare, the monitor and the demo call) with the greedy
  pool off, i.e. HFLM's batches of `generate`: what promot did before;
- `promot`: promot's pass as shipped.
Every timed run's generations are compared with HFLM's, item for item; the bench fails if one differs.

    python bench/eval_throughput.py --case world                 # (b) the world suite, 4-shot, the demo's batch
    python bench/eval_throughput.py --case mini-chat --limit 20  # (a) SmolLM2-135M-Instruct, mini, 1-shot, chat
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

CASES = {  # model, task group, shots, default limit, batch size, chat template
    "mini-chat": ("smollm2-135m-instruct", "mini", 1, 40, 16, True),
    "world": ("world-tiny", "world", 4, 48, 64, False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="world")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the timings here")
    args = ap.parse_args()

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from promot.evaluate.runner import run_lm_eval, split_tasks, task_manager
    from promot.evaluate.spec import EvalSpec
    from promot.models import load_model
    from promot.progress import quiet_lm_eval
    from promot.prompt import PromptedLM

    torch.set_num_threads(2)
    name, group, shots, limit, batch, chat = CASES[args.case]
    limit = args.limit or limit
    loaded = load_model(name)
    model, tok = loaded.model.eval(), loaded.tokenizer
    manager = task_manager(None, [group])
    spec = EvalSpec(tasks=[group], shots=[shots], limit=limit, batch_size=batch, bf16=False,
                    apply_chat_template=chat, fewshot_as_multiturn=chat)
    tasks, _ = split_tasks(spec, manager)
    spec = EvalSpec(**{**spec.__dict__, "tasks": tasks})

    def hflm():
        with quiet_lm_eval():
            return simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=batch, device="cpu"),
                                   tasks=tasks, num_fewshot=shots, limit=limit, task_manager=manager,
                                   log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                                   torch_random_seed=0, fewshot_random_seed=0, apply_chat_template=chat,
                                   fewshot_as_multiturn=chat)

    def promot(pool: bool):
        return lambda: run_lm_eval(PromptedLM(model, None), tok, spec, shots, manager, greedy_pool=pool)

    classes = {"lm-eval HFLM": hflm, "promot, generate": promot(False), "promot": promot(True)}
    times: dict[str, list[float]] = {k: [] for k in classes}
    scores: dict[str, float] = {}
    reference: dict | None = None
    for run in classes.values():
        run()  # warm-up, untimed
    for _ in range(args.repeats):
        for label, run in classes.items():
            started = time.perf_counter()
            res = run()
            times[label].append(time.perf_counter() - started)
            gens = {(t, s["doc_id"]): s["resps"][0][0] for t, ss in res["samples"].items() for s in ss}
            reference = reference or gens
            if gens != reference:
                raise SystemExit(f"{label}: {sum(gens[k] != reference[k] for k in reference)} generations differ")
            scores[label] = statistics.mean(r["exact_match,none"] for t, r in res["results"].items() if t in tasks)
    items = len(reference or {})
    base = statistics.median(times["lm-eval HFLM"])
    print(f"case={args.case} model={name} tasks={len(tasks)} items={items} shots={shots} batch={batch} chat={chat} "
          f"repeats={args.repeats} machine={platform.processor() or platform.machine()} torch={torch.__version__}")
    print(f"{'class':<20}{'median s':>10}{'items/s':>10}{'× HFLM':>8}{'exact_match':>13}")
    rows = {}
    for label in classes:
        med = statistics.median(times[label])
        rows[label] = {"median_s": med, "times": times[label], "items_per_s": items / med, "vs_hflm": base / med,
                       "exact_match": scores[label]}
        print(f"{label:<20}{med:>10.2f}{items / med:>10.2f}{base / med:>8.2f}{scores[label]:>13.3f}")
    print("generations: identical to HFLM's, item for item, in every timed run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"case": args.case, "model": name, "tasks": tasks, "items": items, "shots": shots,
                       "batch": batch, "chat": chat, "repeats": args.repeats, "classes": rows}, f, indent=1)


if __name__ == "__main__":
    main()
