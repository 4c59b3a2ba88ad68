"""Could prompt-lookup drafts shorten the greedy pool's decode on case (a)? Counted, not built.

Runs the pool once on case (a)'s 400 captured requests (`bench/eval_pool_timing.py` captures them: SmolLM2-135M-Instruct,
`mini`, 1-shot, chat template, 40 items per task), then replays each row's greedy continuation: at every decode step
a draft of the next k tokens is looked up after the latest earlier occurrence of the row's last n tokens (1 ≤ n), as
prompt-lookup decoding does, and one verifying forward yields the accepted drafts plus one token. It prints how many
per-row decode steps remain of the plain pool's (the first token comes from prefill in both).

    python bench/eval_prompt_lookup.py
"""
from __future__ import annotations

import argparse
import os
import sys


def draft(seq: list[int], k: int, n: int) -> list[int]:
    """The k tokens after the latest earlier occurrence of seq's last m tokens, for the longest m ≤ n that occurs."""
    for m in range(n, 0, -1):
        tail = seq[-m:]
        for i in range(len(seq) - m - 1, -1, -1):
            if seq[i:i + m] == tail:
                return seq[i + m:i + m + k]
    return []


def verify_steps(context: list[int], generated: list[int], k: int, n: int) -> int:
    """Forwards one row needs after prefill when each step verifies a k-token draft (greedy: output unchanged)."""
    i, steps = 1, 0
    while i < len(generated):
        d, accepted = draft(context + generated[:i], k, n), 0
        while accepted < len(d) and i + accepted < len(generated) and d[accepted] == generated[i + accepted]:
            accepted += 1
        i += accepted + 1
        steps += 1
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", default="runs/pool-timing/requests-mini-chat.json")
    args = ap.parse_args()
    if not args.requests:
        print("error: --requests: an empty path", file=sys.stderr)
        raise SystemExit(2)
    if not os.path.exists(args.requests):
        print(f"error: {args.requests}: no captured requests; run bench/eval_pool_timing.py first", file=sys.stderr)
        raise SystemExit(2)
    from eval_pool_timing import _load  # bench/ is on the path when this script runs

    requests = _load(args.requests)

    import torch

    from promot.models import load_model
    from promot.prompt import PromptedLM
    from promot.prompt.greedy_pool import GreedyPool

    torch.set_num_threads(2)
    loaded = load_model("smollm2-135m-instruct")
    out = GreedyPool(PromptedLM(loaded.model.eval(), None).eval(), loaded.tokenizer, requests, 16).run()
    plain = sum(max(0, len(o) - 1) for o in out)
    print(f"{len(out)} rows, {sum(map(len, out)) / len(out):.2f} new tokens a row, {plain} decode row-steps plain")
    for k in (2, 3, 4):
        for n in (1, 2, 3):
            steps = sum(verify_steps(list(r.ids), o, k, n) for r, o in zip(requests, out))
            print(f"draft {k} tokens after the last {n}: {steps} row-steps ({steps / plain:.2f} of plain)")


if __name__ == "__main__":
    main()
