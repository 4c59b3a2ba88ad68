"""Value-only tuning's settings (method value-only; Lee, Sohn and Lee, "Fine-Tuning Without Forgetting In-Context
Learning", arXiv 2602.23197, 2026): the `value_only:` section, only its own lr. What it trains:
training/methods/value_only.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class ValueOnlyConfig(OwnLr):
    pass


def problems(cfg: Any) -> list[str]:
    return lr_problems("value_only", cfg.value_only.lr)
