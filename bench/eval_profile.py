"""Where `promot eval`'s time goes: one lm-eval pass through promot's model class, broken down by what it spends.

Times one `run_lm_eval` (what `promot eval`, `compare`, the monitor and the demo call per shot count) after an
untimed warm-up, with timers around the model class's calls:
- tokenisation (`tok_encode`, `tok_batch_encode`, `tok_decode`), the model's prefill and decode forwards (split by
  whether a forward sees one new position per row), the rest of `generate` (HF's per-step loop: logits processors,
  stopping criteria, cache bookkeeping), and everything else (lm-eval: requests, few-shot contexts, metrics);
- the waste: prefill positions that are padding, and decode row-steps run for rows that had already stopped.

    python bench/eval_profile.py --case mini-chat        # SmolLM2-135M-Instruct, mini ICL tasks, 1-shot, chat template
    python bench/eval_profile.py --case world            # the world model, world ICL tasks, 4-shot (the demo's pass)
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
    saved = {k: getattr(cls, k) for k in ("tok_encode", "tok_batch_encode", "tok_decode", "_model_generate")}
    for k in ("tok_encode", "tok_batch_encode", "tok_decode"):
        t.wrap(cls, k, "tokenisation")
    t.wrap(cls, "_model_generate", "generate")
    t.wrap(model, "forward", "", split=lambda a, kw: "forward, decode" if _new_positions(a, kw) == 1
           else "forward, prefill")
    inner_generate = cls._model_generate

    def counted(self, context, max_length, stop, **kw):
        mask = kw.get("attention_mask")
        out = inner_generate(self, context, max_length, stop, **kw)
        waste["prefill positions"] += context.numel()
        waste["prefill padding"] += int((mask == 0).sum()) if mask is not None else 0
        new = out[:, context.shape[1]:].tolist()
        steps = len(new[0]) if new else 0
        for row in new:
            text, used = "", steps
            for i, tok_id in enumerate(row):
                text += self.tok_decode([tok_id], skip_special_tokens=False)
                if tok_id in (self.eot_token_id, self.tokenizer.pad_token_id) or any(s in text for s in stop):
                    used = i + 1
                    break
            waste["decode row-steps"] += steps
            waste["decode row-steps after the row stopped"] += steps - used
        waste["batches"] += 1
        return out

    cls._model_generate = counted
    start = time.perf_counter()
    res = run_lm_eval(lm, tok, spec, shots, manager)
    total = time.perf_counter() - start
    for k, v in saved.items():
        setattr(cls, k, v)

    gen = t.s["generate"]
    fwd = t.s["forward, prefill"] + t.s["forward, decode"]
    parts = {
        "forward, prefill": t.s["forward, prefill"],
        "forward, decode": t.s["forward, decode"],
        "generate loop besides the forwards": gen - fwd,
        "tokenisation": t.s["tokenisation"],
        "lm-eval besides the model class (requests, contexts, metrics)": total - gen - t.s["tokenisation"],
    }
    n_items = sum(len(v) for v in res["samples"].values())
    print(f"case={args.case} model={name} tasks={len(icl)} items={n_items} shots={shots} batch={batch} "
          f"chat={chat} prompt={args.prompt_length} total {total:.2f} s")
    print(f"{'part':<64}{'s':>8}{'%':>7}{'calls':>8}")
    for k, v in parts.items():
        calls = t.n.get(k, "")
        print(f"{k:<64}{v:>8.2f}{100 * v / total:>7.1f}{calls!s:>8}")
    for k, v in waste.items():
        print(f"  {k}: {v}")
    print(f"  padding share of prefill positions: {waste['prefill padding'] / max(1, waste['prefill positions']):.3f}")
    print(f"  finished share of decode row-steps: "
          f"{waste['decode row-steps after the row stopped'] / max(1, waste['decode row-steps']):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"case": args.case, "model": name, "items": n_items, "total_s": total, "parts": parts,
                       "calls": dict(t.n), "waste": dict(waste)}, f, indent=1)


def _new_positions(args, kwargs) -> int:
    for key in ("input_ids", "inputs_embeds"):
        x = kwargs.get(key)
        if x is not None:
            return x.shape[1]
    return args[1].shape[1] if len(args) > 1 and hasattr(args[1], "shape") else 0


if __name__ == "__main__":
    main()
