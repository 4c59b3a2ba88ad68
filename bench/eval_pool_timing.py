"""The greedy pool alone on one evaluation pass's requests: prefill, decode and bookkeeping, forward by forward.

Captures the greedy requests that one `run_lm_eval` pass of case (a) hands the pool (SmolLM2-135M-Instruct, `mini`,
1-shot, chat template, 40 items per task: 400 requests; saved to --requests and reused), then runs `GreedyPool` on
them --repeats times and prints each run's time split into prefill forwards, decode forwards and the rest. It times
whichever `promot` is importable, so two versions of the pool compare by alternating processes:

    git worktree add /tmp/other <commit>
    for i in 1 2 3; do python bench/eval_pool_timing.py; PYTHONPATH=/tmp/other/src python bench/eval_pool_timing.py; done
"""
from __future__ import annotations

import argparse
import json
import os
import time


def _capture(model, tok, path: str) -> None:
    from promot.evaluate.runner import run_lm_eval, split_tasks, task_manager
    from promot.evaluate.spec import EvalSpec
    from promot.prompt import PromptedLM, greedy_pool

    manager = task_manager(None, ["mini"])
    spec = EvalSpec(tasks=["mini"], shots=[1], limit=40, batch_size=16, bf16=False, apply_chat_template=True,
                    fewshot_as_multiturn=True)
    icl, _ = split_tasks(spec, manager)
    spec = EvalSpec(**{**spec.__dict__, "tasks": icl})
    seen: list = []

    class Handed(Exception):
        pass

    def grab(self, lm, tokenizer, requests, *a, **k):
        seen.extend([list(r.ids), r.max_new, list(r.stops)] for r in requests)
        raise Handed

    shipped, greedy_pool.GreedyPool.__init__ = greedy_pool.GreedyPool.__init__, grab
    try:
        run_lm_eval(PromptedLM(model, None).eval(), tok, spec, 1, manager)
    except Handed:
        pass
    finally:
        greedy_pool.GreedyPool.__init__ = shipped
    with open(path, "w") as f:
        json.dump(seen, f)


def _timed(pool, model) -> str:
    """One pool run, its prefill forwards (the pool's `_forward`) told from its decode forwards (the rest)."""
    prefills: list[tuple[int, float]] = []
    every: list[float] = []
    shipped_forward, model_forward = pool._forward, model.forward

    def prefill(seqs, mask, cache, start):
        t = time.perf_counter()
        out = shipped_forward(seqs, mask, cache, start)
        prefills.append((len(seqs) * len(seqs[0]), time.perf_counter() - t))
        return out

    def forward(*a, **k):
        t = time.perf_counter()
        out = model_forward(*a, **k)
        every.append(time.perf_counter() - t)
        return out

    pool._forward, model.forward = prefill, forward
    try:
        t = time.perf_counter()
        pool.run()
        total = time.perf_counter() - t
    finally:
        model.forward = model_forward
    pre = sum(s for _, s in prefills)
    decode, positions = sum(every) - pre, sum(n for n, _ in prefills)
    return (f"{total:.2f} s  prefill {pre:.2f} s ({positions} positions, {len(prefills)} forwards, "
            f"{positions / pre:.0f}/s)  decode {decode:.2f} s ({len(every) - len(prefills)} forwards)  "
            f"rest {total - pre - decode:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", default="runs/pool-timing/requests-mini-chat.json")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import torch

    from promot.models import load_model
    from promot.prompt import PromptedLM
    from promot.prompt.greedy_pool import GreedyPool, Request

    torch.set_num_threads(2)
    loaded = load_model("smollm2-135m-instruct")
    model, tok = loaded.model.eval(), loaded.tokenizer
    if not os.path.exists(args.requests):
        os.makedirs(os.path.dirname(args.requests) or ".", exist_ok=True)
        _capture(model, tok, args.requests)
    with open(args.requests) as f:
        requests = [Request(ids, max_new, tuple(stops)) for ids, max_new, stops in json.load(f)]
    lm = PromptedLM(model, None).eval()
    for run in range(args.repeats):
        print(f"run {run}: {_timed(GreedyPool(lm, tok, requests, args.batch_size), model)}", flush=True)


if __name__ == "__main__":
    main()
