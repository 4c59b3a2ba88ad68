"""One greedy decode step of SmolLM2-135M-Instruct on this CPU: its time by rows and cache width, and its op split.

What a decode forward of the greedy pool costs (`promot/prompt/greedy_pool.py` decodes up to the batch size in rows
over caches of ~100-300 positions in the `mini` chat pass): random token ids are prefilled into a plain
`DynamicCache`, then each step is timed alone (median of 12), and one (rows 16, width 160) setting is profiled
with `torch.profiler` to split the step into matmuls, the cache's growth (`aten::cat`) and attention.

    python bench/eval_decode_step.py
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

STEPS = 12
"""Decode steps timed per setting; the median is quoted."""


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help; anything else: exit 2

    import torch
    from transformers import DynamicCache

    from promot.models import load_model

    torch.set_num_threads(2)
    model = load_model("smollm2-135m-instruct").model.eval()

    @torch.no_grad()
    def step_ms(rows: int, width: int, profile: bool = False) -> float:
        ids = torch.randint(100, 20000, (rows, width))
        cache, mask = DynamicCache(config=model.config), torch.ones(rows, width, dtype=torch.long)
        last = model(input_ids=ids, attention_mask=mask, past_key_values=cache, logits_to_keep=1).logits[:, -1]
        last, times = last.argmax(-1), []
        with torch.profiler.profile() if profile else contextlib.nullcontext() as prof:
            for i in range(STEPS):
                mask = torch.cat([mask, mask.new_ones(rows, 1)], 1)
                t = time.perf_counter()
                out = model(input_ids=last[:, None], attention_mask=mask, past_key_values=cache,
                            position_ids=torch.full((rows, 1), width + i), logits_to_keep=1)
                last = out.logits[:, -1].argmax(-1)
                times.append(time.perf_counter() - t)
        if profile:
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
        return 1000 * statistics.median(times)

    step_ms(4, 32)  # warm-up
    for rows in (1, 16, 32):
        print(f"rows {rows:2}: " + "  ".join(f"width {w}: {step_ms(rows, w):.1f} ms" for w in (64, 160, 320)),
              flush=True)
    step_ms(16, 160, profile=True)


if __name__ == "__main__":
    main()
