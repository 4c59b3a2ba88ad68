"""The method table: ProMoT and its baselines as data (the paper's comparison, one row each).

Every method that tunes the model uses the same `stage2` settings, data, batching and schedule, so differences in
the results come from the method, not the budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Method:
    stage1: bool
    """Run prompt tuning first (model frozen)."""
    stage2: Literal["full", "lora"] | None
    """What the model-tuning stage trains: all weights, a LoRA adapter, or nothing."""
    prompt: Literal["trained", "joint", "random"] | None
    """The prompt during stage 2 and at target-task inference: stage 1's (frozen), a fresh one trained with the
    model (joint), a fresh one never trained (random), or none."""


METHODS: dict[str, Method] = {
    "promot": Method(stage1=True, stage2="full", prompt="trained"),
    "finetune": Method(stage1=False, stage2="full", prompt=None),
    "prompt-tuning": Method(stage1=True, stage2=None, prompt="trained"),
    "joint": Method(stage1=False, stage2="full", prompt="joint"),
    "random-prompt": Method(stage1=False, stage2="full", prompt="random"),
    "lora": Method(stage1=False, stage2="lora", prompt=None),
    "promot-lora": Method(stage1=True, stage2="lora", prompt="trained"),
}
