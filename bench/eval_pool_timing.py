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
import sys
import time


def _capture(model, tok, path: str) -> None:
    """Case (a)'s requests to `path`, written whole or not at all (two processes may capture at once)."""
    # bench/ is on the path when this script runs
    from eval_prefix_sharing import handed_requests

    seen = [[list(r.ids), r.max_new, list(r.stops)] for r in handed_requests(model, tok, "mini", 1, 40, 16, True)]
    part = f"{path}.{os.getpid()}.part"
    with open(part, "w") as f:
        json.dump(seen, f)
    os.replace(part, path)


def _load(path: str) -> list:
    """The captured requests, or one line and exit 2 if the file is not what `_capture` writes."""
    from promot.prompt.greedy_pool import Request

    if os.path.isdir(path):
        print(f"error: {path}: a directory, not a requests file", file=sys.stderr)
        raise SystemExit(2)
    try:
        with open(path) as f:
            return [Request(list(ids), int(max_new), tuple(stops)) for ids, max_new, stops in json.load(f)]
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {path}: not a requests file written by bench/eval_pool_timing.py ({e}); delete it and run that "
              "script to capture anew", file=sys.stderr)
        raise SystemExit(2) from None


def _timed(pool, model) -> str:
    """One pool run, its prefill forwards (the pool's `_forward`) told from its decode forwards (the rest)."""
    prefills: list[tuple[int, float]] = []
    every: list[float] = []
    shipped_forward, model_forward = pool._forward, model.forward

    def prefill(seqs, *args, **kwargs):
        t = time.perf_counter()
        out = shipped_forward(seqs, *args, **kwargs)
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


def _positive(text: str) -> int:
    n = int(text) if text.strip().isdigit() else 0
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: a whole number from 1 to 1000")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", default="runs/pool-timing/requests-mini-chat.json")
    ap.add_argument("--repeats", type=_positive, default=2)
    ap.add_argument("--batch-size", type=_positive, default=16)
    args = ap.parse_args()
    known = _load(args.requests) if os.path.exists(args.requests) else None  # a bad file stops before the model loads

    import torch

    from promot.models import load_model
    from promot.prompt import PromptedLM
    from promot.prompt.greedy_pool import GreedyPool

    torch.set_num_threads(2)
    loaded = load_model("smollm2-135m-instruct")
    model, tok = loaded.model.eval(), loaded.tokenizer
    if known is None:
        os.makedirs(os.path.dirname(args.requests) or ".", exist_ok=True)
        _capture(model, tok, args.requests)
    requests = known if known is not None else _load(args.requests)
    lm = PromptedLM(model, None).eval()
    for run in range(args.repeats):
        print(f"run {run}: {_timed(GreedyPool(lm, tok, requests, args.batch_size), model)}", flush=True)


if __name__ == "__main__":
    main()
