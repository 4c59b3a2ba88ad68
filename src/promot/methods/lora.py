"""LoRA's settings and checks (methods lora, promot-lora): the `lora:` section. What it trains and keeps:
training/methods/lora.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class LoraConfig(OwnLr):
    r: int = 8
    """LoRA rank (methods lora and promot-lora)."""
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    """PEFT target_modules: a list of module names or "all-linear"."""


def problems(cfg: Any) -> list[str]:
    """What is wrong with `cfg.lora` (checked in every run, as every section's values are; types already right)."""
    c, out = cfg.lora, []
    tm = c.target_modules
    if not (tm == "all-linear" or (isinstance(tm, list) and bool(tm) and all(isinstance(m, str) and m for m in tm))):
        out.append(f"lora.target_modules must be a list of module names or 'all-linear', got {tm!r}")
    for key, what, ok in (("r", "a positive integer", c.r > 0), ("alpha", "a positive integer", c.alpha > 0),
                          ("dropout", "in [0, 1)", 0 <= c.dropout < 1)):
        if not ok:
            out.append(f"lora.{key} must be {what}, got {getattr(c, key)!r}")
    return out + lr_problems("lora", c.lr)
