"""The method table with each room's hooks in place: promot.methods' rows (torch-free data: the table, the rooms'
settings and their checks) resolved to what the rooms here do.

Every method that tunes the model uses the same `stage2` settings, data, batching and schedule, so differences in
the results come from the method, not the budget. What a method does lives in its room, never as checks spread over
the pipeline: `full.py` / `lora.py` / `freeze.py` / `value_only.py` say what stage 2 trains and what is left
afterwards; `replay.py`, `l2_sp.py`, `sdft.py` and `wise_ft.py` are add-ons that change stage 2's data, its loss, or
the weights kept after it. Their settings and what they refuse in a config are promot/methods/<room>.py
(config.validate gathers those); what they refuse here is what the loaded model or a sharded run cannot do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from promot.methods import METHODS as RECIPES
from promot.training.methods.base import Addon
from promot.training.methods.base import Tuning
from promot.training.methods.freeze import FREEZE
from promot.training.methods.full import FULL
from promot.training.methods.l2_sp import L2SP
from promot.training.methods.lora import LORA
from promot.training.methods.replay import REPLAY
from promot.training.methods.sdft import SDFT
from promot.training.methods.value_only import VALUE_ONLY
from promot.training.methods.wise_ft import WISE_FT

TUNINGS: dict[str, Tuning] = {t.name: t for t in (FULL, LORA, FREEZE, VALUE_ONLY)}
ADDONS: dict[str, Addon] = {a.name: a for a in (REPLAY, L2SP, WISE_FT, SDFT)}


@dataclass(frozen=True)
class Method:
    """A row of promot.methods.METHODS with its rooms' hooks (docs of the fields: `promot.methods.Recipe`)."""

    stage1: bool
    stage2: Tuning | None
    prompt: Literal["trained", "joint", "random"] | None
    addons: tuple[Addon, ...] = ()


METHODS: dict[str, Method] = {
    name: Method(r.stage1, TUNINGS[r.stage2] if r.stage2 else None, r.prompt, tuple(ADDONS[a] for a in r.addons))
    for name, r in RECIPES.items()
}

__all__ = ["METHODS", "Method", "Addon", "Tuning", "FULL", "LORA"]
