"""Where `promot eval`'s time goes: one lm-eval pass through promot's model class, broken down by what it spends.

Times one `run_lm_eval` (what `promot eval`, `compare`, the monitor and the demo call per shot count) after an
untimed warm-up, with timers around the model class's calls:
- the model's prefill and decode forwards (split by whether a forward sees one new position per row), HFLM's
  tokenisation (`tok_encode`, `tok_batch_encode`, `tok_decode`), the rest of generation (HF's per-step loop: logits
  processors, stopping criteria, cache bookkeeping; or the greedy pool's), and everything else (lm-eval: requests,
  few-shot contexts, metrics);
- the work: prefill positions and decode row-steps computed, and with HFLM's batches of `generate`
  (--no-greedy-pool, what promot did before) the decode row-steps run for rows that had already stopped.

    python bench/eval_profile.py --case mini-chat --no-greedy-pool   # SmolLM2-135M-Instruct, mini, 1-shot, chat
    python bench/eval_profile.py --case world --no-greedy-pool       # the world model and suite, 4-shot (the demo's)
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from collections import defaultdict

CASES = {  # model, tasks, shots, limit, batch size, chat template
    "mini-chat": ("smollm2-135m-instruct", "mini", 1, 40, 16, True),
    "world": ("world-tiny", "world", 4, 48, 64, False),
}


class Timers:
    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)
        self.n: dict[str, int] = defaultdict(int)

    def wrap(self, obj, name: str, key: str, split=None) -> None:
        """Time every call of obj.name under `key` (or under split(args, kwargs) when given)."""
        inner = getattr(obj, name)

        @functools.wraps(inner)  # keeps the signature: generate() reads forward's to pass logits_to_keep
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                k = split(args, kwargs) if split else key
                self.s[k] += time.perf_counter() - t
                self.n[k] += 1

        setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="mini-chat")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--prompt-length", type=int, default=0, help="attach a vocab-initialised prompt (0: none)")
    ap.add_argument("--greedy-pool", action=argparse.BooleanOptionalAction, default=True,
                    help="promot's pass as shipped (default), or --no-greedy-pool: HFLM's batches of generate")
    ap.add_argument("--json", help="also write the breakdown here")
    args = ap.parse_args()

    import torch

    from promot.evaluate.lm_eval_model import PromptedHFLM
    from promot.evaluate.runner import run_lm_eval, split_tasks, task_manager
    from promot.evaluate.spec import EvalSpec
    from promot.models import load_model
    from promot.prompt import PromptedLM, init_prompt

    torch.set_num_threads(2)
    name, tasks, shots, limit, batch, chat = CASES[args.case]
    limit = args.limit or limit
    loaded = load_model(name)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompt = init_prompt("vocab", args.prompt_length, model, tok) if args.prompt_length else None
    lm = PromptedLM(model, prompt).eval()
    manager = task_manager(None, [tasks])
    spec = EvalSpec(tasks=[tasks], shots=[shots], limit=limit, batch_size=batch, bf16=False,
                    apply_chat_template=chat, fewshot_as_multiturn=chat)
    icl, _ = split_tasks(spec, manager)
    spec = EvalSpec(**{**spec.__dict__, "tasks": icl})
    run_lm_eval(lm, tok, spec, shots, manager)  # warm-up: dataset building, first-call costs

    t = Timers()
    waste = defaultdict(int)
    cls = PromptedHFLM
    saved = {k: getattr(cls, k) for k in ("tok_encode", "tok_batch_encode", "tok_decode", "_model_generate",
                                           "generate_until")}
    for k in ("tok_encode", "tok_batch_encode", "tok_decode"):
        t.wrap(cls, k, "tokenisation")
    t.wrap(cls, "generate_until", "generate")
    forward = model.forward

    @functools.wraps(forward)  # keeps the signature: generate() reads forward's to pass logits_to_keep
    def counted_forward(*a, **kw):
        shape = _shape(a, kw)
        key = "forward, decode" if shape[1] == 1 else "forward, prefill"
        waste["decode row-steps" if shape[1] == 1 else "prefill positions"] += shape[0] * shape[1]
        started = time.perf_counter()
        try:
            return forward(*a, **kw)
        finally:
            t.s[key] += time.perf_counter() - started
            t.n[key] += 1

    model.forward = counted_forward
    inner_generate = cls._model_generate

    def counted(self, context, max_length, stop, **kw):
        """HFLM's batches: how many decode row-steps ran for rows that had already stopped."""
        out = inner_generate(self, context, max_length, stop, **kw)
        new = out[:, context.shape[1]:].tolist()
        steps = len(new[0]) if new else 0
        for row in new:
            text, used = "", steps
            for i, tok_id in enumerate(row):
                text += self.tok_decode([tok_id], skip_special_tokens=False)
                if tok_id in (self.eot_token_id, self.tokenizer.pad_token_id) or any(s in text for s in stop):
                    used = i + 1
                    break
            waste["decode row-steps after the row stopped"] += steps - used
        return out

    cls._model_generate = counted
    start = time.perf_counter()
    res = run_lm_eval(lm, tok, spec, shots, manager, greedy_pool=args.greedy_pool)
    total = time.perf_counter() - start
    for k, v in saved.items():
        setattr(cls, k, v)
    model.forward = forward

    gen = t.s["generate"]  # generate_until, all of it: tokenisation inside it is counted on its own line
    fwd = t.s["forward, prefill"] + t.s["forward, decode"]
    parts = {
        "forward, prefill": t.s["forward, prefill"],
        "forward, decode": t.s["forward, decode"],
        "generation besides the forwards (loop, stop checks, cache)": gen - fwd - t.s["tokenisation"],
        "tokenisation (HFLM's tok_encode / tok_batch_encode / tok_decode)": t.s["tokenisation"],
        "lm-eval besides generate_until (requests, contexts, metrics)": total - gen,
    }
    n_items = sum(len(v) for v in res["samples"].values())
    print(f"case={args.case} model={name} tasks={len(icl)} items={n_items} shots={shots} batch={batch} "
          f"chat={chat} prompt={args.prompt_length} greedy_pool={args.greedy_pool} total {total:.2f} s")
    print(f"{'part':<64}{'s':>8}{'%':>7}{'calls':>8}")
    for k, v in parts.items():
        calls = t.n.get(k, "")
        print(f"{k:<64}{v:>8.2f}{100 * v / total:>7.1f}{calls!s:>8}")
    for k, v in waste.items():
        print(f"  {k}: {v}")
    print(f"  finished share of decode row-steps: "
          f"{waste['decode row-steps after the row stopped'] / max(1, waste['decode row-steps']):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"case": args.case, "model": name, "items": n_items, "greedy_pool": args.greedy_pool,
                       "prompt_length": args.prompt_length, "total_s": total, "parts": parts,
                       "calls": dict(t.n), "waste": dict(waste)}, f, indent=1)


def _shape(args, kwargs) -> tuple[int, int]:
    """(rows, new positions) of a forward call."""
    for key in ("input_ids", "inputs_embeds"):
        x = kwargs.get(key)
        if x is not None:
            return x.shape[0], x.shape[1]
    return args[0].shape[0], args[0].shape[1]


if __name__ == "__main__":
    main()
