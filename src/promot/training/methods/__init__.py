"""The method table: ProMoT, its baselines and its rivals as data (the paper's comparison, one row each).

Every method that tunes the model uses the same `stage2` settings, data, batching and schedule, so differences in
the results come from the method, not the budget. What a method does lives in its room, never as checks spread over
the pipeline: `full.py` / `lora.py` say what stage 2 trains and what is left afterwards; `replay.py`, `l2_sp.py` and
`wise_ft.py` are add-ons that change stage 2's data, its loss, or the weights kept after it. A new method is a row
here plus, if it does something new, one room. Torch-free at import: the config validates names against this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from promot.training.methods.base import Addon
from promot.training.methods.base import Tuning
from promot.training.methods.full import FULL
from promot.training.methods.l2_sp import L2SP
from promot.training.methods.lora import LORA
from promot.training.methods.replay import REPLAY
from promot.training.methods.wise_ft import WISE_FT


@dataclass(frozen=True)
class Method:
    stage1: bool
    """Run prompt tuning first (model frozen)."""
    stage2: Tuning | None
    """What the model-tuning stage trains (`FULL`: every weight, `LORA`: an adapter), or None: no stage 2."""
    prompt: Literal["trained", "joint", "random"] | None
    """The prompt during stage 2 and at target-task inference: stage 1's (frozen), a fresh one trained with the
    model (joint), a fresh one never trained (random), or none."""
    addons: tuple[Addon, ...] = ()
    """What the method adds to stage 2: replay data, a penalty toward the base weights, weight interpolation."""


METHODS: dict[str, Method] = {
    "promot": Method(stage1=True, stage2=FULL, prompt="trained"),
    "finetune": Method(stage1=False, stage2=FULL, prompt=None),
    "prompt-tuning": Method(stage1=True, stage2=None, prompt="trained"),
    "joint": Method(stage1=False, stage2=FULL, prompt="joint"),
    "random-prompt": Method(stage1=False, stage2=FULL, prompt="random"),
    "lora": Method(stage1=False, stage2=LORA, prompt=None),
    "promot-lora": Method(stage1=True, stage2=LORA, prompt="trained"),
    # rivals a practitioner weighs (issue: the forgetting frontier)
    "wise-ft": Method(stage1=False, stage2=FULL, prompt=None, addons=(WISE_FT,)),
    "promot-wise-ft": Method(stage1=True, stage2=FULL, prompt="trained", addons=(WISE_FT,)),
    "replay": Method(stage1=False, stage2=FULL, prompt=None, addons=(REPLAY,)),
    "promot-replay": Method(stage1=True, stage2=FULL, prompt="trained", addons=(REPLAY,)),
    "l2-sp": Method(stage1=False, stage2=FULL, prompt=None, addons=(L2SP,)),
}

__all__ = ["METHODS", "Method", "Addon", "Tuning", "FULL", "LORA"]
