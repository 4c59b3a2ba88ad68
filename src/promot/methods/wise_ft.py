"""WiSE-FT's settings and checks (methods wise-ft, promot-wise-ft): the `wise_ft:` section. The interpolation
after stage 2 and the selection of α: training/methods/wise_ft.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class WiseFtConfig(OwnLr):
    alphas: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    """Methods wise-ft, promot-wise-ft: the interpolation grid θ = α·tuned + (1−α)·base, each scored on validation."""
    tolerance: float = 0.0
    """Keep, among the α whose target score is within this many points of the best α's, the one with the least guard
    leakage, then the smallest (0: the best, ties to the smaller α)."""


def problems(cfg: Any) -> list[str]:
    """What a WiSE-FT method refuses in `cfg.wise_ft`: an empty grid, an α outside [0, 1], a negative tolerance."""
    a, out = cfg.wise_ft.alphas, []
    if not (isinstance(a, list) and a and all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in a)):
        out.append(f"wise_ft.alphas must be a non-empty list of numbers in [0, 1], got {a!r}")
    if not (isinstance(cfg.wise_ft.tolerance, (int, float)) and cfg.wise_ft.tolerance >= 0):
        out.append(f"wise_ft.tolerance must be a number >= 0, got {cfg.wise_ft.tolerance!r}")
    return out + lr_problems("wise_ft", cfg.wise_ft.lr)
