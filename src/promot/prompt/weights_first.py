"""Linear layers over a few rows computed as (W·xᵀ)ᵀ on the CPU: the same products, in the GEMM layout MKL runs fast.

`F.linear` asks the BLAS for x·Wᵀ. With 2-64 rows (a decode step's batch, a prefill's kept logits) in fp32 on a CPU,
MKL runs that layout at ~0.45-0.85× the speed of W·xᵀ on the same numbers; SmolLM2-135M's decode steps at 16 rows
take 10-20% less time with the weights first (docs/RESULTS.md, "The weights first"). Written by hand: neither torch
nor transformers has a switch for the operand order. One row (MKL's matrix-vector path) and many rows (prefill) keep
`F.linear`, where the weights first were no faster or slower; so do layers small enough to sit in cache (a world
model's), where `F.linear` is the faster.
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F

FEW_ROWS = (2, 64)
"""Rows (positions in a call) for which the weights go first; measured on a 2-core AVX2 CPU, fp32."""
LEAST_WEIGHTS = 1 << 16
"""Layers with fewer weights (under 256 KB in fp32: they sit in cache) keep `F.linear`, which is faster for them."""


def _forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, as (W·xᵀ)ᵀ where that is the faster layout (plain CPU fp32, a few rows)."""
    rows = x.numel() // max(1, x.shape[-1])
    weight = self.weight
    if not (FEW_ROWS[0] <= rows <= FEW_ROWS[1] and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and type(weight) in (torch.Tensor, torch.nn.Parameter) and not torch.is_autocast_enabled("cpu")):
        return F.linear(x, weight, self.bias)
    out = torch.mm(weight, x.reshape(rows, x.shape[-1]).t()).t().contiguous()
    if self.bias is not None:
        out += self.bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


@contextlib.contextmanager
def weights_first(model: torch.nn.Module) -> Iterator[None]:
    """While inside, `model`'s plain `nn.Linear` layers of at least `LEAST_WEIGHTS` weights put the weights first for
    a few CPU fp32 rows.

    Only exact `nn.Linear` modules whose `forward` is the class's own are touched (a module hook that replaced
    `forward`, as accelerate's do, is left alone); hooks registered with `register_forward_*` still run. Every layer
    gets its class's `forward` back on leaving, whatever happened inside."""
    layers = [m for m in model.modules() if type(m) is torch.nn.Linear and "forward" not in vars(m)
              and m.weight.numel() >= LEAST_WEIGHTS]
    for layer in layers:
        layer.forward = types.MethodType(_forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            vars(layer).pop("forward", None)
