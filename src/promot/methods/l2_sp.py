"""L2-SP's settings and checks (method l2-sp): the `l2_sp:` section. The penalty added to stage 2's loss:
training/methods/l2_sp.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class L2SpConfig(OwnLr):
    weight: float = 0.01
    """Method l2-sp: λ of the penalty λ‖θ − θ_base‖² (summed over the trained weights) added to stage 2's loss."""


def problems(cfg: Any) -> list[str]:
    """What an L2-SP method refuses in `cfg.l2_sp`: a penalty weight that is not positive."""
    out = lr_problems("l2_sp", cfg.l2_sp.lr)
    if not (isinstance(cfg.l2_sp.weight, (int, float)) and cfg.l2_sp.weight > 0):
        out.append(f"l2_sp.weight must be a positive number, got {cfg.l2_sp.weight!r}")
    return out
