"""A method's own stage-2 learning rate: every room's section (`lora:`, `replay:`, `wise_ft:`, `l2_sp:`) may set
`lr`, so a compare trains each method at its own step size (LoRA's usual ~10× full fine-tuning's) without moving the
others. Unset: `stage2.lr`, as before."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OwnLr:
    lr: float | None = None
    """This method's stage-2 learning rate (default: stage2.lr). The run records the lr it trained at."""


def lr_problems(section: str, value: Any) -> list[str]:
    """A non-positive lr, in one line naming the key (non-numbers and inf/NaN are refused by the type check)."""
    if value is not None and isinstance(value, (int, float)) and not value > 0:
        return [f"{section}.lr must be a positive number, got {value!r}"]
    return []
