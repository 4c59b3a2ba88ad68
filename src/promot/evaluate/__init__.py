"""Evaluation: what a fine-tune cost (`runner`: `promot eval` over lm-eval, base vs tuned, prompt on/off, leakage and
CIs; `metrics`; `monitor` and `gradient_alignment`: probes during stage 2) and target-task scoring by generation
(`target`: checkpoint selection).

Exports resolve lazily (PEP 562) so that `promot.evaluate.suites` (a path lookup `promot --help` needs) does not
import torch.
"""
from __future__ import annotations

__all__ = ["score", "target_score"]


def __getattr__(name: str):
    if name in __all__:
        from promot.evaluate import target

        return getattr(target, name)
    raise AttributeError(name)
