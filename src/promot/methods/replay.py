"""Replay's settings and checks (methods replay, promot-replay): the `replay:` section is a data section
(config_sections.py adds `DataConfig`'s keys) plus these. What it does to stage 2's data: training/methods/replay.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promot.methods.own_lr import OwnLr, lr_problems


@dataclass(frozen=True)
class ReplaySettings(OwnLr):
    fraction: float = 0.2
    """Share of stage-2 examples drawn from the replay data (each example's source is drawn with this chance)."""


def problems(cfg: Any) -> list[str]:
    """What a replay method refuses in the run's config: no replay data, a fraction outside (0, 1), several tasks."""
    out = []
    if not cfg.replay.train:
        out.append(f"method {cfg.method}: replay.train is required (the data mixed into stage 2)")
    if not (isinstance(cfg.replay.fraction, (int, float)) and 0 < cfg.replay.fraction < 1):
        out.append(f"replay.fraction must be in (0, 1), got {cfg.replay.fraction!r}")
    if cfg.tasks:
        out.append(f"method {cfg.method} is for single-task runs (multi-task runs already mix tasks)")
    return out + lr_problems("replay", cfg.replay.lr)
