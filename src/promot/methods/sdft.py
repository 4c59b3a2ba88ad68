"""Self-distillation's settings and checks (method sdft; Shenfeld et al., "Self-Distillation Enables Continual
Learning", arXiv 2601.19897, 2026): the `sdft:` section, named after TRL's `SDFTConfig` where it has the same
setting. What it does in stage 2: training/methods/sdft.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from promot.methods.own_lr import OwnLr, lr_problems



@dataclass(frozen=True)
class SdftConfig(OwnLr):
    teacher: Literal["base", "live"] = "base"
    """Method sdft: the teacher's weights, as TRL's `teacher_model_kind`: `base` (the starting model, frozen: a second
    copy in memory) or `live` (the model being trained, without gradient)."""
    topk: int = 100
    """Method sdft: the distillation's support, the student's top-k tokens at each position (TRL's
    `distillation_topk`)."""
    alpha: float = 0.5
    """Method sdft: the divergence, 0 forward KL(teacher‖student), 1 reverse KL, between: generalized
    Jensen-Shannon (TRL's `distillation_alpha`)."""
    temperature: float = 1.0
    """Method sdft: the student's sampling temperature for its on-policy answers (TRL's `temperature`)."""
    max_new_tokens: int | None = None
    """Method sdft: the longest on-policy answer (default: the batch's longest target)."""
    separator: str = "\n\n"
    """Method sdft: the text between the teacher's demonstration (its end-of-sequence token dropped) and the example
    it answers; write it the way the model reads consecutive examples (lm-eval's `fewshot_delimiter`; TRL's teacher
    template has a blank line)."""


def problems(cfg: Any) -> list[str]:
    """What a self-distillation run refuses in `cfg.sdft`."""
    c, out = cfg.sdft, lr_problems("sdft", cfg.sdft.lr)
    if not c.topk >= 1:
        out.append(f"sdft.topk must be a positive integer, got {c.topk!r}")
    if not 0 <= c.alpha <= 1:
        out.append(f"sdft.alpha must be in [0, 1], got {c.alpha!r}")
    if not c.temperature > 0:
        out.append(f"sdft.temperature must be a positive number, got {c.temperature!r}")
    if c.max_new_tokens is not None and not c.max_new_tokens >= 1:
        out.append(f"sdft.max_new_tokens must be a positive integer, got {c.max_new_tokens!r}")
    return out
