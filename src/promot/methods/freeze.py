"""Layer freezing's settings and checks (method freeze; Zheng et al., "Spurious Forgetting in Continual Learning of
Language Models", ICLR 2025): the `freeze:` section. What it trains: training/methods/freeze.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class FreezeConfig(OwnLr):
    layers: int | None = None
    """Method freeze: how many bottom blocks of each stack stay frozen (with the embeddings); unset: `fraction` of
    the depth."""
    fraction: float = 0.25
    """Method freeze: the share of each stack's blocks frozen from the bottom when `layers` is unset (rounded, at
    least one). The paper froze 6 of Llama-2-7B's 32."""


def problems(cfg: Any) -> list[str]:
    """What is wrong with `cfg.freeze` before a model is loaded (the depth is checked against the model's:
    training/methods/freeze.py)."""
    c, out = cfg.freeze, lr_problems("freeze", cfg.freeze.lr)
    if c.layers is not None and not c.layers >= 1:
        out.append(f"freeze.layers must be a positive integer, got {c.layers!r}")
    if not 0 < c.fraction < 1:
        out.append(f"freeze.fraction must be in (0, 1), got {c.fraction!r}")
    return out


def frozen_blocks(c: FreezeConfig, depth: int) -> int:
    """How many bottom blocks of a `depth`-block stack the settings freeze."""
    return c.layers if c.layers is not None else max(1, round(c.fraction * depth))
