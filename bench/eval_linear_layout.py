"""SmolLM2-135M's linear layers over a few rows: `F.linear` (x·Wᵀ) against the weights first ((W·xᵀ)ᵀ), on this CPU.

What `promot/prompt/weights_first.py` rests on. Random fp32 weights of SmolLM2-135M's shapes (30 layers of q, k, v,
o, gate, up, down, and the 49,152 × 576 output embedding), each layer distinct so that, as in a real decode step,
the weights stream from memory rather than sit in cache; for each row count, every layer's product is timed both
ways (median of --repeats sweeps) and the largest difference between the two results is printed; then, by layer
size, where the weights first stop paying (layers that sit in cache, as a world model's do).

    python bench/eval_linear_layout.py
"""
from __future__ import annotations

import argparse
import statistics
import time

LAYERS = 30
BODY = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
HEAD = (49152, 576)


def main() -> None:
    # bench/ is on the path when this script runs
    from eval_pool_timing import _positive

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=_positive, default=9)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.manual_seed(0)
    body = [[torch.randn(o, i) * 0.05 for o, i in BODY] for _ in range(LAYERS)]
    head = torch.randn(*HEAD) * 0.05

    def weights_first(x, w):
        return torch.mm(w, x.t()).t().contiguous()

    def ms(fn) -> float:
        fn()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print("rows | body F.linear ms | body weights first ms | head F.linear ms | head weights first ms | max |diff|")
    for rows in (1, 2, 4, 8, 16, 32, 64, 128, 512):
        xs = {i: torch.randn(rows, i) for i in (576, 1536)}
        times = [ms(lambda f=f, xs=xs: [f(xs[w.shape[1]], w) for ws in body for w in ws]) for f in (F.linear, weights_first)]
        times += [ms(lambda f=f, x=xs[576]: f(x, head)) for f in (F.linear, weights_first)]
        diff = max((F.linear(xs[w.shape[1]], w) - weights_first(xs[w.shape[1]], w)).abs().max().item()
                   for w in (body[0] + [head]))
        print(f"{rows} | " + " | ".join(f"{t:.1f}" for t in times) + f" | {diff:.1e}", flush=True)

    # by layer size: where the weights first stop paying (64 distinct layers per shape, so none is hot by reuse)
    print("\nweights | KB | rows | F.linear µs | weights first µs | ratio")
    for out_features, in_features in ((53, 128), (128, 128), (384, 128), (128, 384), (256, 256), (384, 384),
                                      (512, 512), (576, 576), (1536, 576)):
        layers = [torch.randn(out_features, in_features) for _ in range(64)]
        for rows in (4, 16, 64):
            x = torch.randn(rows, in_features)
            us = [1000 * ms(lambda f=f, x=x, layers=layers: [f(x, w) for w in layers]) / len(layers)
                  for f in (F.linear, weights_first)]
            print(f"{out_features}×{in_features} | {out_features * in_features * 4 // 1024} | {rows} | {us[0]:.1f} | "
                  f"{us[1]:.1f} | {us[1] / us[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
