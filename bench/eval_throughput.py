"""Eval throughput of promot's lm-eval model class (PromptedHFLM, no prompt) ÷ lm-eval's own HFLM, same model,
same tasks, same batch size, in one run (runs alternate; medians). Goal: >= 1.0 (the soft-prompt path costs nothing
when no prompt is attached). Also times PromptedHFLM *with* a prompt, for reference.

    python bench/eval_throughput.py                                  # SmolLM2-135M, mini suite subset, CPU
    python bench/eval_throughput.py --limit 8 --repeats 1            # a quick look
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", default="mini_capitals,mini_arithmetic,mini_sentiment,mini_sort3")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default="auto",
                    help="bf16 autocast for every class (default auto: where this machine runs bf16 natively)")
    args = ap.parse_args()

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from promot.evaluate.lm_eval_model import PromptedHFLM
    from promot.evaluate.runner import task_manager
    from promot.models import load_model
    from promot.precision import resolve_bf16
    from promot.prompt import PromptedLM, init_prompt

    torch.set_num_threads(2)
    loaded = load_model(args.model)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompt = init_prompt("vocab", args.prompt_length, model, tok)
    manager = task_manager(None)
    tasks = args.tasks.split(",")
    kw = {"tokenizer": tok, "batch_size": args.batch_size, "device": "cpu",
          "mixed_precision_dtype": torch.bfloat16 if resolve_bf16(args.bf16) else None}
    makers = {
        "lm-eval HFLM": lambda: HFLM(pretrained=model, **kw),
        "promot, no prompt": lambda: PromptedHFLM(PromptedLM(model, None), **kw),
        "promot, prompt on": lambda: PromptedHFLM(PromptedLM(model, prompt), **kw),
    }
    times: dict[str, list[float]] = {k: [] for k in makers}
    scores: dict[str, float] = {}
    n_items = len(tasks) * args.limit

    def run(lm):
        return simple_evaluate(model=lm, tasks=tasks, num_fewshot=args.shots, limit=args.limit, task_manager=manager,
                               bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                               fewshot_random_seed=0, verbosity="ERROR")

    run(makers["lm-eval HFLM"]())  # warm-up, untimed: dataset building and first-call costs
    for _ in range(args.repeats):
        for name, make in makers.items():
            lm = make()
            t = time.perf_counter()
            res = run(lm)
            times[name].append(time.perf_counter() - t)
            scores[name] = statistics.mean(v["exact_match,none"] for k, v in res["results"].items() if k in tasks)
    print(f"model={args.model} tasks={args.tasks} limit={args.limit} shots={args.shots} bf16={args.bf16} "
          f"batch={args.batch_size} repeats={args.repeats} (items per run: {n_items})")
    print(f"{'class':<20}{'median s':>10}{'items/s':>10}{'exact_match':>13}")
    for name in makers:
        med = statistics.median(times[name])
        print(f"{name:<20}{med:>10.2f}{n_items / med:>10.2f}{scores[name]:>13.3f}")
    ratio = statistics.median(times["lm-eval HFLM"]) / statistics.median(times["promot, no prompt"])
    print(f"throughput promot (no prompt) ÷ lm-eval HFLM: {ratio:.3f}")


if __name__ == "__main__":
    main()
