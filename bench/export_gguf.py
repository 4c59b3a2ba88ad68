"""How much GGUF quantisation of the embedding table (Q8_0, Q4_0: per 32-value blocks, so each row on its own)
moves an exported prompt's rows, and what the moved prompt scores on the run's own validation set.

    python bench/export_gguf.py RUN
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from gguf import GGMLQuantizationType, quants

from promot.evaluate.target import target_score
from promot.runs import load_run, run_validation


def roundtrip(rows: torch.Tensor, qtype: GGMLQuantizationType) -> torch.Tensor:
    data = rows.detach().float().numpy().astype(np.float32)
    return torch.from_numpy(quants.dequantize(quants.quantize(data, qtype), qtype).copy()).reshape(rows.shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    args = ap.parse_args()
    run = load_run(args.run)
    prompt = run.lm.prompt.detach().clone()
    table = run.lm.model.get_input_embeddings().weight.detach()
    val = run_validation(args.run, run.record, run.tokenizer)[None]

    def score() -> float:
        return target_score(run.lm, run.tokenizing, val, run.record.target_metric, run.inputs.max_new_tokens)

    print(f"prompt row norm {prompt.norm(dim=1).mean():.2f}, vocabulary row norm {table.norm(dim=1).mean():.2f}")
    print(f"fp32: target {score():.1f} on {len(val)} validation items")
    for qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0):
        q = roundtrip(prompt, qtype)
        rel = ((q - prompt).norm(dim=1) / prompt.norm(dim=1)).max()
        vocab_rel = ((roundtrip(table, qtype) - table).norm(dim=1) / table.norm(dim=1)).max()
        with torch.no_grad():
            run.lm.prompt.copy_(q)
        print(f"{qtype.name}: prompt rows moved ≤ {100 * rel:.2f}% (vocabulary rows ≤ {100 * vocab_rel:.2f}%), "
              f"target {score():.1f}")
        with torch.no_grad():
            run.lm.prompt.copy_(prompt)


if __name__ == "__main__":
    main()
