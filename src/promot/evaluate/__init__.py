"""④ Evaluation. For now: target-task scoring by generation (checkpoint selection, `promot generate`).

Exports resolve lazily (PEP 562) so that `promot.evaluate.suites` (a path lookup `promot --help` needs) does not
import torch.
"""
from __future__ import annotations

__all__ = ["generate_texts", "score", "target_score"]


def __getattr__(name: str):
    if name in __all__:
        from promot.evaluate import target

        return getattr(target, name)
    raise AttributeError(name)
