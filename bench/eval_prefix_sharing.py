"""How much prefill a prefix cache could still save in `promot eval`: counted on the requests themselves.

The greedy pool encodes once the prefix that every request shares. This bench takes the requests one pass hands
the pool (no forward runs) and counts the prefill positions of six schedules, padding included, with the pool's
batches (the batch size, then refills of half of it):
- `global prefix` (the pool as shipped), requests longest first;
- `batch prefix`: each refill also shares the prefix common to its own rows;
- `sorted batch prefix`: the same with the requests in token order instead of longest first, so that a refill's
  rows share as much as they can (and pad to each other's lengths);
- `first use`: each request starts from the deepest prefix it shares with another request once some earlier row
  has computed it (a prefix tree filled as it goes);
- `tree first`: every shared prefix computed up front, once (its positions counted on their own), each request
  prefilling only its own suffix, requests ordered by that suffix's length;
- `tree as built`: the same as the pool runs it (`promot/prompt/prefix_tree.py`), the prefixes prefilled in batches
  of the batch size, each padded to its longest.

    python bench/eval_prefix_sharing.py --case mini-chat --json bench/eval_prefix_sharing_mini_chat.json
"""
from __future__ import annotations

import argparse
import json

from promot.prompt.prefix_tree import prefix_tree, shared_length


def _common(seqs: list[list[int]]) -> int:
    """The prefix all share, leaving each at least one token of its own (as the pool does)."""
    n = min(len(s) for s in seqs) - 1
    return max(0, min([n, *(shared_length(seqs[0], s) for s in seqs[1:])]))


def _batches(order: list[int], size: int) -> list[list[int]]:
    out, i, k = [], 0, size
    while i < len(order):
        out.append(order[i : i + k])
        i, k = i + k, max(1, size // 2)
    return out


def schedules(seqs: list[list[int]], size: int) -> dict:
    g = _common(seqs)
    lex = sorted(range(len(seqs)), key=lambda r: seqs[r])
    plan = prefix_tree(seqs)  # what the pool builds: each request's deepest prefix shared with another
    deepest = {r: len(plan.nodes[n]) for r, n in enumerate(plan.start)}
    longest = sorted(range(len(seqs)), key=lambda r: -len(seqs[r]))

    def padded(order, start) -> int:
        return sum(max(len(seqs[r]) - start(b, r) for r in b) * len(b) for b in _batches(order, size))

    out = {"requests": len(seqs), "context positions": sum(map(len, seqs)), "shared by all": g}
    out["global prefix"] = g + padded(longest, lambda b, r: g)
    for name, order in (("batch prefix", longest), ("sorted batch prefix", lex)):
        own = {tuple(b): max(_common([seqs[r] for r in b]) if len(b) > 1 else g, g) for b in _batches(order, size)}
        out[name] = g + sum(o - g for o in own.values()) + padded(order, lambda b, r: own[tuple(b)])
    done: set[tuple] = {tuple(seqs[0][:g])}
    first = g
    for b in _batches(longest, size):
        starts = [max(l for l in [g, *range(len(seqs[r]))] if tuple(seqs[r][:l]) in done) for r in b]
        first += max(len(seqs[r]) - s for r, s in zip(b, starts)) * len(b)
        done |= {tuple(seqs[r][: deepest[r]]) for r in b}
    out["first use"] = first
    own = [len(n) - len(plan.nodes[p]) if p >= 0 else 0 for n, p in zip(plan.nodes, plan.parent)]
    by_suffix = plan.order(seqs)
    rows = padded(by_suffix, lambda b, r: deepest[r])
    out["tree first"] = g + sum(own) + rows
    out["tree as built (its prefixes in padded batches)"] = g + sum(
        max(own[n] for n in wave) * len(wave) for wave in plan.waves(size)) + rows
    out["tree nodes"], out["tree node positions"] = len(plan.nodes) - 1, sum(map(len, plan.nodes[1:]))
    out["unique positions (a perfect prefix tree, no padding)"] = sum(map(len, seqs)) - sum(
        shared_length(seqs[lex[i]], seqs[lex[i - 1]]) for i in range(1, len(lex)))
    return out


def main() -> None:
    import torch

    from promot.evaluate.runner import run_lm_eval, split_tasks, task_manager
    from promot.evaluate.spec import EvalSpec
    from promot.models import load_model
    from promot.prompt import PromptedLM
    from promot.prompt import greedy_pool

    cases = {"mini-chat": ("smollm2-135m-instruct", "mini", 1, 40, 16, True),
             "world": ("world-tiny", "world", 4, 48, 64, False)}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(cases), default="mini-chat")
    ap.add_argument("--json")
    args = ap.parse_args()
    name, tasks, shots, limit, batch, chat = cases[args.case]
    torch.set_num_threads(2)
    loaded = load_model(name)
    manager = task_manager(None, [tasks])
    spec = EvalSpec(tasks=[tasks], shots=[shots], limit=limit, batch_size=batch, bf16=False,
                    apply_chat_template=chat, fewshot_as_multiturn=chat)
    icl, _ = split_tasks(spec, manager)
    spec = EvalSpec(**{**spec.__dict__, "tasks": icl})
    seen: list[list[int]] = []

    class Handed(Exception):
        pass

    def grab(self, lm, tokenizer, requests, *a, **k):
        seen.extend(list(r.ids) for r in requests)
        raise Handed

    greedy_pool.GreedyPool.__init__ = grab
    try:
        run_lm_eval(PromptedLM(loaded.model.eval(), None).eval(), loaded.tokenizer, spec, shots, manager)
    except Handed:
        pass
    out = {"case": args.case, "batch size": batch, **schedules(seen, batch)}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
