"""How much prefill a prefix cache could still save in `promot eval`: counted on the requests themselves.

The greedy pool encodes once the prefix that every request shares. This bench takes the requests one pass hands
the pool (no forward runs) and counts the prefill positions of five schedules, padding included, with the pool's
batches (the batch size, then refills of half of it):
- `global prefix` (the pool as shipped), requests longest first;
- `batch prefix`: each refill also shares the prefix common to its own rows;
- `sorted batch prefix`: the same with the requests in token order instead of longest first, so that a refill's
  rows share as much as they can (and pad to each other's lengths);
- `first use`: each request starts from the deepest prefix it shares with another request once some earlier row
  has computed it (a prefix tree filled as it goes);
- `tree first`: every shared prefix computed up front, once (its positions counted on their own), each request
  prefilling only its own suffix, requests ordered by that suffix's length.

    python bench/eval_prefix_sharing.py --case mini-chat --json bench/eval_prefix_sharing_mini_chat.json
"""
from __future__ import annotations

import argparse
import json


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _common(seqs: list[list[int]]) -> int:
    """The prefix all share, leaving each at least one token of its own (as the pool does)."""
    n = min(len(s) for s in seqs) - 1
    return max(0, min([n, *(_lcp(seqs[0], s) for s in seqs[1:])]))


def _batches(order: list[int], size: int) -> list[list[int]]:
    out, i, k = [], 0, size
    while i < len(order):
        out.append(order[i : i + k])
        i, k = i + k, max(1, size // 2)
    return out


def schedules(seqs: list[list[int]], size: int) -> dict:
    g = _common(seqs)
    lex = sorted(range(len(seqs)), key=lambda r: seqs[r])
    deepest = {}  # each request's deepest prefix shared with another request
    for i, r in enumerate(lex):
        near = [_lcp(seqs[r], seqs[lex[j]]) for j in (i - 1, i + 1) if 0 <= j < len(lex)]
        deepest[r] = max(g, min(max(near, default=g), len(seqs[r]) - 1))
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
    nodes = sorted({tuple(seqs[r][: deepest[r]]) for r in range(len(seqs))}, key=len)
    tree = 0
    for i, node in enumerate(nodes):  # each node extends its deepest ancestor among the nodes before it
        tree += len(node) - max([g, *(len(a) for a in nodes[:i] if node[: len(a)] == a)])
    by_suffix = sorted(range(len(seqs)), key=lambda r: -(len(seqs[r]) - deepest[r]))
    out["tree first"] = g + tree + padded(by_suffix, lambda b, r: deepest[r])
    out["tree nodes"], out["tree node positions"] = len(nodes), sum(map(len, nodes))
    out["unique positions (a perfect prefix tree, no padding)"] = sum(map(len, seqs)) - sum(
        _lcp(seqs[lex[i]], seqs[lex[i - 1]]) for i in range(1, len(lex)))
    return out


def handed_requests(model, tokenizer, tasks: str, shots: int, limit: int, batch: int, chat: bool) -> list:
    """The greedy requests one `run_lm_eval` pass hands the pool (as `greedy_pool.Request`s), no forward run."""
    from promot.evaluate.runner import run_lm_eval, split_tasks, task_manager
    from promot.evaluate.spec import EvalSpec
    from promot.prompt import PromptedLM, greedy_pool

    manager = task_manager(None, [tasks])
    spec = EvalSpec(tasks=[tasks], shots=[shots], limit=limit, batch_size=batch, bf16=False,
                    apply_chat_template=chat, fewshot_as_multiturn=chat)
    icl, _ = split_tasks(spec, manager)
    spec = EvalSpec(**{**spec.__dict__, "tasks": icl})
    seen: list = []

    class Handed(Exception):
        pass

    def grab(self, lm, tokenizer, requests, *a, **k):
        seen.extend(requests)
        raise Handed

    shipped, greedy_pool.GreedyPool.__init__ = greedy_pool.GreedyPool.__init__, grab
    try:
        run_lm_eval(PromptedLM(model.eval(), None).eval(), tokenizer, spec, shots, manager)
    except Handed:
        pass
    finally:
        greedy_pool.GreedyPool.__init__ = shipped
    return seen


def main() -> None:
    import torch

    from promot.models import load_model

    cases = {"mini-chat": ("smollm2-135m-instruct", "mini", 1, 40, 16, True),
             "world": ("world-tiny", "world", 4, 48, 64, False)}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(cases), default="mini-chat")
    ap.add_argument("--json")
    args = ap.parse_args()
    name, tasks, shots, limit, batch, chat = cases[args.case]
    torch.set_num_threads(2)
    loaded = load_model(name)
    seen = [list(r.ids) for r in handed_requests(loaded.model, loaded.tokenizer, tasks, shots, limit, batch, chat)]
    out = {"case": args.case, "batch size": batch, **schedules(seen, batch)}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
